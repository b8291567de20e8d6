package web

import (
	"bytes"
	"context"
	"database/sql"
	"html"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/scan/scantest"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/transfer"
)

const dropoffPolicy = `{"dropoffs": [{"slug": "inkomen", "team": "inkomen",
  "name": {"nl": "Team Inkomen", "en": "Income team", "uk": "Команда доходів"},
  "description": {"nl": "Stuur ons uw loonstroken."}, "limits": {"max_files": 3}}]}`

// TestDropoffPages: a citizen verifies their address on /to/{slug} (in
// Ukrainian), sends a file and a message without script; both team
// members are mailed; a member opens it only with the inbox unlocked and
// downloads the same bytes; the member who was waiting (told so on their
// pages) gets the key as soon as the first one unlocks their inbox; a
// removed member cannot open what arrives afterwards; and the data folder plus the master key hold neither the content nor a
// key that opens it.
func TestDropoffPages(t *testing.T) {
	t.Parallel()
	logs := kluistest.NewLogs()
	a := startApp(t, TestAppOptions{Policy: dropoffPolicy, Logs: logs})
	e := &senderEnv{env: &env{app: a, svc: a.Transfers, srv: testServer{URL: a.URL}, web: a.Web, logs: logs}, senders: a.Senders, mails: &mails{app: a}}
	ctx := context.Background()
	base := a.URL
	has := func(t *testing.T, body, lang, key string, args ...any) {
		t.Helper()
		if !strings.Contains(html.UnescapeString(body), translate(lang, key, args...)) {
			t.Errorf("page lacks %s (%s)", key, lang)
		}
	}
	const pass = "Kanarie-Team-Zin-8841"
	anna, bob := e.client(t), e.client(t)
	annaTok := e.login(t, anna, "anna@gemeente.nl")
	bobTok := e.loginLang(t, bob, "bob@gemeente.nl", "en") // bob reads his mail in English
	for _, c := range []*http.Client{anna, bob} {
		if resp, _ := post(t, c, base+"/inbox", url.Values{"passphrase": {pass}, "passphrase_again": {pass}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("inbox: %d", resp.StatusCode)
		}
	}
	if _, err := e.senders.AddTeamMember(ctx, "inkomen", "anna@gemeente.nl"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.senders.AddTeamMember(ctx, "inkomen", "bob@gemeente.nl"); err != nil {
		t.Fatal(err)
	}

	// The start page lists the point; an unknown point is not found.
	if _, body := get(t, anna, base+"/"); !strings.Contains(body, `href="/to/inkomen"`) || !strings.Contains(body, "Team Inkomen") {
		t.Error("the start page does not list the drop-off point")
	}
	if resp, _ := get(t, anna, base+"/to/onbekend"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown point: %d", resp.StatusCode)
	}

	// The citizen verifies, in Ukrainian.
	citizen := e.client(t)
	resp, body := getLang(t, citizen, base+"/to/inkomen", "uk")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Команда доходів") {
		t.Fatalf("to page: %d", resp.StatusCode)
	}
	has(t, body, "uk", "to.verify_submit")
	if strings.Contains(body, "anna@gemeente.nl") || strings.Contains(body, "bob@gemeente.nl") {
		t.Error("the page shows a team member's address")
	}
	resp, body = postLang(t, citizen, base+"/to/inkomen/verify", url.Values{"name": {""}, "email": {"geen adres"}}, "uk")
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad verify form: %d", resp.StatusCode)
	}
	has(t, body, "uk", "to.error_name_empty")
	has(t, body, "uk", "to.error_email")
	resp, body = postLang(t, citizen, base+"/to/inkomen/verify", url.Values{"name": {"Petro"}, "email": {"petro@example.org"}}, "uk")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("verify: %d", resp.StatusCode)
	}
	has(t, body, "uk", "to.code_submit")
	m := e.mails.last(mail.KindVerifyCode, "petro@example.org")
	if m == nil {
		t.Fatal("no code mail")
	}
	code := codePattern.FindString(m.Text)
	if resp, body := postLang(t, citizen, base+"/to/inkomen/code", url.Values{"code": {"00000000"}}, "uk"); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("wrong code: %d", resp.StatusCode)
	} else {
		has(t, body, "uk", "to.error_code_wrong")
	}
	if resp, _ := postLang(t, citizen, base+"/to/inkomen/code", url.Values{"code": {code}}, "uk"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("code: %d\n%s", resp.StatusCode, logs.String())
	}
	_, body = getLang(t, citizen, base+"/to/inkomen", "uk")
	has(t, body, "uk", "filereq.submit")
	has(t, body, "uk", "to.protected", "Команда доходів")

	// Sending: nothing is an error; then a file and a message.
	if resp, body := postFiles(t, citizen, base+"/to/inkomen", " ", nil); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("empty send: %d", resp.StatusCode)
	} else {
		has(t, body, "nl", "filereq.error_empty")
	}
	const canaryMsg = "KanarieBericht-dropoff-7731"
	content := bytes.Repeat([]byte("KanarieInhoud-loonstrook "), 20_000)
	resp, _ = postFiles(t, citizen, base+"/to/inkomen", canaryMsg, map[string][]byte{"loonstrook-maart.pdf": content})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/to/inkomen?sent=1" {
		t.Fatalf("send: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = getLang(t, citizen, base+"/to/inkomen?sent=1", "uk")
	has(t, body, "uk", "to.sent_heading")

	// Both members are mailed with the link, each in the language they
	// use (not the citizen's Ukrainian).
	var link string
	for who, lang := range map[string]string{"anna@gemeente.nl": "nl", "bob@gemeente.nl": "en"} {
		m := e.mails.last(mail.KindDropoffArrived, who)
		if m == nil {
			t.Fatalf("no mail to %s", who)
		}
		if m.Lang != lang {
			t.Errorf("the mail to %s is in %q, want %q", who, m.Lang, lang)
		}
		if strings.Contains(m.Text, "loonstrook-maart") || strings.Contains(m.Text, canaryMsg) {
			t.Errorf("the mail to %s names the file or the message", who)
		}
		link = regexp.MustCompile(`/dropoffs/[A-Za-z0-9_-]+`).FindString(m.Text)
	}
	if link == "" {
		t.Fatal("no link in the mail")
	}
	id := strings.TrimPrefix(link, "/dropoffs/")
	// Opening needs the inbox unlocked.
	if err := e.senders.LockInbox(ctx, annaTok); err != nil {
		t.Fatal(err)
	}
	_, body = get(t, anna, base+"/dropoffs")
	if !strings.Contains(body, "petro@example.org") || !strings.Contains(body, link) {
		t.Fatal("the team's list lacks the drop-off")
	}
	if resp, _ := post(t, anna, base+link+"/open", nil); resp.Header.Get("Location") != "/inbox" {
		t.Fatalf("open with a locked inbox: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	download := func(t *testing.T, c *http.Client) {
		t.Helper()
		resp, _ := post(t, c, base+link+"/open", nil)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != link+"/open" {
			t.Fatalf("open: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		_, body := get(t, c, base+link+"/open")
		if !strings.Contains(body, canaryMsg) || !strings.Contains(body, "loonstrook-maart.pdf") {
			t.Fatal("contents page lacks the message or the file")
		}
		fid := regexp.MustCompile(regexp.QuoteMeta(link) + `/files/([A-Za-z0-9_-]+)`).FindStringSubmatch(body)
		if fid == nil {
			t.Fatal("no file link")
		}
		resp, got := get(t, c, base+link+"/files/"+fid[1])
		if resp.StatusCode != http.StatusOK || got != string(content) {
			t.Fatalf("download: %d, %d bytes, equal %v", resp.StatusCode, len(got), got == string(content))
		}
	}
	// Bob set his inbox key before he was added: he waits for the team
	// key. His inbox and team pages say so; anna's name him.
	if resp, _ := post(t, bob, base+link+"/open", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bob opened before anna shared the key: %d", resp.StatusCode)
	}
	for _, p := range []string{"/inbox", "/dropoffs"} {
		_, body := get(t, bob, base+p)
		has(t, body, "nl", "dropoffs.waiting_self", "inkomen")
		_, body = get(t, anna, base+p)
		has(t, body, "nl", "dropoffs.waiting_others", "inkomen")
		has(t, body, "nl", "dropoffs.waiting_others_text")
		if !strings.Contains(body, "bob@gemeente.nl") {
			t.Errorf("anna's %s page does not name bob as waiting", p)
		}
	}
	// Anna unlocking her inbox shares the key with bob at once, without
	// visiting the team's pages.
	if resp, _ := post(t, anna, base+"/inbox/unlock", url.Values{"passphrase": {pass}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("unlock: %d", resp.StatusCode)
	}
	download(t, bob)
	download(t, anna)
	for _, c := range []*http.Client{anna, bob} {
		if _, body := get(t, c, base+"/inbox"); strings.Contains(html.UnescapeString(body), "inkomen") {
			t.Error("the inbox page still says someone waits after the key was shared")
		}
	}
	bobIDs, err := e.senders.TeamIdentities(ctx, bobTok, "inkomen")
	if err != nil {
		t.Fatal(err)
	}

	// Bob leaves the team: what arrives afterwards is not for him.
	if _, err := e.senders.RemoveTeamMember(ctx, "inkomen", "bob@gemeente.nl"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := postFiles(t, citizen, base+"/to/inkomen", "tweede", map[string][]byte{"april.pdf": []byte("april")}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("second send: %d", resp.StatusCode)
	}
	link2 := regexp.MustCompile(`/dropoffs/[A-Za-z0-9_-]+`).FindString(e.mails.last(mail.KindDropoffArrived, "anna@gemeente.nl").Text)
	id2 := strings.TrimPrefix(link2, "/dropoffs/")
	if id2 == id || e.mails.last(mail.KindDropoffArrived, "bob@gemeente.nl") == nil {
		t.Fatal("second drop-off")
	}
	if resp, _ := post(t, bob, base+link2+"/open", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a removed member opens the page of a later drop-off: %d", resp.StatusCode)
	}
	if _, err := e.svc.OpenDropoff(ctx, "bob@gemeente.nl", []string{"inkomen"}, id2, bobIDs); kluis.ErrorCode(err) != kluis.EFORBIDDEN {
		t.Errorf("the team keys a removed member held open a later drop-off: %v", err)
	}
	if _, err := e.svc.OpenDropoff(ctx, "bob@gemeente.nl", []string{"inkomen"}, id, bobIDs); err != nil {
		t.Errorf("what bob could read before is no longer readable with his keys: %v", err)
	}

	// A copy of the data folder plus the master key: no canary anywhere,
	// and no key in it (in plain or under the master key) opens the
	// drop-off's identity.
	checkNoCanary(t, a.Dir, canaryMsg, "KanarieInhoud", "loonstrook-maart")
	checkUnopenable(t, a.Dir, id)
}

func postLang(t *testing.T, c *http.Client, u string, form url.Values, lang string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: langCookie, Value: lang})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp, b.String()
}

// checkNoCanary greps every file of dir for the canaries.
func checkNoCanary(t *testing.T, dir string, canaries ...string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		for _, c := range canaries {
			if bytes.Contains(b, []byte(c)) {
				t.Errorf("%s holds %q in plain", p, c)
			}
		}
		return nil
	})
}

var secretKeyPattern = regexp.MustCompile(`AGE-SECRET-KEY-1[0-9A-Z]+`)

// checkUnopenable opens every value sealed under the master key in the
// database of dir, collects every age identity found there or in any file
// of dir, and checks that none opens the wrapped identity of transfer id.
func checkUnopenable(t *testing.T, dir, id string) {
	t.Helper()
	keys, err := secret.LoadMasterKey(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "kluis.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var found []string
	var wrapped []byte
	for _, sv := range transfer.SealedValues {
		rows, err := db.Query(`SELECT ` + sv.RowID + `, ` + sv.Column + ` FROM ` + sv.Table + ` WHERE ` + sv.Column + ` IS NOT NULL`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var rid string
			var v []byte
			if err := rows.Scan(&rid, &v); err != nil {
				t.Fatal(err)
			}
			plain, err := keys.Open(sv.Purpose, rid, v)
			if err != nil {
				continue // sealed with another key derivation (a session's)
			}
			found = append(found, secretKeyPattern.FindAllString(strings.ToUpper(string(plain)), -1)...)
			if sv.Table == "transfers" && sv.Column == "identity_sealed" && rid == id {
				wrapped = plain
			}
		}
		rows.Close()
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			found = append(found, secretKeyPattern.FindAllString(string(b), -1)...)
		}
		return nil
	})
	if wrapped == nil {
		t.Fatal("the drop-off's wrapped identity was not found")
	}
	for _, s := range found {
		id, err := age.ParseX25519Identity(s)
		if err != nil {
			continue
		}
		if _, err := age.Decrypt(bytes.NewReader(wrapped), id); err == nil {
			t.Fatal("a key in the data folder (with the master key) opens the drop-off")
		}
	}
}

// TestDropoffInfected: with --scan inbound, a file with malware sent to a
// drop-off point is refused with a plain message at the file field, and
// the team is not mailed.
func TestDropoffInfected(t *testing.T) {
	d := scantest.Start(t, scantest.Options{})
	logs := kluistest.NewLogs()
	a := startApp(t, TestAppOptions{Args: []string{"--clamd", d.Unix(), "--scan", "inbound"}, Policy: dropoffPolicy, Logs: logs})
	e := &senderEnv{env: &env{app: a, svc: a.Transfers, srv: testServer{URL: a.URL}, web: a.Web, logs: logs}, senders: a.Senders, mails: &mails{app: a}}
	ctx := context.Background()
	anna := e.client(t)
	e.login(t, anna, "anna@gemeente.nl")
	if resp, _ := post(t, anna, a.URL+"/inbox", url.Values{"passphrase": {"Kanarie-Team-Zin-8841"}, "passphrase_again": {"Kanarie-Team-Zin-8841"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("inbox: %d", resp.StatusCode)
	}
	if _, err := e.senders.AddTeamMember(ctx, "inkomen", "anna@gemeente.nl"); err != nil {
		t.Fatal(err)
	}
	citizen := e.client(t)
	e.login(t, citizen, "petro@example.org")
	bad := []byte("%PDF-1.4 " + scantest.Marker + " einde")
	resp, body := postFiles(t, citizen, a.URL+"/to/inkomen", "Mijn loonstrook", map[string][]byte{"loonstrook.pdf": bad})
	wantStatus(t, "send with malware", resp, body, http.StatusUnprocessableEntity)
	if !strings.Contains(html.UnescapeString(body), translate("nl", "filereq.error_infected")) {
		t.Errorf("no plain message about the malware:\n%.2000s", body)
	}
	if m := e.mails.last(mail.KindDropoffArrived, "anna@gemeente.nl"); m != nil {
		t.Error("the team was mailed about a refused upload")
	}
	// A clean file goes through.
	resp, body = postFiles(t, citizen, a.URL+"/to/inkomen", "Mijn loonstrook", map[string][]byte{"loonstrook.pdf": []byte("%PDF schoon")})
	wantStatus(t, "clean send", resp, body, http.StatusSeeOther)
	if e.mails.last(mail.KindDropoffArrived, "anna@gemeente.nl") == nil {
		t.Error("the team was not mailed about the clean upload")
	}
}
