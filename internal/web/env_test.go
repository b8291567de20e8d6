package web

import (
	"testing"

	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/mail/devbox"
	"github.com/kluis-nl/kluis/internal/outbox"
	kpolicy "github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// The pages are tested on the real server (package app), started by
// package app/apptest. Package web's own tests cannot import either (the
// app imports web), so app_test.go, in package web_test of the same test
// binary, sets StartTestApp; what crosses over are the types below, made
// of types package web knows.

// TestAppOptions describe the server StartTestApp starts (apptest.Options).
type TestAppOptions struct {
	Args         []string // more flags of kluis serve
	Engine       func(*transfer.Config)
	ReplyLimiter *ratelimit.Limiter
	Logs         *kluistest.Logs
	Env          map[string]string // KLUIS_* variables (apptest.Options.Env)
	Policy       string            // the policy file's contents, or ""
}

// TestApp is the running server of one test.
type TestApp struct {
	URL       string
	Transfers *transfer.Service
	Senders   *sender.Service
	Web       *Web
	Policy    *kpolicy.Holder
	Clock     *kluistest.Clock // the server's clock
	DB        *store.DB        // the server's database
	Dir       string           // the data folder
	// Delivered waits until the outbox is empty and returns the mails of
	// kind to `to` in the development mailbox, newest first ("" matches
	// any).
	Delivered func(kind mail.Kind, to string) []devbox.Entry
	// Outbox queues mail (the console's mail queue tests); PolicyFile is
	// the --policy file written for TestAppOptions.Policy.
	Outbox     *outbox.Outbox
	PolicyFile string
}

// StartTestApp starts the server of o until the test ends; set by
// app_test.go.
var StartTestApp func(t *testing.T, o TestAppOptions) *TestApp

// startApp starts the server of o, as the organisation "Gemeente
// Voorbeeld".
func startApp(t *testing.T, o TestAppOptions) *TestApp {
	t.Helper()
	if StartTestApp == nil {
		t.Fatal("StartTestApp is not set (app_test.go)")
	}
	o.Args = append([]string{"--org-name", "Gemeente Voorbeeld"}, o.Args...)
	return StartTestApp(t, o)
}

// testServer is where a test's server listens.
type testServer struct{ URL string }

// mails reads the mail the server sent, from its development mailbox.
type mails struct {
	app *TestApp
}

// last returns the newest mail of kind to `to` ("" matches any), or nil.
func (m *mails) last(kind mail.Kind, to string) *mail.Message {
	got := m.app.Delivered(kind, to)
	if len(got) == 0 {
		return nil
	}
	e := got[0]
	return &mail.Message{Kind: mail.Kind(e.Kind), Lang: e.Lang, To: e.To, Subject: e.Subject, Text: e.Text, HTML: e.HTML}
}
