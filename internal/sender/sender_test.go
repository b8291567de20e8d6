package sender

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

// captureMailer stands in for the outbox: it keeps what was enqueued, and
// only when the transaction commits (the outbox has its own tests).
type captureMailer struct {
	mu   sync.Mutex
	msgs []*mail.Message
}

func (c *captureMailer) Enqueue(ctx context.Context, tx *store.Tx, m *mail.Message) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	return "id", nil
}

func (c *captureMailer) Wake() {}

var codeRE = regexp.MustCompile(`\b\d{8}\b`)

func (c *captureMailer) lastCode(t *testing.T) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.msgs) == 0 {
		t.Fatal("no mail sent")
	}
	m := c.msgs[len(c.msgs)-1]
	code := codeRE.FindString(m.Text)
	if code == "" {
		t.Fatalf("no code in mail text:\n%s", m.Text)
	}
	return code
}

func newTestService(t *testing.T) (*Service, *captureMailer, *kluistest.Clock, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	keys, err := secret.NewKeyring(secret.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	m := &captureMailer{}
	c := kluistest.NewClock()
	c.Set(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	return New(Deps{DB: db, Keys: keys, Mailer: m, Org: mail.Org{Name: "Test", BaseURL: "https://kluis.example.nl"}, Config: DefaultConfig(), Now: c.Now}), m, c, dir
}

func code(err error) kluis.Code { return kluis.ErrorCode(err) }

func TestVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	s, m, _, _ := newTestService(t)
	ctx := context.Background()
	pre, err := s.Start(ctx, "", "Anna@Example.NL", "Anna", "0612345678", "en")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.msgs[0].To; got != "Anna@example.nl" {
		t.Fatalf("mail to %q", got)
	}
	sess, err := s.Confirm(ctx, pre, m.lastCode(t), "browser")
	if err != nil {
		t.Fatal(err)
	}
	if sess.Sender.Email != "Anna@example.nl" || sess.Sender.Name != "Anna" || sess.Sender.Phone != "0612345678" {
		t.Fatalf("sender = %+v", sess.Sender)
	}
	got, err := s.Authenticate(ctx, sess.Token)
	if err != nil || got.Email != "Anna@example.nl" {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}
	if err := s.Logout(ctx, sess.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, sess.Token); code(err) != kluis.EUNAUTHORIZED {
		t.Fatalf("after logout: %v, want unauthorized", err)
	}
}

func TestVerifyRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("expired", func(t *testing.T) {
		s, m, c, _ := newTestService(t)
		pre, err := s.Start(ctx, "", "a@example.nl", "", "", "nl")
		if err != nil {
			t.Fatal(err)
		}
		c.Advance(10*time.Minute + time.Second)
		_, err = s.Confirm(ctx, pre, m.lastCode(t), "browser")
		if code(err) != kluis.EEXPIRED {
			t.Fatalf("got %v, want expired", err)
		}
	})
	t.Run("just in time", func(t *testing.T) {
		s, m, c, _ := newTestService(t)
		pre, _ := s.Start(ctx, "", "a@example.nl", "", "", "nl")
		c.Advance(10*time.Minute - time.Second)
		if _, err := s.Confirm(ctx, pre, m.lastCode(t), "browser"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("reused", func(t *testing.T) {
		s, m, _, _ := newTestService(t)
		pre, _ := s.Start(ctx, "", "a@example.nl", "", "", "nl")
		cd := m.lastCode(t)
		if _, err := s.Confirm(ctx, pre, cd, "browser"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Confirm(ctx, pre, cd, "browser"); code(err) != kluis.EUNAUTHORIZED {
			t.Fatalf("reuse: %v, want unauthorized", err)
		}
	})
	t.Run("other session", func(t *testing.T) {
		s, m, _, _ := newTestService(t)
		if _, err := s.Start(ctx, "", "a@example.nl", "", "", "nl"); err != nil {
			t.Fatal(err)
		}
		cd := m.lastCode(t)
		other, _ := s.Start(ctx, "", "b@example.nl", "", "", "nl")
		if _, err := s.Confirm(ctx, other, cd, "browser"); code(err) != kluis.EWRONGSECRET {
			t.Fatalf("code from another session: %v, want wrong code", err)
		}
		if _, err := s.Confirm(ctx, "", cd, "browser"); code(err) != kluis.EUNAUTHORIZED {
			t.Fatalf("no session: %v, want unauthorized", err)
		}
		if _, err := s.Confirm(ctx, secret.NewToken(), cd, "browser"); code(err) != kluis.EUNAUTHORIZED {
			t.Fatalf("unknown session: %v, want unauthorized", err)
		}
	})
	t.Run("sixth attempt", func(t *testing.T) {
		s, m, _, _ := newTestService(t)
		pre, _ := s.Start(ctx, "", "a@example.nl", "", "", "nl")
		right := m.lastCode(t)
		wrong := "00000000"
		if wrong == right {
			wrong = "11111111"
		}
		for i := 1; i <= 5; i++ {
			_, err := s.Confirm(ctx, pre, wrong, "browser")
			want := kluis.EWRONGSECRET
			if i == 5 {
				want = kluis.ELOCKED
			}
			if code(err) != want {
				t.Fatalf("attempt %d: %v, want %s", i, err, want)
			}
		}
		if _, err := s.Confirm(ctx, pre, right, "browser"); code(err) != kluis.ELOCKED {
			t.Fatalf("sixth attempt with the right code: %v, want locked", err)
		}
	})
	t.Run("resend cooldown", func(t *testing.T) {
		s, m, c, _ := newTestService(t)
		pre, _ := s.Start(ctx, "", "a@example.nl", "", "", "nl")
		first := m.lastCode(t)
		if _, err := s.Start(ctx, pre, "a@example.nl", "", "", "nl"); code(err) != kluis.ETOOMANYREQUESTS {
			t.Fatalf("resend at once: %v, want rate_limited", err)
		}
		c.Advance(time.Minute)
		pre2, err := s.Start(ctx, pre, "a@example.nl", "", "", "nl")
		if err != nil || pre2 != pre {
			t.Fatalf("resend after cooldown: %q, %v", pre2, err)
		}
		second := m.lastCode(t)
		if first != second {
			if _, err := s.Confirm(ctx, pre, first, "browser"); code(err) != kluis.EWRONGSECRET {
				t.Fatalf("old code after resend: %v, want wrong code", err)
			}
		}
		if _, err := s.Confirm(ctx, pre, second, "browser"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		s, _, _, _ := newTestService(t)
		for _, email := range []string{"", "not-an-address", "a@b\r\nBcc: x@y.nl"} {
			if _, err := s.Start(ctx, "", email, "", "", "nl"); code(err) != kluis.EINVALID {
				t.Fatalf("Start(%q): %v, want invalid", email, err)
			}
		}
		if _, err := s.Start(ctx, "", "a@example.nl", "Anna\r\nX: y", "", "nl"); code(err) != kluis.EINVALID {
			t.Fatalf("name with CRLF: %v, want invalid", err)
		}
		pre, _ := s.Start(ctx, "", "a@example.nl", "", "", "nl")
		if _, err := s.Confirm(ctx, pre, "12ab", "browser"); code(err) != kluis.EINVALID {
			t.Fatalf("malformed code: %v, want invalid", err)
		}
	})
}

func TestSessionTimeouts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, m, c, _ := newTestService(t)
	pre, _ := s.Start(ctx, "", "a@example.nl", "", "", "nl")
	sess, err := s.Confirm(ctx, pre, m.lastCode(t), "cli")
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(29 * 24 * time.Hour)
	if _, err := s.Authenticate(ctx, sess.Token); err != nil {
		t.Fatalf("day 29: %v", err)
	}
	c.Advance(24*time.Hour + time.Second)
	if _, err := s.Authenticate(ctx, sess.Token); code(err) != kluis.EUNAUTHORIZED {
		t.Fatalf("after 30 days: %v, want unauthorized", err)
	}
}

func TestCodeStoredOnlyHashed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, m, _, dir := newTestService(t)
	pre, _ := s.Start(ctx, "", "a@example.nl", "Canary Name Q7", "", "nl")
	cd := m.lastCode(t)
	sess, err := s.Confirm(ctx, pre, cd, "browser")
	if err != nil {
		t.Fatal(err)
	}
	pre2, _ := s.Start(ctx, "", "b@example.nl", "", "", "nl")
	cd2 := m.lastCode(t)
	for _, name := range []string{"kluis.db", "kluis.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		for _, secretValue := range []string{cd, cd2, pre, pre2, sess.Token, "Canary Name Q7"} {
			if bytes.Contains(b, []byte(secretValue)) {
				t.Fatalf("%s holds %q in plain", name, secretValue)
			}
		}
	}
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _, _ := newTestService(t)
	id, key, err := s.CreateAPIKey(ctx, "backoffice@example.nl")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Authenticate(ctx, key)
	if err != nil || got.Email != "backoffice@example.nl" || got.Via != "apikey" {
		t.Fatalf("Authenticate(key) = %+v, %v", got, err)
	}
	if err := s.RevokeAPIKey(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, key); code(err) != kluis.EUNAUTHORIZED {
		t.Fatalf("revoked key: %v, want unauthorized", err)
	}
	if err := s.RevokeAPIKey(ctx, id); code(err) != kluis.ENOTFOUND {
		t.Fatalf("revoke twice: %v, want not_found", err)
	}
	if _, err := s.Authenticate(ctx, APIKeyPrefix+"forged"); code(err) != kluis.EUNAUTHORIZED {
		t.Fatalf("forged key: %v", err)
	}
}

// TestSenderLanguage: the code mail, and the language kept for the
// sender's later mails, is any language Kluis speaks; anything else Dutch.
func TestSenderLanguage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for in, want := range map[string]string{"de": "de", "AR": "ar", "en-GB": "en", "es": "nl", "": "nl"} {
		s, m, _, _ := newTestService(t)
		pre, err := s.Start(ctx, "", "a@example.nl", "A", "", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.msgs[0].Lang; got != want {
			t.Errorf("lang %q: code mail in %q, want %q", in, got, want)
		}
		sess, err := s.Confirm(ctx, pre, m.lastCode(t), "browser")
		if err != nil {
			t.Fatal(err)
		}
		if sess.Sender.Lang != want {
			t.Errorf("lang %q: sender's language %q, want %q", in, sess.Sender.Lang, want)
		}
	}
}
