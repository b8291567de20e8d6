package kluistest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
)

// SMSGateway is an SMS gateway started by a test: it records what it is
// asked to send. The server knows it only by the flags of GatewayArgs.
type SMSGateway struct {
	srv  *httptest.Server
	mu   sync.Mutex
	sent []SMS
}

// SMS is one message the gateway was asked to send.
type SMS struct{ To, Text string }

// NewSMSGateway starts a gateway until the test ends. It takes a JSON
// body {"to": …, "text": …} by POST, as the flags of Args ask for.
func NewSMSGateway(t testing.TB) *SMSGateway {
	g := &SMSGateway{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m SMS
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&m) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.sent = append(g.sent, m)
		g.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// Args are the flags of kluis serve that send SMS messages here.
func (g *SMSGateway) Args() []string {
	return []string{"--sms-url", g.srv.URL + "/send", "--sms-body", `{"to": {{.To}}, "text": {{.Text}}}`}
}

// Sent returns the messages so far, oldest first.
func (g *SMSGateway) Sent() []SMS {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]SMS(nil), g.sent...)
}

var smsCodeRE = regexp.MustCompile(`\b[0-9]{6}\b`)

// LastCode is the code in the last message; the test fails without one.
func (g *SMSGateway) LastCode(t testing.TB) string {
	t.Helper()
	s := g.Sent()
	if len(s) == 0 {
		t.Fatal("no SMS sent")
	}
	c := smsCodeRE.FindString(s[len(s)-1].Text)
	if c == "" {
		t.Fatalf("no code in %q", s[len(s)-1].Text)
	}
	return c
}
