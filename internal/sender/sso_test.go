package sender

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/role"
)

func TestStartRefusesAddressThatMustUseSSO(t *testing.T) {
	s, m, _, _ := newTestService(t)
	s.ssoRequired = func(addr string) bool { return strings.HasSuffix(addr, "@gemeente.example") }
	_, err := s.Start(context.Background(), "", "a.jansen@gemeente.example", "A. Jansen", "", "nl")
	if code(err) != kluis.EPOLICY || !errors.Is(err, ErrSSORequired) {
		t.Fatalf("err = %v, want policy error wrapping ErrSSORequired", err)
	}
	if len(m.msgs) != 0 {
		t.Errorf("%d code mails queued for an SSO address, want 0", len(m.msgs))
	}
	// External senders keep the mailed code.
	if _, err := s.Start(context.Background(), "", "burger@example.nl", "B. Burger", "", "nl"); err != nil {
		t.Fatalf("external sender: %v", err)
	}
}

func TestSSOSessionRolesAndCap(t *testing.T) {
	s, _, clock, _ := newTestService(t)
	ctx := context.Background()
	sess, err := s.OpenSSOSession(ctx, SSOLogin{Email: "a.jansen@gemeente.example", Name: "A. Jansen", Subject: "u1",
		Roles: role.Set{role.Helpdesk}, Withheld: role.Set{role.Admin}, IDToken: "idt", Kind: "browser"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sess.ExpiresAt.Sub(clock.Now()), s.cfg.SSOSessionMax; got != want {
		t.Errorf("SSO session lasts %v, want the cap %v", got, want)
	}
	got, err := s.Authenticate(ctx, sess.Token)
	if err != nil {
		t.Fatal(err)
	}
	if got.Auth != "sso" || !got.Roles.Has(role.Helpdesk) || got.Roles.Has(role.Admin) || !got.Withheld.Has(role.Admin) || got.IDToken != "idt" {
		t.Errorf("sender = %+v", got)
	}
	if err := got.Roles.Require(role.Admin); code(err) != kluis.EFORBIDDEN {
		t.Errorf("Require(admin) = %v, want forbidden", err)
	}
	clock.Advance(s.cfg.SSOSessionMax + time.Second)
	if _, err := s.Authenticate(ctx, sess.Token); code(err) != kluis.EUNAUTHORIZED {
		t.Errorf("after the SSO cap: err = %v, want unauthorized", err)
	}
}

func TestFlowIsSingleUseAndBound(t *testing.T) {
	s, _, clock, _ := newTestService(t)
	ctx := context.Background()
	if err := s.SaveFlow(ctx, "browser-a", "state1", []byte("payload"), 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeFlow(ctx, "browser-b", "state1"); code(err) != kluis.EUNAUTHORIZED {
		t.Errorf("other browser: err = %v, want unauthorized", err)
	}
	// The wrong browser's try used the state up too: a state is tried once.
	if _, err := s.TakeFlow(ctx, "browser-a", "state1"); code(err) != kluis.EUNAUTHORIZED {
		t.Errorf("after a refused take: err = %v, want unauthorized", err)
	}
	if err := s.SaveFlow(ctx, "browser-a", "state2", []byte("payload"), 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	b, err := s.TakeFlow(ctx, "browser-a", "state2")
	if err != nil || string(b) != "payload" {
		t.Fatalf("take = %q, %v", b, err)
	}
	if _, err := s.TakeFlow(ctx, "browser-a", "state2"); code(err) != kluis.EUNAUTHORIZED {
		t.Errorf("replay: err = %v, want unauthorized", err)
	}
	if err := s.SaveFlow(ctx, "browser-a", "state3", []byte("payload"), time.Minute); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if _, err := s.TakeFlow(ctx, "browser-a", "state3"); code(err) != kluis.EUNAUTHORIZED {
		t.Errorf("expired: err = %v, want unauthorized", err)
	}
}
