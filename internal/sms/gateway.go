package sms

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"text/template"
	"time"
)

// Sender sends one text message. Implementations must not log the number
// or the text: the text carries a code.
type Sender interface {
	Send(ctx context.Context, to, text string) error
}

// Encodings of the body template's values.
const (
	EncodingJSON = "json" // values are JSON strings, quotes included: {"to": {{.To}}}
	EncodingForm = "form" // values are URL-encoded: To={{.To}}&Body={{.Text}}
)

// Config describes a gateway request.
type Config struct {
	URL      string
	Method   string // default POST
	Headers  http.Header
	Body     string // a text/template with {{.To}} and {{.Text}}
	Encoding string // EncodingJSON or EncodingForm
	Timeout  time.Duration
}

// HTTP is a gateway reached by one HTTP request per message.
type HTTP struct {
	cfg    Config
	tmpl   *template.Template
	client *http.Client
}

// NewHTTP checks cfg and returns its gateway. The body template must
// produce valid JSON for JSON encoding.
func NewHTTP(cfg Config) (*HTTP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("sms: the gateway URL %q is not an http(s) URL", cfg.URL)
	}
	if cfg.Method == "" {
		cfg.Method = http.MethodPost
	}
	cfg.Method = strings.ToUpper(cfg.Method)
	switch cfg.Method {
	case http.MethodPost, http.MethodPut, http.MethodGet:
	default:
		return nil, fmt.Errorf("sms: method %q: use POST, PUT or GET", cfg.Method)
	}
	if cfg.Encoding == "" {
		cfg.Encoding = EncodingJSON
	}
	if cfg.Encoding != EncodingJSON && cfg.Encoding != EncodingForm {
		return nil, fmt.Errorf("sms: encoding %q: use %s or %s", cfg.Encoding, EncodingJSON, EncodingForm)
	}
	if strings.TrimSpace(cfg.Body) == "" && cfg.Method != http.MethodGet {
		return nil, errors.New("sms: a body template is needed (with {{.To}} and {{.Text}})")
	}
	tmpl, err := template.New("sms").Option("missingkey=error").Parse(cfg.Body)
	if err != nil {
		return nil, fmt.Errorf("sms: body template: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	g := &HTTP{cfg: cfg, tmpl: tmpl, client: &http.Client{Timeout: cfg.Timeout}}
	body, err := g.body("+31600000000", `a "test" text`)
	if err != nil {
		return nil, fmt.Errorf("sms: body template: %w", err)
	}
	if cfg.Encoding == EncodingJSON && cfg.Method != http.MethodGet && !json.Valid(body) {
		return nil, errors.New("sms: the body template does not make valid JSON (values come with their quotes: {\"to\": {{.To}}})")
	}
	return g, nil
}

func (g *HTTP) body(to, text string) ([]byte, error) {
	var v struct{ To, Text string }
	switch g.cfg.Encoding {
	case EncodingJSON:
		a, _ := json.Marshal(to)
		b, _ := json.Marshal(text)
		v.To, v.Text = string(a), string(b)
	default:
		v.To, v.Text = url.QueryEscape(to), url.QueryEscape(text)
	}
	var buf bytes.Buffer
	if err := g.tmpl.Execute(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Send makes the request; any 2xx status is success. Errors name the
// status, never the number or the text.
func (g *HTTP) Send(ctx context.Context, to, text string) error {
	body, err := g.body(to, text)
	if err != nil {
		return fmt.Errorf("sms: body: %w", err)
	}
	target := g.cfg.URL
	var rd io.Reader = bytes.NewReader(body)
	if g.cfg.Method == http.MethodGet {
		// A GET gateway takes the form in the query.
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		target += sep + string(body)
		rd = nil
	}
	req, err := http.NewRequestWithContext(ctx, g.cfg.Method, target, rd)
	if err != nil {
		return errors.New("sms: bad gateway request")
	}
	for k, vs := range g.cfg.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if rd != nil && req.Header.Get("Content-Type") == "" {
		ct := "application/json"
		if g.cfg.Encoding == EncodingForm {
			ct = "application/x-www-form-urlencoded"
		}
		req.Header.Set("Content-Type", ct)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		// The error of a GET names its URL, which holds the number.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("sms: gateway: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &StatusError{Status: resp.Status, Code: resp.StatusCode}
	}
	return nil
}

// StatusError is a gateway's answer other than 2xx.
type StatusError struct {
	Status string // "400 Bad Request"
	Code   int
}

func (e *StatusError) Error() string { return "sms: gateway answered " + e.Status }

// Permanent reports whether the gateway refused the message itself (a
// 4xx answer other than 408 Request Timeout, 425 Too Early and 429 Too
// Many Requests): sending it again will not help. The outbox gives such a
// message up at once instead of retrying it for a day.
func (e *StatusError) Permanent() bool {
	return e.Code >= 400 && e.Code < 500 && e.Code != 408 && e.Code != 425 && e.Code != 429
}

// ReadHeaders reads a headers file: one "Name: value" a line, blank lines
// and lines starting with # ignored. It holds the gateway's credentials,
// so it is a secret file (like the other *_FILE settings).
func ReadHeaders(path string) (http.Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sms headers file: %w", err)
	}
	defer f.Close()
	h := http.Header{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("sms headers file %s, line %d: write \"Name: value\"", path, n)
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(name), strings.TrimSpace(value))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("sms headers file: %w", err)
	}
	return h, nil
}
