package mail

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/kluis-nl/kluis/internal/locale"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fixed is 5 December 2026, 13:30 UTC: 14:30 in Amsterdam.
var fixed = time.Date(2026, 12, 5, 13, 30, 0, 0, time.UTC)

var testOrg = Org{
	Name:    "Gemeente Voorbeeld",
	LogoURL: "https://www.voorbeeld.nl/logo.png",
	BaseURL: "https://kluis.voorbeeld.nl/",
}

// fixtures holds the fixed data for each kind's golden files.
func fixtures() map[Kind]any {
	return map[Kind]any{
		KindVerifyCode:      VerifyCode{Code: "04821937", Minutes: 15},
		KindGatewayPassword: GatewayPassword{Link: "https://kluis.voorbeeld.nl/gateway/password/abcdefghijklmnopqrstuvwxyz", ExpiresAt: fixed},
		KindFileRequest: FileRequest{RequesterName: "Anna de Vries", RequesterEmail: "a.devries@voorbeeld.nl",
			Link: "https://kluis.voorbeeld.nl/q/abcdefghijklmnopqrstuvwxyz", ExpiresAt: fixed},
		KindFileRequestDone: FileRequestDone{Address: "jan@example.nl", Files: 2,
			Link: "https://kluis.voorbeeld.nl/requests/abcdef", ExpiresAt: fixed},
		KindInboxPassphrase: InboxPassphrase{At: fixed},
		KindDropoffArrived: DropoffArrived{Dropoff: "Team Inkomen", Address: "jan@example.nl", Files: 2,
			Link: "https://kluis.voorbeeld.nl/dropoffs/abcdef", ExpiresAt: fixed},
		KindNotify: Notify{
			SenderName:  "Anna de Vries",
			SenderPhone: "058 123 45 67",
			SenderEmail: "a.devries@voorbeeld.nl",
			Subject:     "Uw aanvraag bijzondere bijstand",
			BodyHTML: `<p>Beste meneer Jansen,</p><p>Hierbij de <b>stukken</b> die u <i>vroeg</i>:</p>` +
				`<ul><li>het besluit</li><li>de <u>berekening</u></li></ul>` +
				`<p>Vragen? Zie <a href="https://www.voorbeeld.nl/bijstand" target="_blank">onze website</a>.<br>Met vriendelijke groet,<br>Anna</p>` +
				`<script>alert(1)</script>`,
			Link:              "https://kluis.voorbeeld.nl/t/abcdefghijklmnopqrstuvwxyz#k=secretkey",
			AccessCode:        "K7QM3XPT9HRWD2FA",
			ExpiresAt:         fixed,
			PasswordRequired:  true,
			VisibleRecipients: []string{"p.jansen@example.org", "team@voorbeeld.nl"},
			Files:             []FileRef{{Index: 1, Count: 3, Size: 1_500_000}, {Index: 2, Count: 3, Size: 250_000}, {Index: 3, Count: 3, Size: 2_000}},
			HasMessage:        true,
		},
		KindConfirm: Confirm{
			TransferID: "T-2026-0042",
			Subject:    "Uw aanvraag bijzondere bijstand",
			Recipients: []RecipientLine{
				{Address: "p.jansen@example.org", Kind: "to"},
				{Address: "team@voorbeeld.nl", Kind: "cc"},
				{Address: "archief@voorbeeld.nl", Kind: "bcc"},
			},
			Files:          []FileRef{{Index: 1, Count: 2, Name: "besluit.pdf", Size: 1_500_000}, {Index: 2, Count: 2, Name: "berekening.xlsx", Size: 48_000}},
			HasMessage:     true,
			ExpiresAt:      fixed,
			PasswordMode:   "generate",
			NotifyDownload: true,
			ShowFilenames:  true,
			RecipientLang:  "nl",
			StatusURL:      "https://kluis.voorbeeld.nl/transfers/T-2026-0042",
		},
		KindDownload: Download{
			Recipient: "p.jansen@example.org",
			File:      FileRef{Index: 2, Count: 3, Size: 250_000},
			At:        fixed.Add(-26 * time.Hour),
			Subject:   "Uw aanvraag bijzondere bijstand",
			StatusURL: "https://kluis.voorbeeld.nl/transfers/T-2026-0042",
		},
		KindLockout: Lockout{
			Recipient: "p.jansen@example.org",
			Until:     fixed.Add(time.Hour),
			Failures:  20,
			Subject:   "Uw aanvraag bijzondere bijstand",
			StatusURL: "https://kluis.voorbeeld.nl/transfers/T-2026-0042",
			UnlockURL: "https://kluis.voorbeeld.nl/transfers/T-2026-0042/unlock/eenmalige-link",
		},
		KindRevoked: Revoked{
			SenderName:  "Anna de Vries",
			SenderEmail: "a.devries@voorbeeld.nl",
			At:          fixed,
			Subject:     "Uw aanvraag bijzondere bijstand",
		},
		KindExpiryReminder: ExpiryReminder{
			ExpiresAt:  fixed.Add(48 * time.Hour),
			StatusURL:  "https://kluis.voorbeeld.nl/transfers/T-2026-0042",
			Recipients: 1,
			Subject:    "Uw aanvraag bijzondere bijstand",
		},
		KindSummary: Summary{
			Subject: "Uw aanvraag bijzondere bijstand",
			Ended:   fixed,
			Recipients: []SummaryRecipient{
				{Address: "p.jansen@example.org", Downloads: []Downloaded{
					{File: FileRef{Index: 1, Count: 3, Size: 1_500_000}, At: fixed.Add(-50 * time.Hour)},
					{File: FileRef{Index: 3, Count: 3, Size: 2_000}, At: fixed.Add(-26 * time.Hour)},
				}},
				{Address: "team@voorbeeld.nl"},
			},
			StatusURL: "https://kluis.voorbeeld.nl/transfers/T-2026-0042",
		},
		KindStaffRevoked: StaffRevoked{
			TransferID: "T-2026-0042",
			Subject:    "Uw aanvraag bijzondere bijstand",
			Reason:     "Verzoek 2026-118: verkeerde ontvanger",
			At:         fixed,
			StatusURL:  "https://kluis.voorbeeld.nl/transfers/T-2026-0042",
		},
		KindNotDelivered: NotDelivered{
			Subject:    "Stukken bijzondere bijstand",
			SentAt:     fixed.Add(-2 * time.Hour),
			Recipients: []string{"p.jansen@example.org", "team@voorbeeld.nl"},
			Reason:     ScanInfected,
			File:       FileRef{Index: 2, Count: 3, Name: "besluit.pdf", Size: 250_000},
		},
		KindScanFailed: ScanFailed{
			Reason:    ScanInfected,
			File:      FileRef{Index: 2, Count: 3, Size: 250_000},
			Since:     fixed.Add(-2 * time.Hour),
			Subject:   "Uw aanvraag bijzondere bijstand",
			StatusURL: "https://kluis.voorbeeld.nl/transfers/T-2026-0042",
		},
	}
}

func render(t *testing.T, kind Kind, lang string, data any) *Message {
	t.Helper()
	m, err := Render(kind, lang, testOrg, "p.jansen@example.org", data)
	if err != nil {
		t.Fatalf("Render(%s, %s): %v", kind, lang, err)
	}
	return m
}

// goldenLangs are the languages with golden files: the source and English.
// Every other language is rendered by TestEveryKindInEveryLanguage.
var goldenLangs = []string{"nl", "en"}

func TestGolden(t *testing.T) {
	fx := fixtures()
	dir := filepath.Join("testdata", "golden")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Variants of a kind with their own golden files: a reply's notice
	// (to the original sender; no subject of the sender's own, so the
	// "Reply from" subject shows), and one to a transfer with a subject,
	// from a replier who gave their name ("Re: <subject>").
	reply := fx[KindNotify].(Notify)
	reply.Reply, reply.Subject, reply.BodyHTML, reply.VisibleRecipients = true, "", "", nil
	reply.SenderName, reply.SenderPhone, reply.SenderEmail = "p.jansen@example.org", "", "p.jansen@example.org"
	replyRe := reply
	replyRe.SenderName, replyRe.ReplySubject = "Piet Jansen", "Uw aanvraag bijzondere bijstand"
	type variant struct {
		kind Kind
		name string
		data any
	}
	var variants []variant
	for _, kind := range Kinds {
		variants = append(variants, variant{kind, string(kind), fx[kind]})
	}
	variants = append(variants, variant{KindNotify, "notify-reply", reply}, variant{KindNotify, "notify-reply-re", replyRe})
	// The lock that lasts until the sender unblocks it (no date).
	held := fx[KindLockout].(Lockout)
	held.Until, held.Failures = time.Time{}, 50
	variants = append(variants, variant{KindLockout, "lockout-held", held})
	// A revoked transfer without a subject of its own, downloaded as one ZIP.
	revoked := fx[KindSummary].(Summary)
	revoked.Revoked, revoked.Subject = true, ""
	revoked.Recipients = []SummaryRecipient{{Address: "p.jansen@example.org", Downloads: []Downloaded{{File: FileRef{Index: -1, Count: 3}, At: fixed.Add(-2 * time.Hour)}}}}
	variants = append(variants, variant{KindSummary, "download_summary-revoked", revoked})
	// The scan that could not run in time, and the file too large to scan
	// (named: the sender chose to show file names).
	timeout := fx[KindScanFailed].(ScanFailed)
	timeout.Reason, timeout.File = ScanTimeout, FileRef{}
	variants = append(variants, variant{KindScanFailed, "scan_failed-timeout", timeout})
	large := fx[KindScanFailed].(ScanFailed)
	large.Reason, large.File = ScanTooLarge, FileRef{Index: 1, Count: 1, Name: "scan.tif", Size: 400_000_000}
	variants = append(variants, variant{KindScanFailed, "scan_failed-too_large", large})
	// Kluis's non-delivery report when the scan could not run in time.
	ndr := fx[KindNotDelivered].(NotDelivered)
	ndr.Reason, ndr.File, ndr.Since = ScanTimeout, FileRef{}, fixed.Add(-90*time.Minute)
	variants = append(variants, variant{KindNotDelivered, "not_delivered-timeout", ndr})
	for _, v := range variants {
		kind := v.kind
		for _, lang := range goldenLangs {
			m := render(t, kind, lang, v.data)
			if m.Lang != lang || m.Kind != kind {
				t.Errorf("%s.%s: got kind %s lang %s", kind, lang, m.Kind, m.Lang)
			}
			for ext, got := range map[string]string{"subject": m.Subject + "\n", "txt": m.Text, "html": m.HTML} {
				name := filepath.Join(dir, v.name+"."+lang+"."+ext)
				if *update {
					if err := os.WriteFile(name, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(name)
				if err != nil {
					t.Fatalf("%v (run go test ./internal/mail -update)", err)
				}
				if got != string(want) {
					t.Errorf("%s differs from the golden file; review the change and run go test ./internal/mail -update\n--- got ---\n%s", name, got)
				}
			}
		}
	}
}

func TestHTMLIsWellFormed(t *testing.T) {
	fx := fixtures()
	for _, kind := range Kinds {
		for _, lang := range Languages {
			m := render(t, kind, lang, fx[kind])
			doc, err := html.Parse(strings.NewReader(m.HTML))
			if err != nil {
				t.Fatalf("%s.%s: %v", kind, lang, err)
			}
			var htmlLang, htmlDir string
			var imgs, buttons int
			var walk func(*html.Node)
			walk = func(n *html.Node) {
				if n.Type == html.ElementNode {
					switch n.Data {
					case "html":
						htmlLang, htmlDir = attr(n, "lang"), attr(n, "dir")
					case "img":
						imgs++
						if attr(n, "alt") == "" {
							t.Errorf("%s.%s: image without alt text", kind, lang)
						}
						if attr(n, "src") != testOrg.LogoURL {
							t.Errorf("%s.%s: image %q other than the logo", kind, lang, attr(n, "src"))
						}
					case "script", "link", "iframe", "object", "embed", "form", "style":
						t.Errorf("%s.%s: element <%s> not allowed in a mail", kind, lang, n.Data)
					case "a":
						href := attr(n, "href")
						if !strings.HasPrefix(href, "https://") && !strings.HasPrefix(href, "mailto:") {
							t.Errorf("%s.%s: link %q", kind, lang, href)
						}
						if strings.Contains(attr(n, "style"), "background") || strings.Contains(attr(n, "style"), "padding:12px") {
							buttons++
						}
					}
					for _, a := range n.Attr {
						if strings.HasPrefix(a.Key, "on") || strings.Contains(a.Val, "url(") {
							t.Errorf("%s.%s: attribute %s=%q", kind, lang, a.Key, a.Val)
						}
					}
				}
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c)
				}
			}
			walk(doc)
			if htmlLang != lang || htmlDir != locale.Lang(lang).Dir() {
				t.Errorf("%s.%s: <html lang=%q dir=%q>", kind, lang, htmlLang, htmlDir)
			}
			if imgs != 1 {
				t.Errorf("%s.%s: %d images, want the logo only", kind, lang, imgs)
			}
			if kind == KindNotify && buttons != 1 {
				t.Errorf("notify.%s: %d buttons, want 1", lang, buttons)
			}
			if !strings.Contains(m.HTML, "<title>"+htmlEscape(m.Subject)+"</title>") {
				t.Errorf("%s.%s: title is not the subject", kind, lang)
			}
		}
	}
}

func htmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&#34;")
		case '\'':
			b.WriteString("&#39;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func TestNoLogoReadable(t *testing.T) {
	org := testOrg
	org.LogoURL = "javascript:alert(1)"
	m, err := Render(KindVerifyCode, "nl", org, "a@example.org", VerifyCode{Code: "123456"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<img") || strings.Contains(m.HTML, "javascript") {
		t.Error("unusable logo URL was rendered")
	}
	if !strings.Contains(m.HTML, "Gemeente Voorbeeld") {
		t.Error("organisation name missing without logo")
	}
	if err := org.Validate(); err == nil {
		t.Error("Validate accepted a javascript: logo")
	}
	if err := testOrg.Validate(); err != nil {
		t.Error(err)
	}
}

func TestHeaderInjection(t *testing.T) {
	evil := "Hallo\r\nBcc: evil@x.example\r\n\r\n<b>body</b>\u2028X\x00"
	fx := fixtures()
	n := fx[KindNotify].(Notify)
	n.SenderName, n.Subject = evil, evil
	c := fx[KindConfirm].(Confirm)
	c.Subject = evil
	d := fx[KindDownload].(Download)
	d.Recipient = evil
	r := fx[KindRevoked].(Revoked)
	r.SenderName, r.Subject = evil, evil
	l := fx[KindLockout].(Lockout)
	l.Subject, l.Recipient = evil, evil
	e := fx[KindExpiryReminder].(ExpiryReminder)
	e.Subject = evil
	org := testOrg
	org.Name = evil
	cases := map[Kind]any{KindNotify: n, KindConfirm: c, KindDownload: d, KindRevoked: r, KindLockout: l, KindExpiryReminder: e, KindVerifyCode: fx[KindVerifyCode]}
	for kind, data := range cases {
		for _, lang := range Languages {
			m, err := Render(kind, lang, org, "p.jansen@example.org", data)
			if err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			if strings.ContainsAny(m.Subject, "\r\n\x00\u2028") {
				t.Errorf("%s.%s: subject %q has a line break or control character", kind, lang, m.Subject)
			}
			if strings.Contains(m.HTML, "<b>body</b>") {
				t.Errorf("%s.%s: HTML in a name was not escaped", kind, lang)
			}
		}
	}
	for _, to := range []string{
		"a@example.org\r\nBcc: evil@x.example",
		"a@example.org\nBcc: evil@x.example",
		"Anna <a@example.org>",
		"a@example.org, b@example.org",
		"a@example.org; b@example.org",
		"",
		"not an address",
	} {
		if _, err := Render(KindVerifyCode, "nl", testOrg, to, VerifyCode{Code: "123456"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("recipient %q accepted (err %v)", to, err)
		}
	}
	if got := HeaderValue(strings.Repeat("a", 500)); len([]rune(got)) != maxHeaderRunes {
		t.Errorf("long subject not cut: %d", len([]rune(got)))
	}
}

func TestSanitizeBody(t *testing.T) {
	tests := []struct{ in, want string }{
		{`<b>vet</b> <strong>sterk</strong> <i>schuin</i> <em>nadruk</em> <u>onder</u> <s>door</s> <strike>oud</strike> <del>weg</del>`,
			`<b>vet</b> <strong>sterk</strong> <i>schuin</i> <em>nadruk</em> <u>onder</u> <s>door</s> <strike>oud</strike> <del>weg</del>`},
		{`<p>een<br>twee</p><ul><li>a</li></ul><ol><li>b</li></ol>`, `<p>een<br>twee</p><ul><li>a</li></ul><ol><li>b</li></ol>`},
		{`<script>alert(1)</script>tekst`, `tekst`},
		{`<p onclick="alert(1)" style="color:red" class="x">tekst</p>`, `<p>tekst</p>`},
		{`<style>p{color:red}</style>tekst`, `tekst`},
		{`<a href="javascript:alert(1)">klik</a>`, `klik`},
		{`<a href="JaVaScRiPt:alert(1)">klik</a>`, `klik`},
		{`<a href="data:text/html,x">klik</a>`, `klik`},
		{`<a href="/relatief">klik</a>`, `klik`},
		{`<a href="https://example.org/?a=1&b=2" target="_blank" rel="opener" onclick="x()">klik</a>`,
			`<a href="https://example.org/?a=1&amp;b=2" rel="noopener noreferrer">klik</a>`},
		{`<a href="mailto:a@example.org">mail</a>`, `<a href="mailto:a@example.org" rel="noopener noreferrer">mail</a>`},
		{`<img src="https://evil.example/track.png" alt="x">foto`, `foto`},
		{`<iframe src="https://evil.example"></iframe>x`, `x`},
		{`<h1>kop</h1><div><span>tekst</span></div>`, `koptekst`},
		{`<form><input value="x"></form>`, ``},
		{`a < b & c`, `a &lt; b &amp; c`},
	}
	for _, tt := range tests {
		if got := SanitizeBody(tt.in); got != tt.want {
			t.Errorf("SanitizeBody(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

func TestBodyText(t *testing.T) {
	tests := []struct{ in, want string }{
		{`<p>Beste lezer,</p><p>Regel een<br>regel twee</p>`, "Beste lezer,\n\nRegel een\nregel twee"},
		{`<p>Lijst:</p><ul><li>een</li><li><b>twee</b></li></ul><p>Einde</p>`, "Lijst:\n\n- een\n- twee\n\nEinde"},
		{`<ol><li>eerst</li><li>dan</li></ol>`, "1. eerst\n2. dan"},
		{`Zie <a href="https://example.org/x">de website</a>.`, "Zie de website (https://example.org/x)."},
		{`<a href="https://example.org/">https://example.org/</a>`, "https://example.org/"},
		{`<a href="mailto:a@example.org">a@example.org</a>`, "a@example.org"},
		{`<script>x</script>a &amp; b`, "a & b"},
		{``, ""},
	}
	for _, tt := range tests {
		if got := BodyText(tt.in); got != tt.want {
			t.Errorf("BodyText(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// The caller passes only To and Cc addresses; a Bcc recipient's own mail and
// everybody else's mail contain exactly those, and never the Bcc address.
func TestNotifyBccNotListed(t *testing.T) {
	n := fixtures()[KindNotify].(Notify)
	n.VisibleRecipients = []string{"to@example.org", "cc@example.org"}
	for _, to := range []string{"to@example.org", "cc@example.org", "bcc@example.org"} {
		for _, lang := range Languages {
			m, err := Render(KindNotify, lang, testOrg, to, n)
			if err != nil {
				t.Fatal(err)
			}
			p := locale.For(locale.Lang(lang))
			line := p.T("mail.common.label", p.T("mail.notify.sent_to")) + " to@example.org" + p.T("mail.common.list_separator") + "cc@example.org"
			if !strings.Contains(m.Text, "\n"+line+"\n") {
				t.Errorf("%s/%s: visible recipients line missing:\n%s", to, lang, m.Text)
			}
			for _, part := range []string{m.Subject, m.Text, m.HTML} {
				if strings.Contains(part, "bcc@example.org") {
					t.Errorf("%s/%s: the Bcc address appears in the mail", to, lang)
				}
			}
			if m.To != to {
				t.Errorf("To = %q", m.To)
			}
		}
	}
}

func TestNoFileNamesUnlessSet(t *testing.T) {
	n := fixtures()[KindNotify].(Notify)
	for _, lang := range Languages {
		m := render(t, KindNotify, lang, n)
		want := map[string]string{"nl": "- 3 bestanden (1,8 MB)", "en": "- 3 files (1.8 MB)"}[lang]
		if !strings.Contains(m.Text, want) {
			t.Errorf("%s: %q missing:\n%s", lang, want, m.Text)
		}
	}
	// A single unnamed file among named ones: no names at all.
	n.Files = []FileRef{{Index: 1, Count: 2, Name: "geheim-dossier.pdf", Size: 10}, {Index: 2, Count: 2, Size: 10}}
	m := render(t, KindNotify, "nl", n)
	if strings.Contains(m.Text+m.HTML, "geheim-dossier") {
		t.Error("file name shown while not every file has a name")
	}
	// With names: the names are listed.
	n.Files[1].Name = "bijlage.docx"
	m = render(t, KindNotify, "en", n)
	for _, want := range []string{"- geheim-dossier.pdf (10 bytes)", "- bijlage.docx (10 bytes)"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("%q missing:\n%s", want, m.Text)
		}
	}
	// Download notice: position unless named, ZIP for all.
	d := fixtures()[KindDownload].(Download)
	for lang, want := range map[string]string{"nl": "- bestand 2 van 3 (250 kB)", "en": "- file 2 of 3 (250 kB)"} {
		if m := render(t, KindDownload, lang, d); !strings.Contains(m.Text, want) {
			t.Errorf("%s: %q missing:\n%s", lang, want, m.Text)
		}
	}
	d.File = FileRef{Index: -1, Count: 3, Size: -1}
	if m := render(t, KindDownload, "en", d); !strings.Contains(m.Text, "- all files (as a ZIP file)\n") || !strings.Contains(m.Subject, "all files") {
		t.Errorf("ZIP download:\n%s\n%s", m.Subject, m.Text)
	}
	d.File = FileRef{Index: 1, Count: 1, Name: "besluit.pdf", Size: 1_500_000}
	if m := render(t, KindDownload, "nl", d); !strings.Contains(m.Text, "- besluit.pdf (1,5 MB)") {
		t.Errorf("named download:\n%s", m.Text)
	}
}

func TestPasswordNotes(t *testing.T) {
	n := fixtures()[KindNotify].(Notify)
	m := render(t, KindNotify, "en", n)
	want := "You need a password to open the files. The sender gives it to you in another way, for example by phone or text message. It is not in this e-mail."
	if !strings.Contains(m.Text, want) || !strings.Contains(m.HTML, want) {
		t.Errorf("password note missing:\n%s", m.Text)
	}
	n.PasswordRequired = false
	m = render(t, KindNotify, "nl", n)
	if !strings.Contains(m.Text, "U heeft geen wachtwoord nodig. Iedereen die deze e-mail heeft, kan de bestanden openen.") {
		t.Errorf("no-password note missing:\n%s", m.Text)
	}
}

// Canary: no data struct has a field that could carry a transfer password or
// the confidential message. Every string field is listed here; a new one
// must be added on purpose, after checking it is not secret.
func TestCanaryNoSecretFields(t *testing.T) {
	allowed := map[string][]string{
		"VerifyCode":       {"Code"},
		"FileRef":          {"Name"},
		"Notify":           {"SenderName", "SenderPhone", "SenderEmail", "Subject", "BodyHTML", "Link", "AccessCode", "ReplySubject"},
		"RecipientLine":    {"Address", "Kind"},
		"Confirm":          {"TransferID", "Subject", "PasswordMode", "Notify", "RecipientLang", "StatusURL"},
		"Download":         {"Recipient", "Subject", "StatusURL"},
		"Lockout":          {"Recipient", "Subject", "StatusURL", "UnlockURL"},
		"Revoked":          {"SenderName", "SenderEmail", "Subject"},
		"ExpiryReminder":   {"StatusURL", "Subject"},
		"Summary":          {"Subject", "StatusURL"},
		"SummaryRecipient": {"Address"},
	}
	for _, v := range []any{VerifyCode{}, FileRef{}, Notify{}, RecipientLine{}, Confirm{}, Download{}, Lockout{}, Revoked{}, ExpiryReminder{}, Summary{}, SummaryRecipient{}} {
		typ := reflect.TypeOf(v)
		var got []string
		for f := range typ.Fields() {
			if f.Type.Kind() == reflect.String || f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String {
				if f.Name != "VisibleRecipients" {
					got = append(got, f.Name)
				}
			}
			if f.Type.Kind() == reflect.String && regexp.MustCompile(`(?i)passw(or)?d$|secret|^message$|confidential`).MatchString(f.Name) {
				t.Errorf("%s.%s looks like a field for a secret", typ.Name(), f.Name)
			}
		}
		if !slices.Equal(got, allowed[typ.Name()]) {
			t.Errorf("%s string fields = %v, reviewed list %v", typ.Name(), got, allowed[typ.Name()])
		}
	}

	// The rendered notification contains only what was passed in: a
	// password and message that exist in the transfer never show up.
	const password = "Zx9-Canary-Wachtwoord-7Q" // and a message "CANARY … BSN 123456782"
	n := fixtures()[KindNotify].(Notify)
	for _, lang := range Languages {
		m := render(t, KindNotify, lang, n)
		for _, part := range []string{m.Subject, m.Text, m.HTML} {
			if strings.Contains(part, password) || strings.Contains(part, "CANARY") || strings.Contains(part, "123456782") {
				t.Errorf("%s: secret leaked into the notification", lang)
			}
		}
	}
}

func TestAccessCodeGrouped(t *testing.T) {
	if got := GroupCode("ABCDEFGHIJKLMNOPQRSTUVWXYZ"); got != "abcde-fghij-klmno-pqrst-uvwxy-z" {
		t.Errorf("GroupCode = %q", got)
	}
	if got := GroupCode("abcde-FGHIJ-klmno-pqrst-uvwxy-z"); got != "abcde-fghij-klmno-pqrst-uvwxy-z" {
		t.Errorf("GroupCode not idempotent: %q", got)
	}
	if got := GroupCode("k7qm 3xpt-9hrw d2fa"); got != "K7QM-3XPT-9HRW-D2FA" {
		t.Errorf("GroupCode of a receive code = %q", got)
	}
	m := render(t, KindNotify, "en", fixtures()[KindNotify])
	if !strings.Contains(m.Text, "https://kluis.voorbeeld.nl/receive and enter this code:\nK7QM-3XPT-9HRW-D2FA\n") {
		t.Errorf("access code missing:\n%s", m.Text)
	}
}

func TestRenderValidates(t *testing.T) {
	fx := fixtures()
	// Data of the wrong type for the kind.
	if _, err := Render(KindNotify, "nl", testOrg, "a@example.org", fx[KindConfirm]); !errors.Is(err, ErrInvalid) {
		t.Errorf("wrong data type: %v", err)
	}
	if _, err := Render("nonsense", "nl", testOrg, "a@example.org", fx[KindConfirm]); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown kind: %v", err)
	}
	// Pointers work too.
	n := fx[KindNotify].(Notify)
	if _, err := Render(KindNotify, "en", testOrg, "a@example.org", &n); err != nil {
		t.Errorf("pointer data: %v", err)
	}
	for _, code := range []string{"12345", "123456789", "12 3456", "abcdef", ""} {
		if _, err := Render(KindVerifyCode, "nl", testOrg, "a@example.org", VerifyCode{Code: code}); !errors.Is(err, ErrInvalid) {
			t.Errorf("code %q accepted", code)
		}
	}
	bad := n
	bad.Link = "javascript:alert(1)"
	if _, err := Render(KindNotify, "nl", testOrg, "a@example.org", bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("javascript link accepted: %v", err)
	}
	c := fx[KindConfirm].(Confirm)
	c.PasswordMode = "plain"
	if _, err := Render(KindConfirm, "nl", testOrg, "a@example.org", c); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad password mode accepted: %v", err)
	}
	// A language Kluis has no catalog for: Dutch.
	m, err := Render(KindVerifyCode, "es", testOrg, "a@example.org", fx[KindVerifyCode])
	if err != nil || m.Lang != "nl" || !strings.Contains(m.Text, "Uw verificatiecode is") {
		t.Errorf("fallback language: %v %+v", err, m)
	}
	for in, want := range map[string]string{"EN": "en", "en-GB": "en", "": "nl", "de-AT": "de", "ar": "ar", "fy_NL": "fy", "es": "nl", "../en": "nl"} {
		if got := Lang(in); got != want {
			t.Errorf("Lang(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVerifyCodeOneGroup(t *testing.T) {
	for _, lang := range Languages {
		m := render(t, KindVerifyCode, lang, VerifyCode{Code: "04821937", Minutes: 1})
		if !strings.Contains(m.Text, "\n    04821937\n") {
			t.Errorf("%s: code not on its own line:\n%s", lang, m.Text)
		}
		if !strings.Contains(m.HTML, "white-space:nowrap;color:#1f2937;\">04821937</span>") {
			t.Errorf("%s: code not one unbroken group", lang)
		}
		if strings.Contains(m.Subject, "04821937") {
			t.Errorf("%s: code in subject", lang)
		}
	}
}

func TestMessageOnlyAndVariants(t *testing.T) {
	n := fixtures()[KindNotify].(Notify)
	n.Files, n.BodyHTML, n.Subject, n.VisibleRecipients, n.SenderPhone = nil, "", "", nil, ""
	for _, lang := range Languages {
		p := locale.For(locale.Lang(lang))
		m := render(t, KindNotify, lang, n)
		if want := p.T("mail.notify.subject", "Anna de Vries"); m.Subject != want {
			t.Errorf("%s: default subject %q, want %q", lang, m.Subject, want)
		}
		if strings.Contains(m.Text, p.T("mail.notify.sent_to")) {
			t.Errorf("%s: empty recipients line", lang)
		}
	}
	// Every kind renders in both languages with minimal data too.
	minimal := map[Kind]any{
		KindVerifyCode:     VerifyCode{Code: "123456"},
		KindConfirm:        Confirm{Recipients: []RecipientLine{{Address: "a@example.org", Kind: "TO"}}, Files: []FileRef{{Index: 1, Count: 1, Size: -1}}, ExpiresAt: fixed, PasswordMode: "none"},
		KindDownload:       Download{Recipient: "a@example.org", File: FileRef{Index: 1}, At: fixed},
		KindLockout:        Lockout{},
		KindRevoked:        Revoked{SenderEmail: "a@example.org"},
		KindExpiryReminder: ExpiryReminder{ExpiresAt: fixed},
	}
	for kind, data := range minimal {
		for _, lang := range Languages {
			m, err := Render(kind, lang, Org{}, "a@example.org", data)
			if err != nil {
				t.Fatalf("%s.%s: %v", kind, lang, err)
			}
			if strings.Contains(m.Text+m.HTML, "<no value>") || strings.Contains(m.Text, "0001") {
				t.Errorf("%s.%s: placeholder in output:\n%s", kind, lang, m.Text)
			}
			if !strings.Contains(m.Text, "Kluis") {
				t.Errorf("%s.%s: default organisation name missing", kind, lang)
			}
		}
	}
}

// TestEveryKindInEveryLanguage renders every kind, in its variants, in
// every language of package locale with complete data: no text may show a
// formatting error, an empty value or a catalog key instead of a text, and
// every key the templates use is in the catalogs. Every language has every
// mail text (TestCatalogsAreConsistent in package locale); should one ever
// lack a text, it falls back to English, which this checks too.
func TestEveryKindInEveryLanguage(t *testing.T) {
	used := templateKeys(t)
	if len(used) < 100 {
		t.Fatalf("found only %d keys in the templates; is the pattern broken?", len(used))
	}
	var catalogKeys []string
	for _, k := range locale.Keys(locale.Default) {
		if strings.HasPrefix(k, "mail.") || strings.HasPrefix(k, "lang.") {
			catalogKeys = append(catalogKeys, k)
		}
	}
	for _, k := range used {
		if !slices.Contains(catalogKeys, k) {
			t.Errorf("the templates use %s, which the source catalog lacks", k)
		}
	}
	for _, k := range catalogKeys {
		if strings.HasPrefix(k, "mail.") && !slices.Contains(used, k) {
			t.Errorf("%s is in the catalog but no template uses it", k)
		}
	}
	for _, lang := range locale.All {
		p := locale.For(lang)
		started := slices.ContainsFunc(locale.Keys(lang), func(k string) bool { return strings.HasPrefix(k, "mail.") })
		for _, k := range used {
			if started && !p.Has(k) {
				t.Errorf("%s: %s is missing", lang, k)
			}
		}
		for _, v := range mailVariants() {
			m, err := Render(v.kind, string(lang), testOrg, "p.jansen@example.org", v.data)
			if err != nil {
				t.Fatalf("%s.%s: %v", v.name, lang, err)
			}
			if m.Lang != string(lang) {
				t.Errorf("%s.%s: written in %s", v.name, lang, m.Lang)
			}
			for part, s := range map[string]string{"subject": m.Subject, "text": m.Text, "html": m.HTML} {
				for _, bad := range []string{"%!", "<no value>", "\ue000", "\ue001"} {
					if strings.Contains(s, bad) {
						t.Errorf("%s.%s %s holds %q:\n%s", v.name, lang, part, bad, s)
					}
				}
				for _, k := range catalogKeys {
					if strings.Contains(s, k) {
						t.Errorf("%s.%s %s shows the key %s instead of its text", v.name, lang, part, k)
					}
				}
			}
			if !strings.Contains(m.HTML, `<html lang="`+string(lang)+`" dir="`+lang.Dir()+`">`) {
				t.Errorf("%s.%s: <html> lacks lang and dir", v.name, lang)
			}
			if lang.Dir() == "rtl" && strings.Contains(m.HTML, "padding-left") {
				t.Errorf("%s.%s: a right-to-left mail indents on the left", v.name, lang)
			}
		}
	}
}

type mailVariant struct {
	kind Kind
	name string
	data any
}

// mailVariants are the fixtures and the variants that take other texts:
// the reply's notice, a message-only notice without password, a lock that
// waits for the sender, a revocation without date, nobody downloaded.
func mailVariants() []mailVariant {
	fx := fixtures()
	var out []mailVariant
	for _, k := range Kinds {
		out = append(out, mailVariant{k, string(k), fx[k]})
	}
	reply := fx[KindNotify].(Notify)
	reply.Reply, reply.Subject, reply.BodyHTML, reply.VisibleRecipients = true, "", "", nil
	msgOnly := fx[KindNotify].(Notify)
	msgOnly.Files, msgOnly.PasswordRequired, msgOnly.Subject = nil, false, ""
	named := fx[KindNotify].(Notify)
	named.Files = []FileRef{{Index: 1, Count: 2, Name: "besluit.pdf", Size: 1_500_000}, {Index: 2, Count: 2, Name: "bijlage.pdf", Size: -1}}
	held := fx[KindLockout].(Lockout)
	held.Until, held.Failures, held.Recipient = time.Time{}, 50, ""
	noCount := fx[KindLockout].(Lockout)
	noCount.Failures = 0
	revoked := fx[KindRevoked].(Revoked)
	revoked.At, revoked.Subject, revoked.SenderEmail = time.Time{}, "", ""
	zip := fx[KindDownload].(Download)
	zip.File = FileRef{Index: -1, Count: 3, Size: -1}
	confirm := fx[KindConfirm].(Confirm)
	confirm.PasswordMode, confirm.NotifyDownload, confirm.ShowFilenames, confirm.RecipientLang = "none", false, false, "ar"
	confirm.Files = []FileRef{{Index: 1, Count: 1, Size: 10}}
	reminder := fx[KindExpiryReminder].(ExpiryReminder)
	reminder.Recipients = 0
	return append(out,
		mailVariant{KindNotify, "notify-reply", reply},
		mailVariant{KindNotify, "notify-message", msgOnly},
		mailVariant{KindNotify, "notify-named", named},
		mailVariant{KindLockout, "lockout-held", held},
		mailVariant{KindLockout, "lockout-nocount", noCount},
		mailVariant{KindRevoked, "revoked-nodate", revoked},
		mailVariant{KindDownload, "download-zip", zip},
		mailVariant{KindConfirm, "confirm-nopassword", confirm},
		mailVariant{KindExpiryReminder, "expiry_reminder-all", reminder},
	)
}

// templateKeys returns every catalog key the templates and this package's
// code name, with the keys built from parts spelled out.
func templateKeys(t *testing.T) []string {
	t.Helper()
	re := regexp.MustCompile(`"(mail\.[a-z_]+\.[a-z_]*[a-z])"`)
	var srcs []string
	entries, err := templateFS.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := templateFS.ReadFile("templates/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, string(b))
	}
	b, err := os.ReadFile("format.go")
	if err != nil {
		t.Fatal(err)
	}
	srcs = append(srcs, string(b))
	seen := map[string]bool{}
	for _, s := range srcs {
		for _, m := range re.FindAllStringSubmatch(s, -1) {
			seen[m[1]] = true
		}
	}
	// (print "mail.confirm.kind_" .Kind) and (print "lang." .D.RecipientLang)
	for _, k := range []string{"to", "cc", "bcc"} {
		seen["mail.confirm.kind_"+k] = true
	}
	for _, l := range Languages {
		seen["lang."+l] = true
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestStaffRevokedNeutral: the sender's mail after a revocation in the
// admin console says a staff member of the organisation did it, in every
// language, and never names the staff role (helpdesk, admin, auditor) or
// how the console works inside.
func TestStaffRevokedNeutral(t *testing.T) {
	roleWords := []string{
		"helpdesk", "admin", "auditor", "console", // nl, en, de, fy, pl and the role names themselves
		"service d’assistance", "administrat", // fr
		"مكتب المساعدة", "yardım masası", "служб", // ar, tr, uk
	}
	d := fixtures()[KindStaffRevoked].(StaffRevoked)
	for _, lang := range Languages {
		m, err := Render(KindStaffRevoked, lang, testOrg, "p.jansen@example.org", d)
		if err != nil {
			t.Fatalf("%s: %v", lang, err)
		}
		for part, text := range map[string]string{"subject": m.Subject, "text": m.Text, "html": m.HTML} {
			low := strings.ToLower(text)
			for _, w := range roleWords {
				if strings.Contains(low, strings.ToLower(w)) {
					t.Errorf("%s %s names %q:\n%s", lang, part, w, text)
				}
			}
		}
		// Who did it: a staff member of the organisation, by name.
		body := m.Text[:strings.Index(m.Text, d.TransferID)+len(d.TransferID)]
		if !strings.Contains(body, testOrg.Name) {
			t.Errorf("%s: the first sentence does not name %s:\n%s", lang, testOrg.Name, m.Text)
		}
	}
}
