package sender

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
)

// sealTo encrypts text to a team's current key.
func sealTo(t *testing.T, s *Service, team, text string) []byte {
	t.Helper()
	r, _, err := s.TeamRecipient(context.Background(), team)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, r)
	io.WriteString(w, text)
	w.Close()
	return buf.Bytes()
}

// opens reports whether ids open ct.
func opens(ids []age.Identity, ct []byte) bool {
	if len(ids) == 0 {
		return false
	}
	r, err := age.Decrypt(bytes.NewReader(ct), ids...)
	if err != nil {
		return false
	}
	_, err = io.ReadAll(r)
	return err == nil
}

func TestTeamKeys(t *testing.T) {
	t.Parallel()
	s, m, _, dir := newTestService(t)
	ctx := context.Background()
	const team = "inkomen"
	alice := signIn(t, s, m, "alice@gemeente.nl")
	bob := signIn(t, s, m, "bob@gemeente.nl")
	carol := signIn(t, s, m, "carol@gemeente.nl")
	for _, tok := range []string{alice, bob} {
		if err := s.CreateInbox(ctx, tok, inboxPass); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.TeamRecipient(ctx, team); code(err) != kluis.ECONFLICT {
		t.Fatalf("a team without members has a key: %v", err)
	}
	if _, err := s.AddTeamMember(ctx, "Team Inkomen", "alice@gemeente.nl"); code(err) != kluis.EINVALID {
		t.Fatalf("a bad team id: %v", err)
	}
	if _, err := s.AddTeamMember(ctx, team, "not an address"); code(err) != kluis.EINVALID {
		t.Fatalf("a bad address: %v", err)
	}
	// The first member with an inbox key makes the first key at once.
	st, err := s.AddTeamMember(ctx, team, "alice@gemeente.nl")
	if err != nil || st.Generation != 1 || !st.Members[0].Holds {
		t.Fatalf("after alice: %+v, %v", st, err)
	}
	if _, err := s.AddTeamMember(ctx, team, "alice@gemeente.nl"); code(err) != kluis.ECONFLICT {
		t.Fatalf("added twice: %v", err)
	}
	// Later members wait until a holder wraps the key for them.
	if _, err := s.AddTeamMember(ctx, team, "Bob@Gemeente.nl"); err != nil {
		t.Fatal(err)
	}
	st, err = s.AddTeamMember(ctx, team, "carol@gemeente.nl")
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range st.Members {
		want := mb.Email == "alice@gemeente.nl"
		if mb.Holds != want {
			t.Fatalf("%s holds the key: %v, want %v: %+v", mb.Email, mb.Holds, want, st)
		}
		if mb.HasInbox != (mb.Email != "carol@gemeente.nl") {
			t.Fatalf("inbox states: %+v", st)
		}
	}
	first := sealTo(t, s, team, "eerste upload")
	if ids, err := s.TeamIdentities(ctx, bob, team); err != nil || len(ids) != 0 {
		t.Fatalf("bob before the wrap: %d identities, %v", len(ids), err)
	}
	ids, err := s.TeamIdentities(ctx, alice, team) // wraps for bob
	if err != nil || !opens(ids, first) {
		t.Fatalf("alice: %v", err)
	}
	bobIDs, err := s.TeamIdentities(ctx, bob, team)
	if err != nil || !opens(bobIDs, first) {
		t.Fatalf("bob after alice's visit cannot open the first upload: %v", err)
	}
	// Carol sets her inbox key later; alice's next visit wraps for her.
	if err := s.CreateInbox(ctx, carol, inboxPass); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TeamIdentities(ctx, alice, team); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.TeamIdentities(ctx, carol, team); err != nil || !opens(ids, first) {
		t.Fatalf("carol: %v", err)
	}
	// A locked inbox gives nothing.
	if err := s.LockInbox(ctx, carol); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TeamIdentities(ctx, carol, team); code(err) != kluis.ELOCKED {
		t.Fatalf("locked inbox: %v", err)
	}
	if err := s.UnlockInbox(ctx, carol, inboxPass); err != nil {
		t.Fatal(err)
	}

	// Removing bob renews the key: what arrives afterwards is not for him.
	st, err = s.RemoveTeamMember(ctx, team, "Bob@Gemeente.nl")
	if err != nil || st.Generation != 2 || len(st.Members) != 2 {
		t.Fatalf("after removing bob: %+v, %v", st, err)
	}
	if _, err := s.RemoveTeamMember(ctx, team, "bob@gemeente.nl"); code(err) != kluis.ENOTFOUND {
		t.Fatalf("removed twice: %v", err)
	}
	second := sealTo(t, s, team, "tweede upload")
	if opens(bobIDs, second) {
		t.Fatal("a removed member's team keys open what arrived after the removal")
	}
	if _, err := s.TeamIdentities(ctx, bob, team); code(err) != kluis.EFORBIDDEN {
		t.Fatalf("a removed member still gets team keys: %v", err)
	}
	for name, tok := range map[string]string{"alice": alice, "carol": carol} {
		ids, err := s.TeamIdentities(ctx, tok, team)
		if err != nil || !opens(ids, first) || !opens(ids, second) {
			t.Fatalf("%s cannot open both uploads after the re-key: %v", name, err)
		}
	}
	// Removing the others leaves the team without a key: no uploads.
	for _, a := range []string{"alice@gemeente.nl", "carol@gemeente.nl"} {
		if _, err := s.RemoveTeamMember(ctx, team, a); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.TeamRecipient(ctx, team); code(err) != kluis.ECONFLICT {
		t.Fatalf("an empty team still takes uploads: %v", err)
	}
	// Adding a member who has an inbox key starts a new key at once.
	if st, err := s.AddTeamMember(ctx, team, "alice@gemeente.nl"); err != nil || st.Generation != 4 || !st.Members[0].Holds {
		t.Fatalf("re-added: %+v, %v", st, err)
	}

	// The team identities are nowhere in the data folder in plain.
	var secrets []string
	for _, id := range ids {
		secrets = append(secrets, id.(*age.X25519Identity).String())
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		for _, sec := range secrets {
			if bytes.Contains(b, []byte(sec)) || bytes.Contains(bytes.ToLower(b), []byte(strings.ToLower(sec))) {
				t.Errorf("%s holds a team identity in plain", p)
			}
		}
		return nil
	})
}

// TestTeamKeysShareOnUnlock: a member who set their inbox key after they
// were added waits for the team key; it is wrapped for them as soon as a
// member who holds it unlocks their inbox by any route: the web's and
// CLI's session unlock (UnlockInbox) or the API's one-time open
// (OpenInbox), not only on the team's drop-off pages.
func TestTeamKeysShareOnUnlock(t *testing.T) {
	t.Parallel()
	s, m, _, _ := newTestService(t)
	ctx := context.Background()
	const team = "inkomen"
	alice := signIn(t, s, m, "alice@gemeente.nl")
	bob := signIn(t, s, m, "bob@gemeente.nl")
	dave := signIn(t, s, m, "dave@gemeente.nl")
	if err := s.CreateInbox(ctx, alice, inboxPass); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"alice@gemeente.nl", "bob@gemeente.nl", "dave@gemeente.nl"} {
		if _, err := s.AddTeamMember(ctx, team, a); err != nil {
			t.Fatal(err)
		}
	}
	holds := func(who string) bool {
		t.Helper()
		st, err := s.Team(ctx, team)
		if err != nil {
			t.Fatal(err)
		}
		for _, mb := range st.Members {
			if mb.Email == who {
				return mb.Holds
			}
		}
		t.Fatalf("%s is no member: %+v", who, st)
		return false
	}
	first := sealTo(t, s, team, "eerste upload")
	if err := s.CreateInbox(ctx, bob, inboxPass); err != nil {
		t.Fatal(err)
	}
	if holds("bob@gemeente.nl") {
		t.Fatal("bob holds the key before any holder unlocked")
	}
	// Their own pages say who waits.
	if w, err := s.TeamWaits(ctx, "Bob@Gemeente.nl"); err != nil || len(w) != 1 || !w[0].Waiting || strings.Join(w[0].Others, ",") != "dave@gemeente.nl" {
		t.Fatalf("bob's waits: %+v, %v", w, err)
	}
	if w, err := s.TeamWaits(ctx, "alice@gemeente.nl"); err != nil || len(w) != 1 || w[0].Waiting || len(w[0].Others) != 2 {
		t.Fatalf("alice's waits: %+v, %v", w, err)
	}
	if err := s.LockInbox(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if err := s.UnlockInbox(ctx, alice, inboxPass); err != nil {
		t.Fatal(err)
	}
	if !holds("bob@gemeente.nl") {
		t.Fatal("bob still waits after alice unlocked her inbox")
	}
	if ids, err := s.TeamIdentities(ctx, bob, team); err != nil || !opens(ids, first) {
		t.Fatalf("bob cannot open the first upload: %v", err)
	}
	// The API's one-time open shares as well.
	if err := s.CreateInbox(ctx, dave, inboxPass); err != nil {
		t.Fatal(err)
	}
	snd, err := s.Authenticate(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenInbox(ctx, snd, inboxPass); err != nil {
		t.Fatal(err)
	}
	if !holds("dave@gemeente.nl") {
		t.Fatal("dave still waits after alice opened her inbox through the API")
	}
	if w, err := s.TeamWaits(ctx, "alice@gemeente.nl"); err != nil || len(w) != 0 {
		t.Fatalf("waits after everyone holds the key: %+v, %v", w, err)
	}
	// A wrong passphrase shares nothing and says so.
	if err := s.UnlockInbox(ctx, alice, inboxPass+"x"); code(err) != kluis.EWRONGSECRET {
		t.Fatalf("wrong passphrase: %v", err)
	}
}
