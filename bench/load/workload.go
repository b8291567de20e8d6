package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// client is one simulated client: an HTTP client and, in the mixed
// workload, the address it claims through the trusted proxy.
type client struct {
	hc  *http.Client
	res *results
	ip  string // X-Forwarded-For; "" for none
}

var transport = &http.Transport{
	MaxIdleConns:        1024,
	MaxIdleConnsPerHost: 512,
	DisableCompression:  true,
	IdleConnTimeout:     90 * time.Second,
}

func newClient(res *results) *client {
	return &client{hc: &http.Client{Transport: transport, Timeout: 2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, res: res}
}

// call is one request: method, URL, body, headers; want lists the
// statuses that count as success. out, if set, gets the JSON answer.
type call struct {
	kind    string
	method  string
	url     string
	body    []byte
	json    any
	token   string
	headers map[string]string
	want    []int
	out     any
	// intended statuses are counted apart (a guesser's refusals).
	intended []int
}

// do runs c and records it; it returns the response status (0 on a
// network error) and the response headers.
func (cl *client) do(ctx context.Context, c call) (int, http.Header, error) {
	body := c.body
	if c.json != nil {
		body, _ = json.Marshal(c.json)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, c.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if c.json != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if cl.ip != "" {
		req.Header.Set("X-Forwarded-For", cl.ip)
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := cl.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		cl.res.fail(c.kind, shortErr(err))
		return 0, nil, err
	}
	defer resp.Body.Close()
	var n int64
	var decErr error
	ok := false
	for _, w := range c.want {
		ok = ok || resp.StatusCode == w
	}
	if ok && c.out != nil {
		var buf bytes.Buffer
		n, _ = io.Copy(&buf, resp.Body)
		decErr = json.Unmarshal(buf.Bytes(), c.out)
	} else {
		n, err = io.Copy(io.Discard, resp.Body)
		if err != nil && ok {
			cl.res.fail(c.kind, "body: "+shortErr(err))
			return resp.StatusCode, resp.Header, err
		}
	}
	d := time.Since(start)
	switch {
	case ok && decErr != nil:
		cl.res.fail(c.kind, "bad JSON")
		return resp.StatusCode, resp.Header, decErr
	case ok:
		cl.res.ok(c.kind, d, n+int64(len(body)))
		return resp.StatusCode, resp.Header, nil
	}
	for _, st := range c.intended {
		if resp.StatusCode == st {
			cl.res.intended(c.kind, st)
			return resp.StatusCode, resp.Header, errIntended
		}
	}
	cl.res.fail(c.kind, "status "+strconv.Itoa(resp.StatusCode))
	return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: status %d", c.method, c.kind, resp.StatusCode)
}

var errIntended = errors.New("intended refusal")

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

type createResp struct {
	ID          string `json:"id"`
	UploadToken string `json:"upload_token"`
	LinkSecret  string `json:"link_secret"`
	Password    string `json:"password"`
}

type finishResp struct {
	Links []struct {
		URL string `json:"url"`
	} `json:"links"`
}

// link is a recipient's way in: the access id and the secret to unlock.
type link struct {
	base   string // the instance that made it (any instance serves it)
	access string
	secret string
}

func parseLink(u string) (access, secret string) {
	p, err := url.Parse(u)
	if err != nil {
		return "", ""
	}
	return strings.TrimPrefix(p.Path, "/r/"), p.Fragment
}

// sendOne creates a transfer as the sender with apiKey on in, uploads one
// file (plain PUT, or tus with a POST and one PATCH), and finishes it. It
// returns the first recipient's link.
func (cl *client) sendOne(ctx context.Context, c *cluster, turn int, apiKey, sender string, file []byte, tus, password bool) (link, error) {
	in := func(k int) string { return c.instances[(turn+k)%len(c.instances)].url }
	mode := "none"
	if password {
		mode = "generate"
	}
	var cr createResp
	req := map[string]any{"sender": map[string]string{"email": sender}, "to": []string{"ontvanger-" + strconv.Itoa(turn%97) + "@load.example.nl"},
		"password": map[string]string{"mode": mode}, "message": "Load test"}
	if _, _, err := cl.do(ctx, call{kind: "create", method: "POST", url: in(0) + "/api/v1/transfers", json: req, token: apiKey, want: []int{201}, out: &cr}); err != nil {
		return link{}, err
	}
	if tus {
		meta := "filename " + base64.StdEncoding.EncodeToString([]byte("bijlage.pdf"))
		_, h, err := cl.do(ctx, call{kind: "tus-create", method: "POST", url: in(1) + "/api/v1/uploads/", token: cr.UploadToken, want: []int{201},
			headers: map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": strconv.Itoa(len(file)), "Upload-Metadata": meta}})
		if err != nil {
			return link{}, err
		}
		loc, err := url.Parse(h.Get("Location"))
		if err != nil || loc.Path == "" {
			cl.res.fail("tus-create", "no Location")
			return link{}, errors.New("tus: no Location")
		}
		if _, _, err := cl.do(ctx, call{kind: "tus-patch", method: "PATCH", url: in(2) + loc.Path, token: cr.UploadToken, body: file, want: []int{204},
			headers: map[string]string{"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}}); err != nil {
			return link{}, err
		}
	} else {
		if _, _, err := cl.do(ctx, call{kind: "upload", method: "PUT", url: in(1) + "/api/v1/transfers/" + cr.ID + "/files", token: cr.UploadToken, body: file,
			want: []int{201}, headers: map[string]string{"Kluis-File-Name": "bijlage.pdf", "Content-Type": "application/pdf"}}); err != nil {
			return link{}, err
		}
	}
	var fr finishResp
	if _, _, err := cl.do(ctx, call{kind: "finish", method: "POST", url: in(3) + "/api/v1/transfers/" + cr.ID + "/finish", token: cr.UploadToken,
		json: map[string]string{"link_secret": cr.LinkSecret}, want: []int{200}, out: &fr}); err != nil {
		return link{}, err
	}
	if len(fr.Links) == 0 {
		return link{}, errors.New("finish: no links")
	}
	access, secret := parseLink(fr.Links[0].URL)
	if password {
		secret = cr.Password
	}
	return link{base: in(3), access: access, secret: secret}, nil
}

func randomBytes(n int64) []byte {
	b := make([]byte, n)
	crand.Read(b)
	return b
}

// sampler samples the servers' memory every o.sample until ctx ends.
func sampler(ctx context.Context, c *cluster, res *results, every time.Duration, wg *sync.WaitGroup) {
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		res.sampleMem(c)
		for {
			select {
			case <-ctx.Done():
				res.sampleMem(c)
				return
			case <-t.C:
				res.sampleMem(c)
			}
		}
	})
	if c.pg == nil {
		return
	}
	// Lock waits are short: sample them more often than memory.
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				res.sampleWaits(ctx, c)
			}
		}
	})
}

// runTransfers: every client its own sender, looping create, upload,
// finish, each request on the next instance in turn.
func runTransfers(ctx context.Context, c *cluster, o options) (*results, error) {
	senders := make([]string, o.clients)
	for i := range senders {
		senders[i] = fmt.Sprintf("afzender-%03d@load.example.nl", i)
	}
	keys, err := c.apiKeys(ctx, senders)
	if err != nil {
		return nil, err
	}
	res := newResults(o.clients, len(c.instances))
	file := randomBytes(o.fileSize)
	rctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	res.start = time.Now()
	cpu0 := c.cpu()
	var wg sync.WaitGroup
	sampler(rctx, c, res, o.sample, &wg)
	var clients sync.WaitGroup
	for i := range o.clients {
		clients.Go(func() {
			cl := newClient(res)
			for turn := i; rctx.Err() == nil; turn++ {
				cl.sendOne(rctx, c, turn, keys[i], senders[i], file, false, false)
			}
		})
	}
	clients.Wait()
	res.elapsed = time.Since(res.start)
	res.cpu = c.cpu() - cpu0
	cancel()
	wg.Wait()
	return res, ctx.Err()
}

// linkPool holds the links senders made, for the recipients.
type linkPool struct {
	mu    sync.Mutex
	links []link
	next  int
}

func (p *linkPool) add(l link) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.links) < 2000 {
		p.links = append(p.links, l)
		return
	}
	p.links[p.next] = l
	p.next = (p.next + 1) % len(p.links)
}

func (p *linkPool) pick() (link, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.links) == 0 {
		return link{}, false
	}
	return p.links[rand.IntN(len(p.links))], true
}

// ipSeq hands out client addresses: every recipient visit and every
// verification comes from an address of its own, as many citizens would.
var ipSeq atomic.Uint32

func nextIP() string {
	n := ipSeq.Add(1)
	return fmt.Sprintf("10.%d.%d.%d", (n>>16)&0xff, (n>>8)&0xff, n&0xff)
}

var staticRe = regexp.MustCompile(`/static/[0-9a-f]+/[A-Za-z0-9._/-]+\.(?:css|js)`)

// runMixed: senders (pages, verification, transfers with tus uploads),
// recipients (link, unlock, contents, download) and guessers.
func runMixed(ctx context.Context, c *cluster, o options) (*results, error) {
	nRecipients := o.downloaders
	if nRecipients <= 0 {
		nRecipients = o.clients / 2
	}
	nSenders := max(o.clients-nRecipients, 1)
	senders := make([]string, nSenders+o.guessers)
	for i := range senders {
		senders[i] = fmt.Sprintf("afzender-%03d@load.example.nl", i)
	}
	keys, err := c.apiKeys(ctx, senders)
	if err != nil {
		return nil, err
	}
	res := newResults(o.clients+o.guessers, len(c.instances))
	small := randomBytes(o.fileSize)
	large := randomBytes(16 * o.fileSize)
	pool := &linkPool{}
	// The static asset's checksummed URL, from the start page.
	setup := newClient(res)
	setup.ip = nextIP()
	static, err := staticURL(ctx, setup, c.instances[0].url)
	if err != nil {
		return nil, err
	}
	// A first link per sender, and one link per guesser to guess at.
	guessLinks := make([]link, o.guessers)
	for i := range nSenders + o.guessers {
		l, err := setup.sendOne(ctx, c, i, keys[i], senders[i], small, false, i >= nSenders)
		if err != nil {
			return nil, fmt.Errorf("setup: %w", err)
		}
		if i >= nSenders {
			guessLinks[i-nSenders] = l
		} else {
			pool.add(l)
		}
	}
	res.ops = map[string]*opStats{} // the setup is not measured
	rctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	res.start = time.Now()
	cpu0 := c.cpu()
	var wg sync.WaitGroup
	sampler(rctx, c, res, o.sample, &wg)
	var clients sync.WaitGroup
	for i := range nSenders {
		clients.Go(func() {
			cl := newClient(res)
			cl.ip = nextIP()
			for turn := i; rctx.Err() == nil; turn++ {
				in := c.instances[turn%len(c.instances)].url
				switch r := rand.IntN(100); {
				case r < 45:
					pages := []string{"/", "/send", "/receive", "/help", static, static}
					p := pages[rand.IntN(len(pages))]
					kind := "page"
					if p == static {
						kind = "static"
					}
					cl.do(rctx, call{kind: kind, method: "GET", url: in + p, want: []int{200}})
				case r < 55:
					cl.verify(rctx, c, in, turn)
				default:
					l, err := cl.sendOne(rctx, c, turn, keys[i], senders[i], large, true, turn%4 == 0)
					if err == nil {
						pool.add(l)
					}
				}
			}
		})
	}
	for range nRecipients {
		clients.Go(func() {
			cl := newClient(res)
			for turn := 0; rctx.Err() == nil; turn++ {
				l, ok := pool.pick()
				if !ok {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				cl.ip = nextIP()
				cl.receive(rctx, c.instances[turn%len(c.instances)].url, l)
			}
		})
	}
	for i := range o.guessers {
		clients.Go(func() {
			cl := newClient(res)
			cl.ip = nextIP() // one address for all its guesses
			l := guessLinks[i]
			for rctx.Err() == nil {
				in := c.instances[rand.IntN(len(c.instances))].url
				cl.do(rctx, call{kind: "guess", method: "POST", url: in + "/api/v1/links/" + l.access + "/unlock",
					json: map[string]string{"secret": "Fout-Wachtwoord-" + strconv.Itoa(rand.IntN(1e6))}, want: []int{}, intended: []int{401, 423, 429}})
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	clients.Wait()
	res.elapsed = time.Since(res.start)
	res.cpu = c.cpu() - cpu0
	cancel()
	wg.Wait()
	return res, ctx.Err()
}

func staticURL(ctx context.Context, cl *client, base string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/", nil)
	resp, err := cl.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := staticRe.Find(b)
	if m == nil {
		return "", errors.New("no /static/ asset linked from the start page")
	}
	return string(m), nil
}

// receive is a recipient's visit: the link, the unlock, the contents and
// the download of each file.
func (cl *client) receive(ctx context.Context, base string, l link) {
	if _, _, err := cl.do(ctx, call{kind: "link", method: "GET", url: base + "/api/v1/links/" + l.access, want: []int{200}}); err != nil {
		return
	}
	var un struct {
		Session string `json:"session"`
	}
	if _, _, err := cl.do(ctx, call{kind: "unlock", method: "POST", url: base + "/api/v1/links/" + l.access + "/unlock",
		json: map[string]string{"secret": l.secret}, want: []int{200}, out: &un}); err != nil {
		return
	}
	var ct struct {
		Files []struct {
			ID string `json:"id"`
		} `json:"files"`
	}
	if _, _, err := cl.do(ctx, call{kind: "contents", method: "GET", url: base + "/api/v1/session", token: un.Session, want: []int{200}, out: &ct}); err != nil {
		return
	}
	for _, f := range ct.Files {
		cl.do(ctx, call{kind: "download", method: "GET", url: base + "/api/v1/session/files/" + f.ID, token: un.Session, want: []int{200}})
	}
}

var codeRe = regexp.MustCompile(`\b[0-9]{4}[ -]?[0-9]{4}\b`)

// verify is a sender's verification by mail: ask for a code from an
// address of its own, read the mail from Mailpit, confirm.
func (cl *client) verify(ctx context.Context, c *cluster, base string, turn int) {
	cl.ip = nextIP()
	addr := fmt.Sprintf("nieuw-%d-%d@load.example.nl", turn, rand.IntN(1e9))
	var vr struct {
		Verification string `json:"verification"`
	}
	if _, _, err := cl.do(ctx, call{kind: "verify", method: "POST", url: base + "/api/v1/verify", json: map[string]string{"email": addr, "name": "Load"},
		want: []int{202}, out: &vr}); err != nil {
		return
	}
	code, err := c.mailpit.code(ctx, addr)
	if err != nil {
		if ctx.Err() == nil {
			cl.res.fail("verify-mail", shortErr(err))
		}
		return
	}
	// Another instance may confirm: the code is tied to the pre-session.
	other := c.instances[(turn+1)%len(c.instances)].url
	cl.do(ctx, call{kind: "confirm", method: "POST", url: other + "/api/v1/verify/confirm",
		json: map[string]string{"code": code, "verification": vr.Verification, "client": "cli"}, want: []int{200}})
}

// code waits for the verification mail to addr and returns its code.
func (m *mailpit) code(ctx context.Context, addr string) (string, error) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		id, err := m.search(ctx, addr)
		if err != nil {
			return "", err
		}
		if id != "" {
			var msg struct{ Text string }
			if err := m.getJSON(ctx, "/api/v1/message/"+id, &msg); err != nil {
				return "", err
			}
			if c := codeRe.FindString(msg.Text); c != "" {
				return strings.NewReplacer(" ", "", "-", "").Replace(c), nil
			}
			return "", errors.New("no code in the mail")
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return "", errors.New("no verification mail within 60 s")
}

func (m *mailpit) search(ctx context.Context, addr string) (string, error) {
	var out struct {
		Messages []struct{ ID string }
	}
	if err := m.getJSON(ctx, "/api/v1/search?query="+url.QueryEscape(`to:"`+addr+`"`), &out); err != nil {
		return "", err
	}
	if len(out.Messages) == 0 {
		return "", nil
	}
	return out.Messages[0].ID, nil
}

func (m *mailpit) getJSON(ctx context.Context, path string, out any) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+m.api+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("mailpit %s: status %d", path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
