//go:build ignore

// mkwords writes nl.txt and en.txt, the word lists of generated passwords,
// from their sources (SOURCES.md says where each comes from and how to get
// it). Run from this folder:
//
//	go run mkwords.go EFF_LIST NL_COMMON OPENTAAL
//
// EFF_LIST is EFF's large list, one word a line, in dice order; NL_COMMON
// the Dutch words of @zxcvbn-ts/language-nl-be's commonWords, most common
// first, one a line; OPENTAAL /usr/share/dict/dutch from Debian's wdutch.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// size is the number of words in each list: 6^5, EFF's large list.
const size = 7776

// unwelcome are parts of words a person should not find in a password they
// are asked to read out to a citizen: swearing, sex, violence, death,
// illness, insults. Matching parts of words also drops innocent words; the
// Dutch source has enough to spare.
var unwelcome = strings.Fields(`kut lul neuk hoer slet tiet flikker homo nikker neger kanker
	tering tyfus kloot sperma penis vagina seks sex naakt geil porno moord dood lijk verkracht
	martel bloed drugs hitler nazi jood pedo klaarkom pijp reet zak kont bitch fuck shit teef
	sodemieter godver klere pokke pest hel vermoord schiet geweer wapen bom gijzel ontvoer
	zelfmoord verdrink ophang wurg steek mes gif dief stomme idioot debiel mongool achterlijk
	dwerg dik lelijk stink poep pies plas kots braak zuip dronk coke crack heroine wiet joint
	ziek graf kist begraf rouw lijden sterf stierf doden vermoor terror`)

func lines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		fail(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if w := strings.TrimSpace(sc.Text()); w != "" {
			out = append(out, w)
		}
	}
	if err := sc.Err(); err != nil {
		fail(err)
	}
	return out
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkwords:", err)
	os.Exit(1)
}

func write(path string, words []string) {
	if len(words) != size {
		fail(fmt.Errorf("%s: %d words, want %d", path, len(words), size))
	}
	if err := os.WriteFile(path, []byte(strings.Join(words, "\n")+"\n"), 0o644); err != nil {
		fail(err)
	}
}

func main() {
	if len(os.Args) != 4 {
		fail(fmt.Errorf("usage: go run mkwords.go EFF_LIST NL_COMMON OPENTAAL"))
	}
	// English: EFF's list as it is, but Latin letters only: its four
	// words with a hyphen (drop-down, felt-tip, t-shirt, yo-yo) lose it,
	// and yo-yo, which is then the list's yoyo again, becomes "river" (a
	// common word the list lacks), so there are still 7,776 words.
	var en []string
	inEFF := make(map[string]bool)
	eff := lines(os.Args[1])
	for _, w := range eff {
		inEFF[w] = true
	}
	for _, w := range eff {
		if j := strings.ReplaceAll(w, "-", ""); j != w && inEFF[j] {
			w = "river"
		}
		en = append(en, strings.ReplaceAll(w, "-", ""))
	}
	write("en.txt", en)

	// Dutch: the most common words of 4 to 8 small letters a-z (no
	// accents, no capitals, so no names) that OpenTaal spells so.
	known := make(map[string]bool)
	for _, w := range lines(os.Args[3]) {
		known[w] = true
	}
	plain := regexp.MustCompile(`^[a-z]{4,8}$`)
	seen := make(map[string]bool)
	var nl []string
	for _, w := range lines(os.Args[2]) {
		if len(nl) == size {
			break
		}
		if !plain.MatchString(w) || !known[w] || seen[w] {
			continue
		}
		ok := true
		for _, u := range unwelcome {
			if strings.Contains(w, u) {
				ok = false
				break
			}
		}
		if ok {
			seen[w] = true
			nl = append(nl, w)
		}
	}
	write("nl.txt", nl)
}
