package web_test

import (
	"testing"

	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/web"
)

// Package web's tests run on the real server; see StartTestApp.
func init() {
	web.StartTestApp = func(t *testing.T, o web.TestAppOptions) *web.TestApp {
		t.Helper()
		a := apptest.Start(t, apptest.Options{Args: o.Args, Engine: o.Engine, ReplyLimiter: o.ReplyLimiter, Logs: o.Logs, Env: o.Env, Policy: o.Policy})
		return &web.TestApp{URL: a.URL(), Transfers: a.Transfers, Senders: a.Senders, Web: a.Web, Policy: a.Policy, Clock: a.Clock, Delivered: a.Delivered, DB: a.DB, Dir: a.Dir,
			Outbox: a.Outbox, PolicyFile: a.PolicyFile()}
	}
}
