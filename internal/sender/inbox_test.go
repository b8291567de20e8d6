package sender

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

const inboxPass = "Kanarie-Inbox-Zin-7391"

// signIn verifies addr and returns the session token.
func signIn(t *testing.T, s *Service, m *captureMailer, addr string) string {
	t.Helper()
	ctx := context.Background()
	pre, err := s.Start(ctx, "", addr, "", "", "nl")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := s.Confirm(ctx, pre, m.lastCode(t), "browser")
	if err != nil {
		t.Fatal(err)
	}
	return sess.Token
}

// roundTrip encrypts to the inbox recipient of addr and decrypts with the
// identity the session holds.
func roundTrip(t *testing.T, s *Service, token, addr string) {
	t.Helper()
	ctx := context.Background()
	r, err := s.InboxRecipient(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.InboxIdentity(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "voor de inbox")
	w.Close()
	rd, err := age.Decrypt(&buf, id)
	if err != nil {
		t.Fatalf("the session's identity does not open what was sent to the inbox: %v", err)
	}
	if got, _ := io.ReadAll(rd); string(got) != "voor de inbox" {
		t.Fatalf("decrypted %q", got)
	}
}

func TestInboxLifecycle(t *testing.T) {
	t.Parallel()
	s, m, c, _ := newTestService(t)
	ctx := context.Background()
	const addr = "anna@example.nl"
	tok := signIn(t, s, m, addr)

	if st, err := s.InboxState(ctx, tok); err != nil || st.Exists || st.Unlocked {
		t.Fatalf("before: %+v, %v", st, err)
	}
	if _, err := s.InboxIdentity(ctx, tok); code(err) != kluis.ELOCKED {
		t.Fatalf("identity before any inbox: %v, want locked", err)
	}
	if err := s.UnlockInbox(ctx, tok, inboxPass); code(err) != kluis.ENOTFOUND {
		t.Fatalf("unlock before any inbox: %v, want not_found", err)
	}
	for _, weak := range []string{"", "kort", "wachtwoord123"} {
		if err := s.CreateInbox(ctx, tok, weak); code(err) != kluis.EINVALID {
			t.Errorf("passphrase %q: %v, want invalid", weak, err)
		}
	}
	if err := s.CreateInbox(ctx, tok, inboxPass); err != nil {
		t.Fatal(err)
	}
	st, err := s.InboxState(ctx, tok)
	if err != nil || !st.Exists || !st.Unlocked || !strings.HasPrefix(st.Recipient, "age1") {
		t.Fatalf("after create: %+v, %v", st, err)
	}
	roundTrip(t, s, tok, addr)
	if err := s.CreateInbox(ctx, tok, "Een-Andere-Zin-Voor-Later"); code(err) != kluis.ECONFLICT {
		t.Fatalf("second create: %v, want conflict", err)
	}

	if err := s.LockInbox(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InboxIdentity(ctx, tok); code(err) != kluis.ELOCKED {
		t.Fatalf("after lock: %v, want locked", err)
	}
	if err := s.UnlockInbox(ctx, tok, inboxPass+"x"); code(err) != kluis.EWRONGSECRET {
		t.Fatalf("wrong passphrase: %v, want wrong_password", err)
	}
	if err := s.UnlockInbox(ctx, tok, inboxPass); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, s, tok, addr)

	// Another session of the same sender starts locked: the unlock is
	// per session.
	other := signIn(t, s, m, addr)
	if _, err := s.InboxIdentity(ctx, other); code(err) != kluis.ELOCKED {
		t.Fatalf("second session: %v, want locked", err)
	}
	// Another sender has no inbox and cannot use this one.
	bob := signIn(t, s, m, "bob@example.nl")
	if err := s.UnlockInbox(ctx, bob, inboxPass); code(err) != kluis.ENOTFOUND {
		t.Fatalf("other sender: %v, want not_found", err)
	}

	// Logout locks it: the session and its sealed identity are gone.
	if err := s.Logout(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InboxIdentity(ctx, tok); code(err) != kluis.EUNAUTHORIZED {
		t.Fatalf("after logout: %v, want unauthorized", err)
	}
	// So does the session's end.
	if err := s.UnlockInbox(ctx, other, inboxPass); err != nil {
		t.Fatal(err)
	}
	c.Advance(s.cfg.SessionTTL)
	if _, err := s.InboxIdentity(ctx, other); code(err) != kluis.EUNAUTHORIZED {
		t.Fatalf("after the session's end: %v, want unauthorized", err)
	}
	if err := s.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.SessionInbox(ctx, secret.HashToken(other)); err != store.ErrNotFound {
		t.Fatalf("sealed identity of an ended session: %v, want gone", err)
	}
}

func TestInboxNeedsASession(t *testing.T) {
	t.Parallel()
	s, _, _, _ := newTestService(t)
	ctx := context.Background()
	_, key, err := s.CreateAPIKey(ctx, "script@example.nl")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateInbox(ctx, key, inboxPass); code(err) != kluis.EFORBIDDEN {
		t.Fatalf("API key: %v, want forbidden", err)
	}
	if err := s.CreateInbox(ctx, "made-up", inboxPass); code(err) != kluis.EUNAUTHORIZED {
		t.Fatalf("unknown token: %v, want unauthorized", err)
	}
}

// TestInboxUnlockTriesLimited: every unlock try of an address counts in a
// shared bucket, so a stolen session cannot guess the passphrase quickly;
// when it is empty even the right passphrase waits.
func TestInboxUnlockTriesLimited(t *testing.T) {
	t.Parallel()
	s, m, c, _ := newTestService(t)
	ctx := context.Background()
	tok := signIn(t, s, m, "anna@example.nl")
	if err := s.CreateInbox(ctx, tok, inboxPass); err != nil {
		t.Fatal(err)
	}
	for i := range InboxUnlockBurst {
		if err := s.UnlockInbox(ctx, tok, fmt.Sprintf("fout-%d-geraden", i)); code(err) != kluis.EWRONGSECRET {
			t.Fatalf("try %d: %v, want wrong_password", i+1, err)
		}
	}
	// A second session of the same address shares the count.
	other := signIn(t, s, m, "anna@example.nl")
	if err := s.UnlockInbox(ctx, other, inboxPass); code(err) != kluis.ETOOMANYREQUESTS {
		t.Fatalf("after %d tries: %v, want rate_limited", InboxUnlockBurst, err)
	}
	c.Advance(InboxUnlockEvery)
	if err := s.UnlockInbox(ctx, other, inboxPass); err != nil {
		t.Fatalf("after waiting: %v", err)
	}
}

// TestInboxDamagedKeyRefused: a database writer without the master key
// cannot swap in a recipient of their own for uploads to the inbox.
func TestInboxDamagedKeyRefused(t *testing.T) {
	t.Parallel()
	s, m, _, dir := newTestService(t)
	ctx := context.Background()
	tok := signIn(t, s, m, "anna@example.nl")
	if err := s.CreateInbox(ctx, tok, inboxPass); err != nil {
		t.Fatal(err)
	}
	evil, _ := age.GenerateX25519Identity()
	raw := openRaw(t, filepath.Join(dir, "kluis.db"))
	if _, err := raw.Exec(`UPDATE inbox_keys SET recipient = ?`, evil.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if _, err := s.InboxRecipient(ctx, "anna@example.nl"); code(err) != kluis.EINTEGRITY {
		t.Fatalf("swapped recipient: %v, want integrity", err)
	}
}

// TestInboxCopyCannotOpen is security.md item 5 for inboxes: a copy of the
// data folder and the master key, taken while a session holds the inbox
// unlocked, opens neither the inbox identity nor the session's copy of it,
// and holds neither the passphrase nor an identity in plain.
func TestInboxCopyCannotOpen(t *testing.T) {
	t.Parallel()
	s, m, _, dir := newTestService(t)
	ctx := context.Background()
	tok := signIn(t, s, m, "anna@example.nl")
	if err := s.CreateInbox(ctx, tok, inboxPass); err != nil {
		t.Fatal(err)
	}
	if err := s.UnlockInbox(ctx, tok, inboxPass); err != nil {
		t.Fatal(err)
	}
	id, err := s.InboxIdentity(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}

	copyDir := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(copyDir, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	// The attacker's material: every file, every cell, every cell opened
	// with the master key under every purpose of this package.
	var material [][]byte
	err = filepath.WalkDir(copyDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, secretText := range []string{inboxPass, id.String(), tok} {
			if bytes.Contains(bytes.ToUpper(b), bytes.ToUpper([]byte(secretText))) {
				t.Errorf("%s holds a secret in plain (%.12s…)", p, secretText)
			}
		}
		if bytes.Contains(bytes.ToUpper(b), []byte("AGE-SECRET-KEY-1")) {
			t.Errorf("%s holds an age identity in plain", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	raw := openRaw(t, filepath.Join(copyDir, "kluis.db"))
	cells := allCells(t, raw, "inbox_keys", "sender_sessions", "verifications")
	raw.Close()
	var wrap, sessionSealed []byte
	for _, c := range cells {
		material = append(material, c.v)
		for _, p := range []string{purposeInbox, purposeSession, purposeVerify} {
			if opened, err := s.keys.Open(p, c.rowID, c.v); err == nil {
				material = append(material, opened)
				if p == purposeInbox {
					_, w, _ := strings.Cut(string(opened), "\n")
					wrap = []byte(w)
				}
			}
		}
		if c.where == "sender_sessions.inbox_sealed" {
			sessionSealed = c.v
		}
	}
	if wrap == nil || sessionSealed == nil {
		t.Fatalf("copy lacks the inbox wrap (%d bytes) or the session's sealed identity (%d bytes)", len(wrap), len(sessionSealed))
	}
	if !bytes.HasPrefix(wrap, []byte("age-encryption.org/v1\n-> scrypt ")) {
		t.Fatalf("inbox wrap is not an age scrypt file: %.60q", wrap)
	}
	if _, err := secret.UnwrapIdentity(wrap, inboxPass, secret.PasswordLogN); err != nil {
		t.Fatalf("control: the passphrase does not open the wrap: %v", err)
	}
	for _, mat := range material {
		if len(mat) == 0 || len(mat) > 4096 {
			continue
		}
		if _, err := secret.UnwrapIdentity(wrap, string(mat), secret.PasswordLogN); err == nil {
			t.Errorf("a stored value opens the inbox wrap: %.40q", mat)
		}
		if ids, err := age.ParseIdentities(bytes.NewReader(mat)); err == nil && len(ids) > 0 {
			t.Errorf("a stored value is an age identity")
		}
		// The session's copy: neither a stored value as the token, nor
		// one as the key itself.
		for _, key := range [][]byte{hkdfKey(t, mat), mat} {
			if len(key) != secret.KeySize {
				continue
			}
			for _, c := range cells {
				if c.where != "sender_sessions.id_hash" {
					continue
				}
				if _, err := secret.OpenWithKey(key, inboxSessionAD(c.v), sessionSealed); err == nil {
					t.Errorf("a stored value opens the session's inbox identity")
				}
			}
		}
	}
	// Control: the client's token does open it.
	if _, err := secret.OpenWithKey(inboxSessionKey(tok), inboxSessionAD(secret.HashToken(tok)), sessionSealed); err != nil {
		t.Fatalf("control: the token does not open the session's copy: %v", err)
	}
}

func hkdfKey(t *testing.T, b []byte) []byte {
	t.Helper()
	k, err := hkdf.Key(sha256.New, b, nil, inboxSessionInfo, secret.KeySize)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type cell struct {
	where string // table.column
	rowID string // the first column, as the seals bind it
	v     []byte
}

// allCells reads every non-NULL text or blob cell of the tables. A row's
// id is its first column (hex for a blob, as the seals bind them).
func allCells(t *testing.T, db *sql.DB, tables ...string) []cell {
	t.Helper()
	var out []cell
	for _, tbl := range tables {
		rows, err := db.Query("SELECT * FROM " + tbl)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var rowID string
			switch x := vals[0].(type) {
			case []byte:
				rowID = fmt.Sprintf("%x", x)
			default:
				rowID = fmt.Sprint(x)
			}
			for i, v := range vals {
				switch x := v.(type) {
				case []byte:
					out = append(out, cell{tbl + "." + cols[i], rowID, bytes.Clone(x)})
				case string:
					out = append(out, cell{tbl + "." + cols[i], rowID, []byte(x)})
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}

func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestInboxChangePassphrase: the old passphrase is needed (each try counts
// in the unlock bucket), the new one follows the password rules; the same
// inbox key is wrapped anew, so what was sent to it still opens, with the
// new passphrase only; the sender is mailed.
func TestInboxChangePassphrase(t *testing.T) {
	t.Parallel()
	s, m, _, _ := newTestService(t)
	ctx := context.Background()
	const addr = "anna@example.nl"
	const newPass = "Nieuwe-Inbox-Zin-4408"
	tok := signIn(t, s, m, addr)
	if err := s.ChangeInboxPassphrase(ctx, tok, inboxPass, newPass); code(err) != kluis.ENOTFOUND {
		t.Fatalf("without an inbox: %v, want not_found", err)
	}
	if err := s.CreateInbox(ctx, tok, inboxPass); err != nil {
		t.Fatal(err)
	}
	before, err := s.InboxRecipient(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ChangeInboxPassphrase(ctx, tok, inboxPass, "kort"); code(err) != kluis.EINVALID {
		t.Errorf("weak new passphrase: %v, want invalid", err)
	}
	if err := s.ChangeInboxPassphrase(ctx, tok, inboxPass, inboxPass); code(err) != kluis.EINVALID {
		t.Errorf("the same passphrase: %v, want invalid", err)
	}
	if err := s.ChangeInboxPassphrase(ctx, tok, inboxPass+"x", newPass); code(err) != kluis.EWRONGSECRET {
		t.Fatalf("wrong old passphrase: %v, want wrong_password", err)
	}
	mails := len(m.msgs)
	if err := s.ChangeInboxPassphrase(ctx, tok, inboxPass, newPass); err != nil {
		t.Fatal(err)
	}
	last := m.msgs[len(m.msgs)-1]
	if len(m.msgs) != mails+1 || last.Kind != mail.KindInboxPassphrase || last.To != addr || last.Lang != "nl" ||
		strings.Contains(last.Text, newPass) || strings.Contains(last.Text, inboxPass) {
		t.Fatalf("notice: %d mails, last %s to %s (%s)\n%s", len(m.msgs)-mails, last.Kind, last.To, last.Lang, last.Text)
	}
	after, err := s.InboxRecipient(ctx, addr)
	if err != nil || after.String() != before.String() {
		t.Fatalf("the inbox key changed: %v %v", after, err)
	}
	// The session keeps its unlocked inbox; a new unlock needs the new
	// passphrase.
	roundTrip(t, s, tok, addr)
	if err := s.LockInbox(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.UnlockInbox(ctx, tok, inboxPass); code(err) != kluis.EWRONGSECRET {
		t.Errorf("old passphrase after the change: %v, want wrong_password", err)
	}
	if err := s.UnlockInbox(ctx, tok, newPass); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, s, tok, addr)
	// The tries share the unlock bucket: once it is empty, a change waits.
	for range InboxUnlockBurst {
		s.UnlockInbox(ctx, tok, "fout-geraden-zin-1")
	}
	if err := s.ChangeInboxPassphrase(ctx, tok, newPass, inboxPass); code(err) != kluis.ETOOMANYREQUESTS {
		t.Errorf("change with the bucket empty: %v, want rate_limited", err)
	}
}
