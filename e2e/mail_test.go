package e2e

// Mail integration tests against a real SMTP server: Mailpit, started by
// the test as its own process on free loopback ports.
//
// The binary is found from KLUIS_TEST_MAILPIT_BIN, else `mailpit` on PATH,
// else $(go env GOPATH)/bin/mailpit. Install it with
//
//	go install github.com/axllent/mailpit@v1.33.1
//
// Without it the tests skip, except with CI=true, where they fail.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// ---------------------------------------------------------------------------
// Mailpit process

type mailpit struct {
	bin      string
	smtpAddr string // 127.0.0.1:PORT
	httpAddr string // 127.0.0.1:PORT
	dbPath   string // kept across restarts, so earlier mail stays countable
	logPath  string
	extra    []string // more command-line arguments (startMailpitWith)

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	detail map[string]*mpMessage // by Mailpit ID
}

func mailpitBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("KLUIS_TEST_MAILPIT_BIN"); b != "" {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("KLUIS_TEST_MAILPIT_BIN=%s: %v", b, err)
		}
		return b
	}
	if b, err := exec.LookPath("mailpit"); err == nil {
		return b
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			b := filepath.Join(dir, "bin", "mailpit")
			if st, err := os.Stat(b); err == nil && st.Mode().IsRegular() {
				return b
			}
		}
	}
	msg := "Mailpit not found (set KLUIS_TEST_MAILPIT_BIN, or put mailpit on PATH: go install github.com/axllent/mailpit@v1.33.1)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " — required in CI")
	}
	t.Skip(msg)
	return ""
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startMailpit runs Mailpit on free loopback ports and stops it in
// t.Cleanup. stop and start restart it on the same ports and database.
func startMailpit(t *testing.T) *mailpit {
	t.Helper()
	return startMailpitWith(t)
}

// startMailpitWith is startMailpit with more Mailpit arguments (such as
// "--max", "0" to keep more than its default 500 messages).
func startMailpitWith(t *testing.T, extra ...string) *mailpit {
	t.Helper()
	dir := t.TempDir()
	m := &mailpit{
		extra:    extra,
		bin:      mailpitBin(t),
		smtpAddr: freePort(t),
		httpAddr: freePort(t),
		dbPath:   filepath.Join(dir, "mailpit.db"),
		logPath:  filepath.Join(dir, "mailpit.log"),
		detail:   map[string]*mpMessage{},
	}
	m.start(t)
	t.Cleanup(func() { m.stop(t) })
	return m
}

func (m *mailpit) smtpURL() string { return "smtp://" + m.smtpAddr + "?tls=none" }
func (m *mailpit) api() string     { return "http://" + m.httpAddr }

func (m *mailpit) start(t *testing.T) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		t.Fatal("mailpit: already running")
	}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(m.bin, append([]string{"--smtp", m.smtpAddr, "--listen", m.httpAddr,
		"--database", m.dbPath, "--disable-version-check"}, m.extra...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mailpit: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	m.cmd, m.done = cmd, done
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := hc.Get(m.api() + "/api/v1/messages?limit=1")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if c, err := net.DialTimeout("tcp", m.smtpAddr, time.Second); err == nil {
					c.Close()
					return
				}
			}
		}
		select {
		case <-done:
			b, _ := os.ReadFile(m.logPath)
			t.Fatalf("mailpit exited before it was ready (ports %s, %s); log:\n%s", m.smtpAddr, m.httpAddr, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(m.logPath)
			t.Fatalf("mailpit not ready within 20 s; log:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (m *mailpit) stop(t *testing.T) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		t.Errorf("mailpit did not stop within 10 s of SIGTERM; killing it")
		m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd, m.done = nil, nil
	// The SMTP port must refuse connections now.
	if c, err := net.DialTimeout("tcp", m.smtpAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("mailpit's SMTP port %s still accepts connections after stop", m.smtpAddr)
	}
}

type mpAddr struct {
	Name    string
	Address string
}

type mpMessage struct {
	ID        string
	MessageID string
	From      mpAddr
	To        []mpAddr
	Cc        []mpAddr
	Bcc       []mpAddr
	Subject   string
	Text      string
	HTML      string
	Raw       string `json:"-"`
}

func (x *mpMessage) to() string {
	if len(x.To) == 1 {
		return strings.ToLower(x.To[0].Address)
	}
	return ""
}

// all is every message Mailpit holds, oldest first, with its body.
func (m *mailpit) all(t *testing.T) []*mpMessage {
	t.Helper()
	var list struct {
		Total    int         `json:"total"`
		Messages []mpMessage `json:"messages"`
	}
	// A mail being stored while we ask can be counted in total before it
	// is listed: ask again briefly before calling it an error.
	for try := 0; ; try++ {
		mpGet(t, m.api()+"/api/v1/messages?limit=1000", &list)
		if list.Total <= len(list.Messages) || try == 20 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if list.Total > len(list.Messages) {
		t.Fatalf("mailpit holds %d messages, listed %d", list.Total, len(list.Messages))
	}
	out := make([]*mpMessage, 0, len(list.Messages))
	for i := len(list.Messages) - 1; i >= 0; i-- {
		id := list.Messages[i].ID
		d := m.detail[id]
		if d == nil {
			d = &mpMessage{}
			mpGet(t, m.api()+"/api/v1/message/"+id, d)
			d.Raw = string(mpGetRaw(t, m.api()+"/api/v1/message/"+id+"/raw"))
			m.detail[id] = d
		}
		out = append(out, d)
	}
	return out
}

// waitMail polls Mailpit (every 100 ms, up to timeout) until ok holds for
// all its messages, and returns them. On timeout it fails the test with
// what arrived.
func (m *mailpit) waitMail(t *testing.T, timeout time.Duration, what string, ok func([]*mpMessage) bool) []*mpMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := m.all(t)
		if ok(msgs) {
			return msgs
		}
		if time.Now().After(deadline) {
			var sb strings.Builder
			for _, x := range msgs {
				fmt.Fprintf(&sb, "  to %v cc %v bcc %v: %q\n", x.To, x.Cc, x.Bcc, x.Subject)
			}
			t.Fatalf("waiting %v for %s; Mailpit holds %d messages:\n%s", timeout, what, len(msgs), sb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mpGet(t *testing.T, u string, out any) {
	t.Helper()
	b := mpGetRaw(t, u)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: decoding: %v", u, err)
	}
}

func mpGetRaw(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %q", u, resp.StatusCode, err, b)
	}
	return b
}

// ---------------------------------------------------------------------------
// API helpers for several recipients

// verifySender verifies email through the API with the code Mailpit
// received and returns the sender's session token.
func verifySender(t *testing.T, srv *server, mp *mailpit, email string) string {
	t.Helper()
	var v struct {
		Verification string `json:"verification"`
		CodeDigits   int    `json:"code_digits"`
	}
	if st, code := call(t, "POST", srv.base+"/api/v1/verify", "",
		map[string]string{"email": email, "name": "Test Sender", "phone": "0612345678", "lang": "nl"}, &v); st != http.StatusAccepted {
		t.Fatalf("POST /verify: %d %s", st, code)
	}
	if v.Verification == "" || v.CodeDigits != 8 {
		t.Fatalf("POST /verify: answer %+v", v)
	}
	codeRE := regexp.MustCompile(`(?m)^\s*(\d{8})\s*$`)
	msgs := mp.waitMail(t, 10*time.Second, "the verification code to "+email, func(ms []*mpMessage) bool {
		return len(mailsTo(ms, email)) > 0
	})
	got := mailsTo(msgs, email)
	if len(got) != 1 {
		t.Fatalf("%d verification mails to %s, want 1", len(got), email)
	}
	mc := codeRE.FindAllStringSubmatch(got[0].Text, -1)
	if len(mc) != 1 {
		t.Fatalf("verification mail has %d 8-digit code lines, want 1:\n%s", len(mc), got[0].Text)
	}
	if !strings.Contains(got[0].HTML, mc[0][1]) {
		t.Errorf("verification code %s is not in the HTML part", mc[0][1])
	}
	// A wrong code is refused (and does not burn the right one).
	wrong := fmt.Sprintf("%08d", (atoi(mc[0][1])+1)%100_000_000)
	if st, _ := call(t, "POST", srv.base+"/api/v1/verify/confirm", "",
		map[string]string{"code": wrong, "verification": v.Verification, "client": "cli"}, nil); st < 400 {
		t.Errorf("confirm with a wrong code: %d, want an error", st)
	}
	var c struct {
		Token string `json:"token"`
	}
	if st, code := call(t, "POST", srv.base+"/api/v1/verify/confirm", "",
		map[string]string{"code": mc[0][1], "verification": v.Verification, "client": "cli"}, &c); st != http.StatusOK {
		t.Fatalf("confirm with the mailed code: %d %s", st, code)
	}
	if c.Token == "" {
		t.Fatal("confirm with client cli: no token in the answer")
	}
	return c.Token
}

func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

func mailsTo(ms []*mpMessage, addr string) []*mpMessage {
	var out []*mpMessage
	for _, x := range ms {
		if x.to() == strings.ToLower(addr) {
			out = append(out, x)
		}
	}
	return out
}

// createReq creates a transfer with the given JSON request.
func createReq(t *testing.T, srv *server, token string, req map[string]any) *created {
	t.Helper()
	var c created
	if st, code := call(t, "POST", srv.base+"/api/v1/transfers", token, req, &c); st != http.StatusCreated {
		t.Fatalf("create transfer: %d %s", st, code)
	}
	if c.ID == "" || c.UploadToken == "" {
		t.Fatalf("create transfer: incomplete answer %+v", c)
	}
	return &c
}

// finishLinks finishes c and returns every recipient's link.
func finishLinks(t *testing.T, srv *server, c *created) []link {
	t.Helper()
	var body any
	if c.LinkSecret != "" {
		body = map[string]string{"link_secret": c.LinkSecret}
	}
	var out struct {
		Links []link `json:"links"`
	}
	if st, code := call(t, "POST", srv.base+"/api/v1/transfers/"+c.ID+"/finish", c.UploadToken, body, &out); st != http.StatusOK {
		t.Fatalf("finish: %d %s", st, code)
	}
	return out.Links
}

// splitLink returns the access id and fragment of a /r/ link.
func splitLink(t *testing.T, u string) (access, fragment string) {
	t.Helper()
	i := strings.Index(u, "/r/")
	if i < 0 {
		t.Fatalf("link %q has no /r/", u)
	}
	access, fragment, _ = strings.Cut(u[i+3:], "#")
	return access, fragment
}

var linkRE = regexp.MustCompile(`https?://[^\s"'<>]+/r/[A-Za-z0-9_-]+(?:#[A-Za-z0-9_-]+)?`)

// mailLinks is the set of distinct /r/ links in a mail's text part.
func mailLinks(x *mpMessage) []string {
	var out []string
	for _, l := range linkRE.FindAllString(x.Text, -1) {
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// assertNoCanary checks that none of canaries occurs in any mail: subject,
// text, HTML and the raw message (headers included).
func assertNoCanary(t *testing.T, msgs []*mpMessage, canaries map[string]string) {
	t.Helper()
	for _, x := range msgs {
		for what, c := range canaries {
			if c == "" {
				continue
			}
			for part, s := range map[string]string{"subject": x.Subject, "text": x.Text, "HTML": x.HTML, "raw source": x.Raw} {
				if strings.Contains(s, c) {
					t.Errorf("the %s (%q) appears in the %s of the mail to %v %q", what, c, part, x.To, x.Subject)
				}
			}
		}
	}
}

func isDownloadNotice(x *mpMessage) bool {
	return strings.Contains(x.Subject, " gedownload") || strings.Contains(x.Subject, " downloaded ")
}

func isConfirmation(x *mpMessage) bool {
	return strings.HasPrefix(x.Subject, "Bevestiging:") || strings.HasPrefix(x.Subject, "Confirmation:")
}

// ---------------------------------------------------------------------------
// Tests

// TestMailVerificationAndNotifications verifies a sender with the mailed
// code, sends one transfer to To, Cc and Bcc, and checks every mail: one
// notification per recipient with its own link, Bcc invisible, one
// confirmation, one download notice per download, and no password,
// message or file name in any mail.
func TestMailVerificationAndNotifications(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	srv := startServer(t, t.TempDir(), "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>")

	senderAddr := uniq("sender-") + "@example.nl"
	token := verifySender(t, srv, mp, senderAddr)

	a, b, c := uniq("a-")+"@example.nl", uniq("b-")+"@example.nl", uniq("c-")+"@example.org"
	msgCanary := uniq("MESSAGECANARY")
	fileCanary := uniq("FILECANARY") + ".pdf"
	cr := createReq(t, srv, token, map[string]any{
		"to": []string{a}, "cc": []string{b}, "bcc": []string{c},
		"message":  msgCanary,
		"password": password{Mode: "generate"},
		"options":  map[string]bool{"confirm": true, "notify_download": true, "show_filenames": false},
	})
	if cr.Password == "" {
		t.Fatal("generate mode returned no password")
	}
	src := newSource(901, 150_000, "")
	newTus(cr.UploadToken, nil).upload(t, srv.base, fileCanary, src, 70_000)
	links := finishLinks(t, srv, cr)
	want := map[string]string{} // address -> link
	for _, l := range links {
		want[strings.ToLower(l.Address)] = l.URL
	}
	if len(links) != 3 || want[a] == "" || want[b] == "" || want[c] == "" {
		t.Fatalf("finish links: %+v", links)
	}
	if want[a] == want[b] || want[a] == want[c] || want[b] == want[c] {
		t.Fatalf("recipients share a link: %+v", links)
	}

	// One notification each, one confirmation to the sender.
	ready := func(ms []*mpMessage) bool {
		return len(mailsTo(ms, a)) >= 1 && len(mailsTo(ms, b)) >= 1 && len(mailsTo(ms, c)) >= 1 &&
			len(mailsTo(ms, senderAddr)) >= 2 // the code and the confirmation
	}
	mp.waitMail(t, 10*time.Second, "notifications and confirmation", ready)
	time.Sleep(time.Second) // room for a duplicate to show
	msgs := mp.all(t)
	for _, r := range []string{a, b, c} {
		got := mailsTo(msgs, r)
		if len(got) != 1 {
			t.Errorf("%d mails to %s, want exactly 1 notification", len(got), r)
			continue
		}
		x := got[0]
		if len(x.To) != 1 || len(x.Cc) != 0 || len(x.Bcc) != 0 {
			t.Errorf("notification to %s: To %v Cc %v Bcc %v, want only To %s (Mailpit lists envelope recipients missing from the headers as Bcc)", r, x.To, x.Cc, x.Bcc, r)
		}
		if x.From.Address != "kluis@example.nl" {
			t.Errorf("notification to %s: From %v", r, x.From)
		}
		ls := mailLinks(x)
		if len(ls) != 1 || ls[0] != want[r] {
			t.Errorf("notification to %s: links %v, want only %s", r, ls, want[r])
		}
		if !strings.Contains(x.HTML, want[r]) {
			t.Errorf("notification to %s: its link is not in the HTML part", r)
		}
		for other, l := range want {
			if other != r && (strings.Contains(x.Raw, l) || strings.Contains(x.Raw, strings.TrimPrefix(l[strings.Index(l, "/r/"):], "/r/"))) {
				t.Errorf("notification to %s holds %s's link or access id", r, other)
			}
		}
		if r != c {
			for _, v := range []string{a, b} {
				if !strings.Contains(x.Text, v) || !strings.Contains(x.HTML, v) {
					t.Errorf("notification to %s does not name visible recipient %s", r, v)
				}
			}
		}
	}
	// The Bcc address is in no mail except its own and the sender's.
	for _, x := range msgs {
		if to := x.to(); to != c && to != strings.ToLower(senderAddr) && strings.Contains(strings.ToLower(x.Raw), c) {
			t.Errorf("Bcc address %s appears in the mail to %v %q", c, x.To, x.Subject)
		}
	}
	var confirms []*mpMessage
	for _, x := range mailsTo(msgs, senderAddr) {
		if isConfirmation(x) {
			confirms = append(confirms, x)
		}
	}
	if len(confirms) != 1 {
		t.Errorf("%d confirmations to the sender, want 1", len(confirms))
	} else if len(mailLinks(confirms[0])) != 0 {
		t.Errorf("the confirmation holds recipient links: %v", mailLinks(confirms[0]))
	}
	if n := len(mailsTo(msgs, senderAddr)); n != 2 {
		t.Errorf("%d mails to the sender before any download, want 2 (code, confirmation)", n)
	}
	if len(msgs) != 5 {
		t.Errorf("%d mails in all before any download, want 5", len(msgs))
	}

	// Each recipient opens their own link with the password and downloads.
	for _, r := range []string{a, b, c} {
		access, _ := splitLink(t, want[r])
		sess := srv.unlock(t, access, cr.Password)
		cont := srv.contents(t, sess)
		if cont.Message != msgCanary {
			t.Errorf("%s: message %q, want the canary", r, cont.Message)
		}
		srv.download(t, sess, cont.file(t, fileCanary), src)
	}
	notices := func(ms []*mpMessage) map[string]int {
		n := map[string]int{}
		for _, x := range mailsTo(ms, senderAddr) {
			if isDownloadNotice(x) {
				for _, r := range []string{a, b, c} {
					if strings.Contains(x.Subject, r) {
						n[r]++
					}
				}
				n[""]++
			}
		}
		return n
	}
	mp.waitMail(t, 10*time.Second, "three download notices", func(ms []*mpMessage) bool { return notices(ms)[""] >= 3 })
	time.Sleep(2 * time.Second) // room for a duplicate to show
	msgs = mp.all(t)
	n := notices(msgs)
	if n[""] != 3 || n[a] != 1 || n[b] != 1 || n[c] != 1 {
		t.Errorf("download notices: %v, want one per download (3: one naming each recipient)", n)
	}
	if len(msgs) != 8 {
		t.Errorf("%d mails in all, want 8 (code, 3 notifications, confirmation, 3 download notices)", len(msgs))
	}

	assertNoCanary(t, msgs, map[string]string{"password": cr.Password, "message": msgCanary, "file name": fileCanary,
		"file name stem": strings.TrimSuffix(fileCanary, ".pdf")})
	ids := map[string]bool{}
	for _, x := range msgs {
		if x.MessageID == "" || ids[x.MessageID] {
			t.Errorf("Message-ID %q is empty or not unique (mail to %v %q)", x.MessageID, x.To, x.Subject)
		}
		if !strings.HasSuffix(x.MessageID, "@example.nl") {
			t.Errorf("Message-ID %q is not in the --mail-from domain", x.MessageID)
		}
		ids[x.MessageID] = true
	}
	assertNotInLogs(t, []*server{srv}, cr.Password, msgCanary, fileCanary)
}

// TestMailOutage creates transfers while the mail server is down and
// checks that, once it is back, every mail arrives exactly once.
func TestMailOutage(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	srv := startServer(t, t.TempDir(), "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>")
	key := srv.senderKey(t)
	mp.stop(t)

	type rec struct{ addr, link string }
	var expect []rec
	for i := range 3 {
		r1, r2 := uniq(fmt.Sprintf("out%d-a-", i))+"@example.nl", uniq(fmt.Sprintf("out%d-b-", i))+"@example.nl"
		cr := createReq(t, srv, key, map[string]any{
			"sender":   map[string]string{"email": "sender@example.nl", "name": "Sender", "phone": "0612345678"},
			"to":       []string{r1, r2},
			"password": password{Mode: "generate"},
		})
		if st, code := srv.plainUpload(t, cr, "f.bin", newSource(uint64(910+i), 10_000, ""), false); st != http.StatusCreated {
			t.Fatalf("plain upload: %d %s", st, code)
		}
		for _, l := range finishLinks(t, srv, cr) {
			expect = append(expect, rec{strings.ToLower(l.Address), l.URL})
		}
	}
	if len(expect) != 6 {
		t.Fatalf("%d links, want 6", len(expect))
	}
	// The worker tries at once, fails (connection refused) and retries
	// after outbox.InitialBackoff (10 s), then 20 s later, doubling; it
	// also polls every 5 s. Mailpit is back well within the first 10 s,
	// so the mails arrive at the second try, about 10–15 s after the
	// finish. 40 s leaves room for a third try (at 30 s).
	time.Sleep(3 * time.Second)
	if !strings.Contains(string(srv.log()), "mail not sent; will retry") {
		t.Errorf("the server log does not show a failed delivery while Mailpit was down")
	}
	mp.start(t)
	restarted := time.Now()
	count := func(ms []*mpMessage) map[rec]int {
		n := map[rec]int{}
		for _, x := range ms {
			for _, l := range mailLinks(x) {
				n[rec{x.to(), l}]++
			}
		}
		return n
	}
	mp.waitMail(t, 40*time.Second, "all 6 notifications after the outage", func(ms []*mpMessage) bool {
		n := count(ms)
		for _, e := range expect {
			if n[e] == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("all mail arrived %v after Mailpit came back", time.Since(restarted).Round(100*time.Millisecond))
	time.Sleep(5 * time.Second)
	msgs := mp.all(t)
	n := count(msgs)
	for _, e := range expect {
		if n[e] != 1 {
			t.Errorf("%d notifications to %s with link %s, want exactly 1", n[e], e.addr, e.link)
		}
	}
	if len(msgs) != len(expect) {
		t.Errorf("%d mails in all, want %d", len(msgs), len(expect))
	}
}

// TestNoPasswordLinkGoneAfterDelivery checks that once the notifications of
// a no-password transfer are delivered, a copy of the data folder with the
// master key holds nothing that opens it: the queued mail (sealed with the
// master key, holding the link secret) is deleted and its bytes erased from
// the database file and the WAL.
func TestNoPasswordLinkGoneAfterDelivery(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	data := t.TempDir()
	srv := startServer(t, data, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>")
	key := srv.senderKey(t)

	// Mailpit is down while finishing, so the queued mails can be read
	// from the live database before delivery: their sealed bytes must be
	// gone from the copy afterwards.
	mp.stop(t)
	r1, r2 := uniq("np-a-")+"@example.nl", uniq("np-b-")+"@example.nl"
	cr := createReq(t, srv, key, map[string]any{
		"sender":   map[string]string{"email": "sender@example.nl", "name": "Sender", "phone": "0612345678"},
		"to":       []string{r1},
		"cc":       []string{r2},
		"message":  uniq("npmsg-"),
		"password": password{Mode: "none"},
		"options":  map[string]bool{"confirm": true},
	})
	if cr.LinkSecret == "" {
		t.Fatal("no-password transfer: no link_secret in the create answer")
	}
	src := newSource(920, 20_000, "")
	if st, code := srv.plainUpload(t, cr, "np.bin", src, false); st != http.StatusCreated {
		t.Fatalf("plain upload: %d %s", st, code)
	}
	links := finishLinks(t, srv, cr)
	if len(links) != 2 {
		t.Fatalf("finish links: %+v", links)
	}
	var accessIDs []string
	for _, l := range links {
		access, frag := splitLink(t, l.URL)
		if frag != cr.LinkSecret {
			t.Fatalf("link %s: fragment %q, want the link secret", l.URL, frag)
		}
		accessIDs = append(accessIDs, access)
	}
	sealed := queuedSealed(t, filepath.Join(data, "kluis.db"))
	if len(sealed) != 3 { // two notifications, one confirmation
		t.Errorf("%d queued mails while Mailpit is down, want 3", len(sealed))
	}
	// Control: the byte scan below can see a queued mail while it exists.
	for i, s := range sealed {
		if !dirContains(t, data, sealedNeedle(s)) {
			t.Errorf("queued mail %d: its sealed bytes are not found in the live data folder; the scan after delivery would prove nothing", i)
		}
	}

	mp.start(t)
	msgs := mp.waitMail(t, 40*time.Second, "the notifications after Mailpit came back", func(ms []*mpMessage) bool {
		return len(mailsTo(ms, r1)) == 1 && len(mailsTo(ms, r2)) == 1 && len(mailsTo(ms, "sender@example.nl")) == 1
	})
	for _, r := range []string{r1, r2} {
		x := mailsTo(msgs, r)[0]
		if ls := mailLinks(x); len(ls) != 1 || !strings.HasSuffix(ls[0], "#"+cr.LinkSecret) {
			t.Errorf("notification to %s: links %v, want one ending in the link secret", r, ls)
		}
	}
	// The confirmation to the sender must not hold the secret.
	assertNoCanary(t, mailsTo(msgs, "sender@example.nl"), map[string]string{"link secret": cr.LinkSecret})

	srv.stop(t) // SIGTERM: the outbox truncates the WAL on the way out
	if srv.waitErr != nil {
		t.Errorf("kluis serve after SIGTERM: %v", srv.waitErr)
	}
	cp := t.TempDir()
	copyDir(t, data, cp)
	if _, err := os.Stat(filepath.Join(cp, "master.key")); err != nil {
		t.Fatalf("the copy has no master key: %v", err)
	}
	needles := append([]string{cr.LinkSecret}, accessIDs...)
	for _, s := range sealed {
		needles = append(needles, sealedNeedle(s))
	}
	files, total := assertNotInData(t, cp, needles...)
	t.Logf("scanned %d files, %s, of the copy", files, mb(total))
	assertNotInLogs(t, []*server{srv}, cr.LinkSecret)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(cp, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		t.Fatalf("counting the copy's outbox: %v", err)
	}
	db.Close()
	if n != 0 {
		t.Errorf("the copy's outbox has %d rows after delivery, want 0", n)
	}

	// A server on the copy: a wrong secret is refused; the secret itself
	// (which the copy does not hold) still opens it, so the data is intact
	// and only the secret is missing.
	srv2 := startServer(t, cp)
	access, _ := splitLink(t, links[0].URL)
	wrong := []byte(cr.LinkSecret)
	if wrong[0] == 'A' {
		wrong[0] = 'B'
	} else {
		wrong[0] = 'A'
	}
	if st, code := call(t, "POST", srv2.base+"/api/v1/links/"+access+"/unlock", "", map[string]string{"secret": string(wrong)}, nil); st != http.StatusUnauthorized {
		t.Errorf("unlock on the copy with a wrong secret: %d %s, want 401", st, code)
	}
	sess := srv2.unlock(t, access, cr.LinkSecret)
	cont := srv2.contents(t, sess)
	srv2.download(t, sess, cont.file(t, "np.bin"), src)
}

// queuedSealed reads the sealed content of every queued mail from the live
// database (read-only; WAL mode lets it read beside the server).
func queuedSealed(t *testing.T, dbPath string) [][]byte {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT sealed FROM outbox WHERE failed_at IS NULL`)
	if err != nil {
		t.Fatalf("reading the outbox: %v", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		if len(b) < 64 {
			t.Fatalf("sealed mail of %d bytes", len(b))
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// copyDir copies the regular files under src to dst, keeping their modes.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
}

// sealedNeedle is 32 bytes from the middle of a sealed mail.
func sealedNeedle(s []byte) string { return string(s[len(s)/2-16 : len(s)/2+16]) }

// dirContains reports whether any regular file under dir holds needle.
func dirContains(t *testing.T, dir, needle string) bool {
	t.Helper()
	found := false
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || found {
			return nil
		}
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), needle) {
			found = true
		}
		return nil
	})
	return found
}

// TestMailDownloadSummary is issue 13 item 10 through the binary and a real
// SMTP server: with notify "summary" downloads send the sender no notice,
// and revoking sends one summary naming each recipient and what they
// downloaded.
func TestMailDownloadSummary(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	srv := startServer(t, t.TempDir(), "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>")
	senderAddr := uniq("sender-") + "@example.nl"
	token := verifySender(t, srv, mp, senderAddr)
	a, b := uniq("a-")+"@example.nl", uniq("b-")+"@example.nl"
	cr := createReq(t, srv, token, map[string]any{
		"to": []string{a, b}, "password": password{Mode: "generate"},
		"options": map[string]any{"notify": "summary"},
	})
	src := newSource(902, 40_000, "")
	newTus(cr.UploadToken, nil).upload(t, srv.base, "stukken.pdf", src, 40_000)
	links := finishLinks(t, srv, cr)
	for _, l := range links {
		if strings.EqualFold(l.Address, a) {
			access, _ := splitLink(t, l.URL)
			sess := srv.unlock(t, access, cr.Password)
			cont := srv.contents(t, sess)
			srv.download(t, sess, cont.file(t, "stukken.pdf"), src)
		}
	}
	if st, code := call(t, "POST", srv.base+"/api/v1/transfers/"+cr.ID+"/revoke", cr.UploadToken, nil, nil); st != http.StatusOK {
		t.Fatalf("revoke: %d %s", st, code)
	}
	isSummary := func(x *mpMessage) bool { return strings.HasPrefix(x.Subject, "Overzicht van downloads") }
	mp.waitMail(t, 20*time.Second, "the download summary", func(ms []*mpMessage) bool {
		return slices.ContainsFunc(mailsTo(ms, senderAddr), isSummary)
	})
	time.Sleep(2 * time.Second) // room for a duplicate to show
	var sums []*mpMessage
	for _, x := range mailsTo(mp.all(t), senderAddr) {
		if isDownloadNotice(x) {
			t.Errorf("download notice %q in summary mode", x.Subject)
		}
		if isSummary(x) {
			sums = append(sums, x)
		}
	}
	if len(sums) != 1 {
		t.Fatalf("%d summaries, want 1", len(sums))
	}
	for _, want := range []string{"is ingetrokken op", a, b, "Heeft niets gedownload."} {
		if !strings.Contains(sums[0].Text, want) {
			t.Errorf("summary lacks %q:\n%s", want, sums[0].Text)
		}
	}
}
