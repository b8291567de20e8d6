package transfer_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"

	_ "github.com/jackc/pgx/v5/stdlib" // holdTransfers
)

// helpdeskCtx is the context of a console revocation by a helpdesk member.
func helpdeskCtx(actor, reason string) context.Context {
	ctx := audit.WithActor(context.Background(), actor)
	return audit.WithReason(audit.WithRole(ctx, "helpdesk"), reason)
}

// TestRevokeByStaffLimitIsAtomic: a helpdesk member at 19 of 20
// revocations this hour revokes eight transfers at once. Exactly one
// passes; the audit log then holds exactly 20 of their revocations in the
// hour. On PostgreSQL, without the actor lock, several of the eight read
// 19 before any of them commits.
func TestRevokeByStaffLimitIsAtomic(t *testing.T) {
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		const limit, racers = 20, 8
		actor := "sender:balie@gemeente.example"
		now := e.clock.Now()
		for i := range limit - 1 {
			if err := e.db.InsertAudit(e.ctx, &store.AuditRow{At: now.Add(-time.Duration(i+1) * time.Minute), Actor: actor,
				Action: audit.TransferRevoke, Object: fmt.Sprintf("earlier-%d", i), Result: audit.OK, Role: "helpdesk", Reason: "eerder"}); err != nil {
				t.Fatal(err)
			}
		}
		// An entry older than an hour does not count.
		if err := e.db.InsertAudit(e.ctx, &store.AuditRow{At: now.Add(-61 * time.Minute), Actor: actor, Action: audit.TransferRevoke,
			Object: "old", Result: audit.OK, Role: "helpdesk", Reason: "eerder"}); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for range racers {
			c := e.create(createOpts{})
			e.upload(owner(c), "a.bin", randomBytes(1, 1000))
			e.finish(c)
			ids = append(ids, c.Transfer.ID)
		}
		ctx := helpdeskCtx(actor, "Melding 2026-118")
		// On PostgreSQL the revocations are lined up behind a lock on the
		// transfers table held by another connection, so all of them
		// have begun (and, without the actor lock, counted) before any
		// can finish. SQLite runs one write transaction at a time.
		release := func() {}
		if e.app.DBSpec != "" {
			release = holdTransfers(t, e.app.DBSpec, racers)
		}
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Go(func() { errs[i] = e.svc.RevokeByStaff(ctx, id, limit) })
		}
		release()
		wg.Wait()
		passed := 0
		for i, err := range errs {
			switch {
			case err == nil:
				passed++
			case !errors.Is(err, transfer.ErrStaffLimit):
				t.Errorf("revocation %d: %v, want ErrStaffLimit or nil", i, err)
			}
		}
		if passed != 1 {
			t.Errorf("%d of %d concurrent revocations passed at %d of %d, want 1", passed, racers, limit-1, limit)
		}
		got, err := e.db.SearchAudit(e.ctx, store.AuditFilter{Actor: actor, Action: audit.TransferRevoke, From: now.Add(-time.Hour)}, 100)
		if err != nil || len(got) != limit {
			t.Errorf("audit: %d revocations in the hour, want %d (%v)", len(got), limit, err)
		}
		revoked := 0
		for _, id := range ids {
			if row, err := e.db.Transfer(e.ctx, id); err == nil && row.RevokedAt != nil {
				revoked++
			}
		}
		if revoked != 1 {
			t.Errorf("%d transfers revoked, want 1", revoked)
		}
		// Without a limit (an administrator) the rest goes through.
		admin := audit.WithRole(audit.WithActor(context.Background(), "sender:beheer@gemeente.example"), "admin")
		for i, id := range ids {
			if errs[i] != nil {
				if err := e.svc.RevokeByStaff(audit.WithReason(admin, "Opruimen"), id, 0); err != nil {
					t.Errorf("admin revoke %s: %v", id, err)
				}
			}
		}
	})
}

// holdTransfers locks the transfers table of the PostgreSQL database dsn
// against row locks from another connection; the function it returns
// waits until waiters transactions wait for a lock, then lets go.
func holdTransfers(t *testing.T, dsn string, waiters int) func() {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`LOCK TABLE transfers IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		defer tx.Rollback()
		deadline := time.Now().Add(20 * time.Second)
		for {
			var n int
			if err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n >= waiters {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d transactions wait for a lock", n, waiters)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestRevokeByStaffTellsTheSender: the sender gets a mail in their own
// language with the transfer's number, its subject and the helpdesk's
// reason, and nothing of its message or files; the audit entry names the
// person, role and reason. A revocation by the sender themselves sends no
// such mail.
func TestRevokeByStaffTellsTheSender(t *testing.T) {
	e := newEnv(t)
	e.runMail(t)
	for _, lang := range mail.Languages {
		c, err := e.svc.Create(e.ctx, transfer.CreateRequest{SenderEmail: "afzender-" + lang + "@example.nl", SenderName: "Afzender", To: []string{"ontvanger@example.nl"},
			Subject: "Onderwerp 4410", Message: "Geheim bericht 9921", PasswordMode: kluis.PasswordGenerate, SenderLang: lang})
		if err != nil {
			t.Fatal(err)
		}
		e.upload(owner(c), "geheim-bestand-5531.pdf", randomBytes(2, 500))
		e.finish(c)
		reason := "Verzoek 2026-" + lang + ": verkeerde ontvanger"
		if err := e.svc.RevokeByStaff(helpdeskCtx("sender:balie@gemeente.example", reason), c.Transfer.ID, 20); err != nil {
			t.Fatal(err)
		}
		got := e.app.Delivered(mail.KindStaffRevoked, "afzender-"+lang+"@example.nl")
		if len(got) != 1 {
			t.Fatalf("%s: %d mails to the sender", lang, len(got))
		}
		m := got[0]
		want, err := mail.Render(mail.KindStaffRevoked, lang, mail.Org{Name: "Gemeente Test"}, "x@example.nl",
			mail.StaffRevoked{TransferID: c.Transfer.ID, Reason: reason, At: e.clock.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if m.Lang != lang || m.Subject != want.Subject {
			t.Errorf("%s: mail in %s, subject %q, want %q", lang, m.Lang, m.Subject, want.Subject)
		}
		for _, s := range []string{c.Transfer.ID, "Onderwerp 4410", reason} {
			if !strings.Contains(m.Text, s) || !strings.Contains(m.HTML, s) {
				t.Errorf("%s: the mail does not say %q:\n%s", lang, s, m.Text)
			}
		}
		for _, s := range []string{"Geheim bericht 9921", "geheim-bestand-5531", c.Password} {
			if strings.Contains(m.Text, s) || strings.Contains(m.HTML, s) {
				t.Errorf("%s: the mail shows %q", lang, s)
			}
		}
		a, err := e.db.SearchAudit(e.ctx, store.AuditFilter{Action: audit.TransferRevoke, Object: c.Transfer.ID}, 2)
		if err != nil || len(a) != 1 || a[0].Actor != "sender:balie@gemeente.example" || a[0].Role != "helpdesk" || a[0].Reason != reason {
			t.Errorf("%s: audit %+v %v", lang, a, err)
		}
	}
	c := e.create(createOpts{})
	e.upload(owner(c), "a.bin", randomBytes(3, 100))
	e.finish(c)
	if err := e.svc.Revoke(e.ctx, owner(c), ""); err != nil {
		t.Fatal(err)
	}
	if got := e.app.Delivered(mail.KindStaffRevoked, "afzender@example.nl"); len(got) != 0 {
		t.Errorf("the sender's own revocation sent %d helpdesk mails", len(got))
	}
}
