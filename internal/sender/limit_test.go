package sender

import (
	"bytes"
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

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to read rows directly
)

// TestCodeMailLimits: code mails to one address are limited however they
// are asked for: from fresh pre-sessions, in parallel, and through two
// service instances on one database (issue 11, item 7). The buckets hold
// no address and are deleted once full again.
func TestCodeMailLimits(t *testing.T) {
	forEachDB(t, func(t *testing.T, open func(t *testing.T) *dbEnv) {
		ctx := context.Background()
		e := open(t)
		lim := DefaultConfig().CodeMails
		// A second instance on the same database (its own service, same
		// master key as every instance has).
		other := New(Deps{DB: e.db, Keys: e.svc.keys, Mailer: e.svc.mailer, Org: e.svc.org, Config: e.svc.cfg, Now: e.clock.Now, Log: e.svc.log, Audit: e.svc.audit})
		const victim = "Slachtoffer@Example.NL"
		start := func(s *Service, addr string) error {
			_, err := s.Start(ctx, "", addr, "", "", "nl")
			return err
		}

		// 100 requests at once from fresh pre-sessions, half on each
		// instance, with the address in varying case.
		var mu sync.Mutex
		got := map[string]int{}
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, addr := e.svc, victim
				if i%2 == 1 {
					s, addr = other, strings.ToLower(victim)
				}
				err := start(s, addr)
				k := "ok"
				if err != nil {
					k = string(kluis.ErrorCode(err))
					if !errorsIsCodeLimit(err) {
						k += " (not ErrCodeLimit)"
					}
				}
				mu.Lock()
				got[k]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		want := map[string]int{"ok": lim.Burst, string(kluis.ETOOMANYREQUESTS): 100 - lim.Burst}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("answers %v, want %v", got, want)
		}
		var ke *kluis.Error
		err := start(e.svc, victim)
		if !asKluis(err, &ke) || ke.RetryAfter <= 0 || ke.RetryAfter > lim.Every {
			t.Fatalf("refusal %v: want a Retry-After of at most %s", err, lim.Every)
		}
		// Other addresses are not affected.
		if err := start(other, "iemand-anders@example.nl"); err != nil {
			t.Fatalf("another address: %v", err)
		}
		// Asking again every Every for a day: one more each time until
		// the day bucket (PerDay, refilling at PerDay a day) is empty,
		// then at its rate: 2*PerDay in the first day in all. A second
		// request at the same moment, on the other instance, never passes.
		sent := lim.Burst
		for end := e.clock.Now().Add(24 * time.Hour); e.clock.Now().Before(end); {
			e.clock.Advance(lim.Every)
			if err := start(e.svc, victim); err == nil {
				sent++
			} else if !errorsIsCodeLimit(err) {
				t.Fatal(err)
			}
			if err := start(other, victim); !errorsIsCodeLimit(err) {
				t.Fatalf("a second code at once, after %d: %v", sent, err)
			}
		}
		if sent != 2*lim.PerDay {
			t.Errorf("%d codes to one address in a day, want %d", sent, 2*lim.PerDay)
		}
		if n := e.actions(t)[audit.VerifyStart]; n != sent+1 {
			t.Errorf("%d codes sent, want %d", n, sent+1)
		}

		// The table names buckets by keyed hashes only.
		rows := rateRows(t, e)
		if len(rows) == 0 {
			t.Fatal("no rate-limit rows")
		}
		for _, k := range rows {
			if bytes.Contains(bytes.ToLower([]byte(k)), []byte("example.nl")) || strings.Contains(k, "slachtoffer") {
				t.Errorf("rate-limit key %q holds the address", k)
			}
		}
		// Once every bucket is full again, Cleanup deletes it.
		e.clock.Advance(48 * time.Hour)
		if err := e.svc.Cleanup(ctx); err != nil {
			t.Fatal(err)
		}
		if rows := rateRows(t, e); len(rows) != 0 {
			t.Errorf("rows left after a day: %v", rows)
		}
		if err := start(e.svc, victim); err != nil {
			t.Errorf("two days later: %v", err)
		}
	})
}

// TestCodeMailsPerPreSession: one pre-session asking for codes for ever new
// addresses (after each cooldown) is limited too.
func TestCodeMailsPerPreSession(t *testing.T) {
	forEachDB(t, func(t *testing.T, open func(t *testing.T) *dbEnv) {
		ctx := context.Background()
		e := open(t)
		cfg := DefaultConfig()
		pre, err := e.svc.Start(ctx, "", "adres-0@example.nl", "", "", "nl")
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < cfg.CodeMails.Burst; i++ {
			e.clock.Advance(cfg.Cooldown)
			if _, err := e.svc.Start(ctx, pre, fmt.Sprintf("adres-%d@example.nl", i), "", "", "nl"); err != nil {
				t.Fatalf("code %d: %v", i+1, err)
			}
		}
		e.clock.Advance(cfg.Cooldown)
		if _, err := e.svc.Start(ctx, pre, "nog-een@example.nl", "", "", "nl"); !errorsIsCodeLimit(err) {
			t.Fatalf("code %d on one pre-session: %v, want the code-mail limit", cfg.CodeMails.Burst+1, err)
		}
	})
}

// rateRows returns the keys in the rate_limits table.
func rateRows(t *testing.T, e *dbEnv) []string {
	t.Helper()
	db, err := sql.Open(e.driver, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT key FROM rate_limits ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func errorsIsCodeLimit(err error) bool { return errors.Is(err, ErrCodeLimit) }

func asKluis(err error, target **kluis.Error) bool { return errors.As(err, target) }
