package policy

// Drop-off points (issue 17, part 1): public pages /to/{slug} where a
// citizen, after verifying their address with a mailed code, sends files
// and a message to a team without seeing its addresses:
//
//	"dropoffs": [
//	  {"slug": "inkomen", "team": "inkomen",
//	   "name": {"nl": "Team Inkomen", "en": "Income team"},
//	   "description": {"nl": "Stuur ons uw loonstroken.", "en": "Send us your pay slips."},
//	   "limits": {"max_transfer_size": "500MB", "max_files": 20, "expiry": "14d"}}
//	]
//
// The team is named by its id; its members are kept in the database and
// managed with kluis admin team (so that removing one renews the team key
// and is audited), not in this file.

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/unit"
)

// Drop-off limits when the file names none.
const (
	DefaultDropoffFiles = 20
	MaxDropoffFiles     = 1000
)

// slugPattern is the form of a drop-off slug and a team id.
var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidSlug reports whether s has the form of a drop-off slug or a team
// id: 1 to 63 lower-case letters, digits and hyphens.
func ValidSlug(s string) bool { return slugPattern.MatchString(s) }

// Dropoff is one drop-off point.
type Dropoff struct {
	Slug string
	// Team is the id of the team whose key what arrives is encrypted to.
	Team string
	// Names and Descriptions per language code ("nl", "en", ...).
	Names, Descriptions map[string]string
	// MaxSize bounds what one citizen sends at once (0: the defaults'
	// max_transfer_size, else the server's); MaxFiles the files.
	MaxSize  int64
	MaxFiles int
	// Expiry is how long the team keeps what arrived (0: the defaults'
	// default_expiry, else the server's).
	Expiry time.Duration
}

// Name is the name in lang, else in English, else in Dutch, else any.
func (d Dropoff) Name(lang string) string { return inLang(d.Names, lang) }

// Description is the description in lang (as Name), "" if it has none.
func (d Dropoff) Description(lang string) string { return inLang(d.Descriptions, lang) }

func inLang(m map[string]string, lang string) string {
	for _, l := range []string{lang, "en", "nl"} {
		if v, ok := m[l]; ok {
			return v
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		return m[k]
	}
	return ""
}

// Dropoffs lists the drop-off points in the order of the file.
func (p *Policy) Dropoffs() []Dropoff {
	if p == nil {
		return nil
	}
	return slices.Clone(p.dropoffs)
}

// Dropoff returns the drop-off point with slug.
func (p *Policy) Dropoff(slug string) (Dropoff, bool) {
	if p == nil {
		return Dropoff{}, false
	}
	for _, d := range p.dropoffs {
		if d.Slug == slug {
			return d, true
		}
	}
	return Dropoff{}, false
}

func parseDropoffs(at string, raw json.RawMessage) ([]Dropoff, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, errAt(at, "must be a list of drop-off points: [{\"slug\": \"inkomen\", \"team\": \"inkomen\", \"name\": {\"nl\": ...}}, ...]")
	}
	var out []Dropoff
	var errs ParseErrors // every point's first problem
	slugs := map[string]int{}
	for i, item := range items {
		here := fmt.Sprintf("%s[%d]", at, i)
		d, err := parseDropoff(here, item)
		if err != nil {
			errs.add(err)
			continue
		}
		if j, dup := slugs[d.Slug]; dup {
			errs.add(errAt(here+".slug", "%q is already the slug of %s[%d]; give every drop-off point its own slug", d.Slug, at, j))
			continue
		}
		slugs[d.Slug] = i
		out = append(out, d)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

func parseDropoff(at string, raw json.RawMessage) (Dropoff, error) {
	obj, err := object(at, raw, "slug", "team", "name", "description", "limits")
	if err != nil {
		return Dropoff{}, err
	}
	var d Dropoff
	for _, k := range []string{"slug", "team"} {
		v, ok := obj[k]
		if !ok {
			return d, errAt(at+"."+k, "missing; write a short id of lower-case letters, digits and hyphens, such as \"inkomen\"")
		}
		s, err := text(at+"."+k, v, 63, true)
		if err != nil {
			return d, err
		}
		if !slugPattern.MatchString(s) {
			return d, errAt(at+"."+k, "%q is not allowed: use 1 to 63 lower-case letters (a-z), digits and hyphens, starting with a letter or digit", s)
		}
		if k == "slug" {
			d.Slug = s
		} else {
			d.Team = s
		}
	}
	v, ok := obj["name"]
	if !ok {
		return d, errAt(at+".name", "missing; give the name per language, such as {\"nl\": \"Team Inkomen\", \"en\": \"Income team\"}")
	}
	if d.Names, err = perLanguage(at+".name", v, 100, true); err != nil {
		return d, err
	}
	if len(d.Names) == 0 {
		return d, errAt(at+".name", "give the name in at least one language, such as {\"nl\": \"Team Inkomen\"}")
	}
	if v, ok := obj["description"]; ok {
		if d.Descriptions, err = perLanguage(at+".description", v, 1000, false); err != nil {
			return d, err
		}
	}
	d.MaxFiles = DefaultDropoffFiles
	if v, ok := obj["limits"]; ok {
		lim, err := object(at+".limits", v, "max_transfer_size", "max_files", "expiry")
		if err != nil {
			return d, err
		}
		if v, ok := lim["max_transfer_size"]; ok {
			if d.MaxSize, err = parseSize(at+".limits.max_transfer_size", v); err != nil {
				return d, err
			}
		}
		if v, ok := lim["max_files"]; ok {
			var n int
			if err := json.Unmarshal(v, &n); err != nil || n < 1 || n > MaxDropoffFiles {
				return d, errAt(at+".limits.max_files", "must be a whole number from 1 to %d", MaxDropoffFiles)
			}
			d.MaxFiles = n
		}
		if v, ok := lim["expiry"]; ok {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return d, errAt(at+".limits.expiry", "must be a duration in quotes, such as \"14d\"")
			}
			e, err := unit.ParseDuration(s)
			if err != nil {
				return d, errAt(at+".limits.expiry", "%s", err)
			}
			if e < time.Hour {
				return d, errAt(at+".limits.expiry", "%q is too short: at least 1h", s)
			}
			d.Expiry = e
		}
	}
	return d, nil
}

// perLanguage reads {"nl": "...", "en": "..."}: known language codes,
// texts that are not empty.
func perLanguage(at string, raw json.RawMessage, max int, singleLine bool) (map[string]string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, errAt(at, "must be an object with a text per language, such as {\"nl\": \"...\", \"en\": \"...\"}")
	}
	out := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		l, ok := locale.Parse(k)
		if !ok || string(l) != k {
			return nil, errAt(join(at, k), "%q is not a language of Kluis; use one of %s", k, strings.Join(locale.Codes(), ", "))
		}
		s, err := text(join(at, k), m[k], max, singleLine)
		if err != nil {
			return nil, err
		}
		if s == "" {
			return nil, errAt(join(at, k), "is empty; write the text or leave the language out")
		}
		out[k] = s
	}
	return out, nil
}

// checkDropoffs checks the drop-off points against the defaults: an
// expiry within max_expiry.
func (p *Policy) checkDropoffs() error {
	max := p.Defaults().MaxExpiry
	for i, d := range p.dropoffs {
		if max > 0 && d.Expiry > max {
			return errAt(fmt.Sprintf("dropoffs[%d].limits.expiry", i), "%s is longer than the default max_expiry (%s)",
				unit.FormatDuration(d.Expiry), unit.FormatDuration(max))
		}
	}
	return nil
}
