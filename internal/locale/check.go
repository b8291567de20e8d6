package locale

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// placeholder is one fmt verb of a text: the argument it formats (1-based)
// and its verb letter.
type placeholder struct {
	arg  int
	verb byte
}

func (p placeholder) String() string { return fmt.Sprintf("%%[%d]%c", p.arg, p.verb) }

// placeholders returns the verbs of a format string, each with the argument
// it takes, in argument order. A translation may reorder its arguments with
// explicit indexes; it must still use the same arguments with the same verbs.
func placeholders(s string) ([]placeholder, error) {
	var out []placeholder
	arg := 1
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		i++
		if i >= len(s) {
			return nil, fmt.Errorf("a lone %% at the end")
		}
		if s[i] == '%' {
			continue
		}
		for i < len(s) && strings.IndexByte("+-# 0", s[i]) >= 0 {
			i++
		}
		readIndex := func() error {
			if i < len(s) && s[i] == '[' {
				j := strings.IndexByte(s[i:], ']')
				if j < 0 {
					return fmt.Errorf("an unclosed argument index")
				}
				n, err := strconv.Atoi(s[i+1 : i+j])
				if err != nil || n < 1 {
					return fmt.Errorf("a bad argument index %q", s[i:i+j+1])
				}
				arg = n
				i += j + 1
			}
			return nil
		}
		if err := readIndex(); err != nil {
			return nil, err
		}
		for i < len(s) && (s[i] >= '0' && s[i] <= '9') {
			i++
		}
		if i < len(s) && s[i] == '.' {
			i++
			for i < len(s) && (s[i] >= '0' && s[i] <= '9') {
				i++
			}
		}
		if err := readIndex(); err != nil {
			return nil, err
		}
		if i >= len(s) {
			return nil, fmt.Errorf("a verb is missing at the end")
		}
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return nil, fmt.Errorf("%q is not a verb", c)
		}
		out = append(out, placeholder{arg: arg, verb: c})
		arg++
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].arg != out[j].arg {
			return out[i].arg < out[j].arg
		}
		return out[i].verb < out[j].verb
	})
	return slices.Compact(out), nil
}

// Problems checks every catalog against the source (Dutch): every key in a
// catalog's scope is there (everything for English, RecipientScope for the
// others), no catalog has a key the source lacks, every text parses, and
// every translation uses the same arguments with the same verbs as the
// source (each plural form too; a form may leave out the count, as "one"
// often does). It returns one line per problem; none is good.
func Problems() []string {
	cs := load()
	src := cs[Default]
	var out []string
	for _, l := range All {
		c := cs[l]
		if c.meta.Made == "" {
			out = append(out, fmt.Sprintf("%s: _meta.made does not say how the catalog was made", l))
		}
		for _, k := range sortedKeys(src.entries) {
			se := src.entries[k]
			e, ok := c.entries[k]
			if !ok {
				if l == EN || InRecipientScope(k) {
					out = append(out, fmt.Sprintf("%s: %s is missing", l, k))
				}
				continue
			}
			if (se.forms == nil) != (e.forms == nil) {
				out = append(out, fmt.Sprintf("%s: %s: the source is %s, this is not", l, k, kindOf(se)))
				continue
			}
			want, err := entryPlaceholders(se, true)
			if err != nil {
				out = append(out, fmt.Sprintf("%s: %s: %v", Default, k, err))
				continue
			}
			for _, text := range e.texts() {
				got, err := placeholders(text)
				if err != nil {
					out = append(out, fmt.Sprintf("%s: %s: %v", l, k, err))
					continue
				}
				if e.forms != nil && len(got) > 0 && got[0].arg != 1 && !strings.Contains(text, "%[") {
					// Without the count, fmt would take the count for the
					// first verb: the others need explicit indexes.
					out = append(out, fmt.Sprintf("%s: %s: a plural form without the count must index its arguments (%%[2]s)", l, k))
				}
				if e.forms != nil {
					// A plural form may leave out the count ("one file").
					got = withCount(got, want)
				}
				if !slices.Equal(got, want) {
					out = append(out, fmt.Sprintf("%s: %s: placeholders %v, the source has %v", l, k, got, want))
				}
			}
		}
		for _, k := range sortedKeys(c.entries) {
			if _, ok := src.entries[k]; !ok {
				out = append(out, fmt.Sprintf("%s: %s is not in the source catalog", l, k))
			}
		}
	}
	return out
}

func kindOf(e entry) string {
	if e.forms != nil {
		return "plural"
	}
	return "plain"
}

func (e entry) texts() []string {
	if e.forms == nil {
		return []string{e.text}
	}
	var out []string
	for _, s := range e.forms {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// entryPlaceholders returns the placeholders of the source entry: for a
// plural, those of its "other" form, which always shows the count.
func entryPlaceholders(e entry, _ bool) ([]placeholder, error) {
	if e.forms == nil {
		return placeholders(e.text)
	}
	for _, s := range e.texts() {
		if _, err := placeholders(s); err != nil {
			return nil, err
		}
	}
	return placeholders(e.forms[otherForm])
}

// withCount adds the count placeholder of want to got when a plural form
// leaves it out.
func withCount(got, want []placeholder) []placeholder {
	if len(want) == 0 || want[0].arg != 1 {
		return got
	}
	if len(got) > 0 && got[0].arg == 1 {
		return got
	}
	return append([]placeholder{want[0]}, got...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
