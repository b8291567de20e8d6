package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/client"
	"github.com/kluis-nl/kluis/internal/config"
	"github.com/kluis-nl/kluis/internal/locale"
)

func TestExitCodes(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{&cliError{code: exitUsage, msg: "x"}, exitUsage},
		{&client.APIError{Status: 401, Code: "unauthorized"}, exitAuth},
		{&client.APIError{Status: 401, Code: "wrong_password"}, exitAuth},
		{&client.APIError{Status: 423, Code: "locked"}, exitAuth},
		{&client.APIError{Status: 403, Code: "forbidden"}, exitRefused},
		{&client.APIError{Status: 500, Code: "policy"}, exitRefused},
		{&client.APIError{Status: 403, Code: "policy"}, exitRefused},
		{&client.APIError{Status: 410, Code: "expired"}, exitRefused},
		{&client.APIError{Status: 410, Code: "revoked"}, exitRefused},
		{&client.APIError{Status: 500, Code: "integrity"}, exitIntegrity},
		{&client.APIError{Status: 503, Code: "unavailable"}, exitNetwork},
		{&client.NetError{Op: "GET", Err: errors.New("refused")}, exitNetwork},
		{&client.IntegrityError{Msg: "bad"}, exitIntegrity},
		{&client.InsecureError{URL: "http://kluis.example.nl", Redirect: true}, exitUsage},
		{fmt.Errorf("x: %w", client.ErrServerURL), exitUsage},
		{fmt.Errorf("x: %w", client.ErrUnexpectedAnswer), exitNetwork},
		{context.Canceled, exitNetwork},
		{kluis.Errorf(kluis.EWRONGSECRET, "wrong"), exitAuth},
		{kluis.Errorf(kluis.ENOTFOUND, "no such transfer"), exitRefused},
		{kluis.Errorf(kluis.EINTEGRITY, "damaged"), exitIntegrity},
		{&config.SettingError{Setting: "KLUIS_DB_FILE", Problem: config.ProblemEmpty}, exitUsage},
		{errors.New("other"), exitUsage},
	}
	a := &app{p: locale.For(locale.EN)}
	for _, c := range cases {
		if got := exitCode(a.explain(c.err, "sender")); got != c.want {
			t.Errorf("%#v: exit %d, want %d", c.err, got, c.want)
		}
		if got := exitCode(c.err); got != c.want {
			t.Errorf("%#v (unexplained): exit %d, want %d", c.err, got, c.want)
		}
	}
}

func TestParseLink(t *testing.T) {
	a := &app{p: locale.For(locale.EN)}
	cases := []struct {
		in, server, base, access, frag string
		bad                            bool
	}{
		{in: "https://kluis.example.nl/r/abcdefghijklmnopqrstuvwxyz#sec_ret", base: "https://kluis.example.nl", access: "abcdefghijklmnopqrstuvwxyz", frag: "sec_ret"},
		{in: "http://127.0.0.1:8080/sub/r/abc", base: "http://127.0.0.1:8080/sub", access: "abc"},
		{in: "abcde-fghij klmno", server: "http://s", base: "http://s", access: "abcdefghijklmno"},
		{in: "https://kluis.example.nl/x/abc", bad: true},
		{in: "https://kluis.example.nl/r/", bad: true},
		{in: "../etc", server: "http://s", bad: true},
	}
	for _, c := range cases {
		base, access, frag, err := a.parseLink(c.in, c.server)
		if (err != nil) != c.bad {
			t.Errorf("%q: err %v", c.in, err)
			continue
		}
		if !c.bad && (base != c.base || access != c.access || frag != c.frag) {
			t.Errorf("%q: %q %q %q", c.in, base, access, frag)
		}
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"rapport.pdf":       "rapport.pdf",
		"../../etc/passwd":  "passwd",
		`..\..\boot.ini`:    "boot.ini",
		".bashrc":           "bashrc",
		"...":               "file-1",
		"a\x00b\nc.txt":     "ab c.txt",
		"con:tent?.txt":     "con_tent_.txt",
		"":                  "file",
		"/":                 "file",
		" spaced name.txt ": "spaced name.txt",
		// Bidirectional controls and invisible characters: what the
		// server's name cleaning drops.
		"factuur\u202efdp.exe":     "factuurfdp.exe",
		"\u2066a\u200bb\u2069.pdf": "ab.pdf",
		"\ufeffbom.txt":            "bom.txt",
		// Windows: reserved device names (with any extension, any case,
		// trailing spaces) and trailing dots and spaces.
		"CON":             "_CON",
		"nul.txt":         "_nul.txt",
		"Com1.tar.gz":     "_Com1.tar.gz",
		"lpt9 .log":       "_lpt9 .log",
		"conin$":          "_conin$",
		"com\u00b9.txt":   "_com\u00b9.txt",
		"aux\u00b9.txt":   "aux\u00b9.txt",
		"console.txt":     "console.txt",
		"com10.txt":       "com10.txt",
		"rapport.pdf. . ": "rapport.pdf",
		"evil.exe.":       "evil.exe",
	} {
		if got := safeName(in, 0); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := safeName(strings.Repeat("é", 300)+".pdf", 0); len(got) > 200 || !strings.HasSuffix(got, "é.pdf") || !utf8.ValidString(got) {
		t.Errorf("long name: %q (%d bytes)", got, len(got))
	}
	used := map[string]bool{}
	if a, b := uniqueName("A.txt", used), uniqueName("a.txt", used); a != "A.txt" || b != "a (2).txt" {
		t.Errorf("uniqueName: %q %q", a, b)
	}
}

func TestParseExpiry(t *testing.T) {
	a := &app{p: locale.For(locale.EN)}
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.Local)
	if got, _ := a.parseExpiry("14d", now); !got.Equal(now.Add(14 * 24 * time.Hour)) {
		t.Errorf("14d: %v", got)
	}
	if got, _ := a.parseExpiry("36h", now); !got.Equal(now.Add(36 * time.Hour)) {
		t.Errorf("36h: %v", got)
	}
	if got, _ := a.parseExpiry("2026-03-10", now); got.Format("2006-01-02 15:04:05") != "2026-03-10 23:59:59" {
		t.Errorf("date: %v", got)
	}
	for _, bad := range []string{"2026-02-01", "soon", "-3d", "0d"} {
		if _, err := a.parseExpiry(bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestListFlag(t *testing.T) {
	var l listFlag
	l.Set("a@x.nl; b@x.nl,c@x.nl")
	l.Set(" d@x.nl ;")
	if strings.Join(l, " ") != "a@x.nl b@x.nl c@x.nl d@x.nl" {
		t.Errorf("%q", l)
	}
}

func TestProgressOnlyOnTerminal(t *testing.T) {
	var off, on bytes.Buffer
	for _, c := range []struct {
		w  *bytes.Buffer
		on bool
	}{{&off, false}, {&on, true}} {
		p := &progress{w: c.w, p: locale.For(locale.EN), on: c.on, total: 2000, start: time.Now()}
		p.file("a.bin", 1000, 0)
		p.add(1000)
		p.file("b.bin", 1000, 500)
		p.add(500)
		p.finish()
	}
	if off.Len() != 0 {
		t.Errorf("progress drawn without a terminal: %q", off.String())
	}
	s := on.String()
	if !strings.Contains(s, "b.bin") || !strings.Contains(s, "100%") || !strings.Contains(s, "left") || !strings.Contains(s, "/s") {
		t.Errorf("progress line: %q", s)
	}
}

// TestLangFlag: --lang takes any language Kluis speaks and refuses others
// before anything is sent, naming the codes that work.
func TestLangFlag(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{
		{"send", "--to", "a@example.nl", "--password-generate", "--message", "x", "--lang", "es", "--server", "http://127.0.0.1:1"},
		{"login", "--email", "a@example.nl", "--lang", "klingon", "--server", "http://127.0.0.1:1"},
	} {
		var out bytes.Buffer
		err := run(ctx, args, noEnv, &out, &out)
		if exitCode(err) != exitUsage || !strings.Contains(err.Error()+out.String(), "nl, en, fy, de, fr, pl, tr, uk, ar") {
			t.Errorf("%s --lang: %v (exit %d)\n%s", args[0], err, exitCode(err), out.String())
		}
	}
}

// TestStatusScanRefusal: kluis status of a transfer the server's malware
// scan stopped says why in the person's language, with the file and the
// finding (the server's scan_refusal), instead of only its state.
func TestStatusScanRefusal(t *testing.T) {
	for _, tc := range []struct {
		lang locale.Lang
		r    client.ScanRefusal
		want string
	}{
		{locale.EN, client.ScanRefusal{Reason: "infected", File: 2, Files: 3, Finding: "Eicar-Signature"},
			"Not sent: the malware check found malware in file 2 of 3: Eicar-Signature. The files have been deleted."},
		{locale.NL, client.ScanRefusal{Reason: "infected", File: 1, Files: 1, Name: "factuur.pdf", Finding: "Eicar-Signature"},
			"Niet verstuurd: de malwarecontrole vond malware in bestand 1 van 1 (factuur.pdf): Eicar-Signature. De bestanden zijn verwijderd."},
		{locale.EN, client.ScanRefusal{Reason: "too_large", File: 1, Files: 1},
			"Not sent: file 1 of 1 is too large to be checked for malware. The files have been deleted."},
		{locale.NL, client.ScanRefusal{Reason: "timeout"},
			"Niet verstuurd: de malwarecontrole kon niet op tijd worden gedaan. De bestanden zijn verwijderd."},
	} {
		a := &app{p: locale.For(tc.lang)}
		var out bytes.Buffer
		r := tc.r
		a.printTransfer(&out, &client.Transfer{ID: "t1", State: "failed", PasswordMode: "generate", ScanRefusal: &r})
		if !strings.Contains(out.String(), tc.want) || !strings.Contains(out.String(), a.p.T("cli.state.failed")) {
			t.Errorf("%s %+v:\n%s\nwant %q", tc.lang, tc.r, out.String(), tc.want)
		}
	}
}
