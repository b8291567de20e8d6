package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// testTeams: members, key generations (one current, the rest retired),
// wraps per member and generation, and a member's removal taking their
// wraps with them.
func testTeams(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, m := range []string{"anna@gemeente.nl", "bob@gemeente.nl"} {
		if err := db.InsertTeamMember(ctx, &TeamMember{TeamID: "inkomen", Email: m, AddedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.InsertTeamMember(ctx, &TeamMember{TeamID: "inkomen", Email: "anna@gemeente.nl", AddedAt: now}); !errors.Is(err, ErrConflict) {
		t.Fatalf("member twice: %v", err)
	}
	if teams, err := db.TeamsOf(ctx, "Anna@Gemeente.nl"); err != nil || len(teams) != 1 || teams[0] != "inkomen" {
		t.Fatalf("teams of anna: %v %v", teams, err)
	}
	if _, err := db.CurrentTeamKey(ctx, "inkomen"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("key before any: %v", err)
	}
	for g := 1; g <= 2; g++ {
		if err := db.InsertTeamKey(ctx, &TeamKey{TeamID: "inkomen", Generation: g, RecipientSealed: []byte{byte(g)}, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"anna@gemeente.nl", "bob@gemeente.nl"} {
			if err := db.InsertTeamWrap(ctx, &TeamWrap{TeamID: "inkomen", Generation: g, Email: m, WrapSealed: []byte(m)}, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.InsertTeamKey(ctx, &TeamKey{TeamID: "inkomen", Generation: 2, RecipientSealed: []byte{9}, CreatedAt: now}); !errors.Is(err, ErrConflict) {
		t.Fatalf("generation twice: %v", err)
	}
	k, err := db.CurrentTeamKey(ctx, "inkomen")
	if err != nil || k.Generation != 2 || k.ID != "inkomen/2" || k.RetiredAt != nil {
		t.Fatalf("current: %+v %v", k, err)
	}
	if g, err := db.LastTeamGeneration(ctx, "inkomen"); err != nil || g != 2 {
		t.Fatalf("last generation: %d %v", g, err)
	}
	if err := db.DeleteTeamMember(ctx, "inkomen", "bob@gemeente.nl"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteTeamMember(ctx, "inkomen", "bob@gemeente.nl"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed twice: %v", err)
	}
	ws, err := db.TeamWraps(ctx, "inkomen")
	if err != nil || len(ws) != 2 || ws[0].Generation != 2 || ws[0].Email != "anna@gemeente.nl" {
		t.Fatalf("wraps after bob left: %+v %v", ws, err)
	}
	if err := db.RetireTeamKey(ctx, "inkomen", now); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CurrentTeamKey(ctx, "inkomen"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("key after retiring: %v", err)
	}
}

// testTeamWrapRemoval: a wrap is stored only for a member, and a wrap
// written while a removal is under way (another member shares the key
// as the administrator removes this one) cannot outlive the removal.
func testTeamWrapRemoval(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := db.InsertTeamMember(ctx, &TeamMember{TeamID: "inkomen", Email: "bob@gemeente.nl", AddedAt: now}); err != nil {
		t.Fatal(err)
	}
	wrap := func(g int, email string) error {
		return db.InsertTeamWrap(ctx, &TeamWrap{TeamID: "inkomen", Generation: g, Email: email, WrapSealed: []byte(email)}, now)
	}
	if err := wrap(1, "carol@gemeente.nl"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("wrap for an address that is no member: %v", err)
	}
	if err := wrap(1, "bob@gemeente.nl"); err != nil {
		t.Fatal(err)
	}
	if err := wrap(1, "bob@gemeente.nl"); !errors.Is(err, ErrConflict) {
		t.Fatalf("wrap twice: %v", err)
	}
	// The removal runs in a transaction; a wrap for generation 2 is
	// written while it is open and lands after it commits.
	tx, err := db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := tx.DeleteTeamMember(ctx, "inkomen", "bob@gemeente.nl"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- wrap(2, "bob@gemeente.nl") }()
	time.Sleep(300 * time.Millisecond)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatalf("wrap during the removal: %v", err)
	}
	ws, err := db.TeamWraps(ctx, "inkomen")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		t.Errorf("a wrap outlived the member's removal: generation %d for %s", w.Generation, w.Email)
	}
}
