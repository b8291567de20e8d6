package oidc_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/oidc"
	"github.com/kluis-nl/kluis/internal/oidc/oidctest"
	"github.com/kluis-nl/kluis/internal/role"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/store"
)

// A CLI token of an SSO user lives longer than the SSO cap, so it
// re-checks the account at the provider once per cap: a disabled account
// loses it within the cap.
func TestDisabledAccountLosesCLITokenWithinCap(t *testing.T) {
	op, p := setup(t)
	op.SetUser(oidctest.User{Subject: "u1", Email: "a.jansen@gemeente.example", Groups: []string{"g-help"}})
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	keys, err := secret.NewKeyring(secret.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	clock := kluistest.NewClock()
	cfg := sender.DefaultConfig()
	cfg.SSOSessionMax = time.Hour // a short cap for the test
	mapping := oidc.Mapping{Groups: map[role.Role][]string{role.Helpdesk: {"g-help"}}}
	snd := sender.New(sender.Deps{DB: db, Keys: keys, Config: cfg, Now: clock.Now, Recheck: oidc.Account{Provider: p, Mapping: mapping}})

	code, flow := signIn(t, p, "u1")
	id, err := p.Finish(ctx, code, flow)
	if err != nil {
		t.Fatal(err)
	}
	granted, withheld := mapping.Roles(id)
	sess, err := snd.OpenSSOSession(ctx, sender.SSOLogin{Email: id.Email, Subject: id.Subject, Roles: granted, Withheld: withheld,
		IDToken: id.IDToken, RefreshToken: id.RefreshToken, Kind: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	if got := sess.ExpiresAt.Sub(clock.Now()); got != cfg.SSOTokenMax {
		t.Errorf("CLI token lasts %v, want %v", got, cfg.SSOTokenMax)
	}
	// Past one cap the account is re-checked and still there.
	clock.Advance(cfg.SSOSessionMax + time.Minute)
	s, err := snd.Authenticate(ctx, sess.Token)
	if err != nil {
		t.Fatalf("after one re-check: %v", err)
	}
	if !s.Roles.Has(role.Helpdesk) {
		t.Errorf("roles after re-check = %v, want helpdesk", s.Roles)
	}
	// Disabled at the provider: gone at the next re-check, within the cap.
	op.Disable("u1")
	if _, err := snd.Authenticate(ctx, sess.Token); err != nil {
		t.Fatalf("before the next re-check the token still works: %v", err)
	}
	clock.Advance(cfg.SSOSessionMax)
	if _, err := snd.Authenticate(ctx, sess.Token); kluis.ErrorCode(err) != kluis.EUNAUTHORIZED {
		t.Errorf("disabled account after the cap: err = %v, want unauthorized", err)
	}
	// And it stays gone (the session was deleted, not just refused once).
	op.SetUser(oidctest.User{Subject: "u1", Email: "a.jansen@gemeente.example"})
	if _, err := snd.Authenticate(ctx, sess.Token); kluis.ErrorCode(err) != kluis.EUNAUTHORIZED {
		t.Errorf("after re-enabling: err = %v, want unauthorized (the token ended)", err)
	}
}
