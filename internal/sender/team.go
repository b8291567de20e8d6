package sender

// Team inbox keys (issue 17, part 1). A drop-off point of the policy names
// a team; what citizens send there is encrypted to the team's inbox key.
// That key is an age X25519 identity, made on the server and never stored
// in plain: for each member it is age-encrypted to the member's personal
// inbox recipient (inbox.go) and the result sealed under the master key.
// Only a member's inbox passphrase (or their unlocked session) opens it,
// so a copy of the data folder plus the master key cannot.
//
// Generations. Removing a member makes a new identity (a new generation),
// wrapped only to the remaining members; new uploads are encrypted to it,
// so the removed member cannot open what arrives afterwards. Older
// generations stay with the members who held them, so what arrived before
// stays readable to those who could read it.
//
// Members who cannot be wrapped in yet. The server never holds a team
// identity, so it cannot wrap an existing generation for a new member
// alone. A member added without an inbox key, or added to a team that has
// a key already, waits ("pending") until (a) a member who holds the key
// unlocks their inbox by any route (the web's or CLI's session unlock,
// the API's one-time open, or opening the team's drop-offs): that unlock
// wraps every generation they hold for each waiting member who has an
// inbox key (shareTeamKeys; a wrap is stored only while its member still
// is one, so a removal at the same moment leaves none behind); or (b) the team has no key at all (its first member,
// or all holders removed): then setting an inbox key, or an administrator
// adding a member who has one, makes a fresh generation at once; or (c) an
// administrator re-keys (RekeyTeam), which makes a new generation wrapped
// to every member with an inbox key (only for what arrives from then on).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

const (
	purposeTeamRecipient = "team.recipient"
	purposeTeamWrap      = "team.wrap"
)

// TeamMember is a member as the administrator sees them.
type TeamMember struct {
	Email   string
	AddedAt time.Time
	// HasInbox is true once the member set an inbox passphrase; Holds
	// when they hold the team key that takes uploads now. A member
	// without it is waiting (see the package comment on team keys).
	HasInbox, Holds bool
}

// TeamState is a team's members and key.
type TeamState struct {
	Team string
	// Generation is the key that takes uploads, 0 when there is none (no
	// member with an inbox key): the team's drop-off points take no
	// files then.
	Generation int
	Members    []TeamMember
}

func checkTeam(team string) error {
	if !policy.ValidSlug(team) {
		return kluis.Errorf(kluis.EINVALID, "%q is not a team id: use 1 to 63 lower-case letters, digits and hyphens, as in the policy's drop-off points.", team)
	}
	return nil
}

// Team returns a team's members and key state.
func (s *Service) Team(ctx context.Context, team string) (*TeamState, error) {
	if err := checkTeam(team); err != nil {
		return nil, err
	}
	return s.teamState(ctx, s.db.Q, team)
}

func (s *Service) teamState(ctx context.Context, q store.Q, team string) (*TeamState, error) {
	st := &TeamState{Team: team}
	if k, err := q.CurrentTeamKey(ctx, team); err == nil {
		st.Generation = k.Generation
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	members, err := q.TeamMembers(ctx, team)
	if err != nil {
		return nil, err
	}
	wraps, err := q.TeamWraps(ctx, team)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		tm := TeamMember{Email: m.Email, AddedAt: m.AddedAt}
		if _, err := q.InboxKeyFold(ctx, m.Email); err == nil {
			tm.HasInbox = true
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		for _, w := range wraps {
			if w.Email == m.Email && w.Generation == st.Generation && st.Generation > 0 {
				tm.Holds = true
			}
		}
		st.Members = append(st.Members, tm)
	}
	return st, nil
}

// AddTeamMember adds an address to a team (an administrator's action,
// audited with the actor in ctx). When the team has no key yet and the
// address has an inbox key, the team gets its first key at once; otherwise
// the member waits (see the package comment). Returns ECONFLICT if the
// address is a member already.
func (s *Service) AddTeamMember(ctx context.Context, team, email string) (*TeamState, error) {
	if err := checkTeam(team); err != nil {
		return nil, err
	}
	addr, err := kluis.ParseAddress(email)
	if err != nil {
		return nil, kluis.Errorf(kluis.EINVALID, "%q is not an e-mail address; write it as name@example.nl.", email)
	}
	// Members are kept in lower case: addresses are compared without
	// regard to case (a sender signs in as they type their address).
	addr = strings.ToLower(addr)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := tx.InsertTeamMember(ctx, &store.TeamMember{TeamID: team, Email: addr, AddedAt: s.now()}); errors.Is(err, store.ErrConflict) {
		return nil, kluis.Errorf(kluis.ECONFLICT, "%s is already a member of team %s.", addr, team)
	} else if err != nil {
		return nil, err
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: actorOr(ctx, audit.Admin), Action: audit.TeamAdd, Object: "team:" + team, Detail: "member=" + addr}); err != nil {
		return nil, err
	}
	if _, err := tx.CurrentTeamKey(ctx, team); errors.Is(err, store.ErrNotFound) {
		if _, err := s.newTeamKey(ctx, tx, team, "first member with an inbox key"); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	st, err := s.teamState(ctx, tx.Q, team)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.log.Info("team member added", "action", audit.TeamAdd, "team", team)
	return st, nil
}

// RemoveTeamMember removes an address from a team and renews the team
// key: a new generation wrapped to the remaining members only, so the
// removed member cannot open what arrives afterwards. Their wraps of the
// older generations are deleted as well (the server no longer opens
// anything for them). Returns ENOTFOUND if the address is not a member.
func (s *Service) RemoveTeamMember(ctx context.Context, team, email string) (*TeamState, error) {
	if err := checkTeam(team); err != nil {
		return nil, err
	}
	addr := strings.ToLower(strings.TrimSpace(email))
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := tx.DeleteTeamMember(ctx, team, addr); errors.Is(err, store.ErrNotFound) {
		return nil, kluis.Errorf(kluis.ENOTFOUND, "%s is not a member of team %s.", addr, team)
	} else if err != nil {
		return nil, err
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: actorOr(ctx, audit.Admin), Action: audit.TeamRemove, Object: "team:" + team, Detail: "member=" + addr}); err != nil {
		return nil, err
	}
	if _, err := s.newTeamKey(ctx, tx, team, "member removed"); err != nil {
		return nil, err
	}
	st, err := s.teamState(ctx, tx.Q, team)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.log.Info("team member removed, team key renewed", "action", audit.TeamRemove, "team", team, "generation", st.Generation)
	return st, nil
}

// RekeyTeam makes a new team key wrapped to every member with an inbox
// key, for what arrives from now on.
func (s *Service) RekeyTeam(ctx context.Context, team string) (*TeamState, error) {
	if err := checkTeam(team); err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if _, err := s.newTeamKey(ctx, tx, team, "administrator"); err != nil {
		return nil, err
	}
	st, err := s.teamState(ctx, tx.Q, team)
	if err != nil {
		return nil, err
	}
	return st, tx.Commit()
}

// newTeamKey makes the next generation of a team's key, wrapped to every
// member who has an inbox key, and retires the one before. With no such
// member the team is left without a key (generation 0 returned).
func (s *Service) newTeamKey(ctx context.Context, tx *store.Tx, team, why string) (int, error) {
	members, err := tx.TeamMembers(ctx, team)
	if err != nil {
		return 0, err
	}
	last, err := tx.LastTeamGeneration(ctx, team)
	if err != nil {
		return 0, err
	}
	gen := last + 1
	id, err := secret.GenerateIdentity()
	if err != nil {
		return 0, err
	}
	now := s.now()
	var wrapped []string
	for _, m := range members {
		to, err := s.inboxRecipient(ctx, tx.Q, m.Email)
		if kluis.ErrorCode(err) == kluis.ENOTFOUND {
			continue // waits until they set an inbox key
		}
		if err != nil {
			return 0, err
		}
		ok, err := s.insertTeamWrap(ctx, tx.Q, team, gen, m.Email, id, to, now)
		if err != nil {
			return 0, err
		}
		if ok {
			wrapped = append(wrapped, m.Email)
		}
	}
	if len(wrapped) == 0 {
		if err := tx.RetireTeamKey(ctx, team, now); err != nil {
			return 0, err
		}
		return 0, s.audit.Record(ctx, tx.Q, audit.Event{Actor: actorOr(ctx, audit.Admin), Action: audit.TeamRekey, Object: "team:" + team,
			Result: audit.Refused, Detail: "no member with an inbox key: no key (" + why + ")"})
	}
	k := &store.TeamKey{TeamID: team, Generation: gen, CreatedAt: now,
		RecipientSealed: s.keys.Seal(purposeTeamRecipient, store.TeamKeyID(team, gen), []byte(id.Recipient().String()))}
	if err := tx.InsertTeamKey(ctx, k); errors.Is(err, store.ErrConflict) {
		return 0, kluis.Errorf(kluis.ECONFLICT, "The key of team %s was renewed at the same moment. Try again.", team)
	} else if err != nil {
		return 0, err
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: actorOr(ctx, audit.Admin), Action: audit.TeamRekey, Object: "team:" + team,
		Detail: fmt.Sprintf("generation=%d members=%d (%s)", gen, len(wrapped), why)}); err != nil {
		return 0, err
	}
	return gen, nil
}

// insertTeamWrap encrypts a team identity to a member's inbox recipient
// and stores it sealed. It reports false when nothing was stored: the
// member has that wrap already, or is no member any more.
func (s *Service) insertTeamWrap(ctx context.Context, q store.Q, team string, gen int, email string, id *age.X25519Identity, to age.Recipient, now time.Time) (bool, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, to)
	if err != nil {
		return false, err
	}
	if _, err := io.WriteString(w, id.String()); err != nil {
		return false, err
	}
	if err := w.Close(); err != nil {
		return false, err
	}
	wrap := &store.TeamWrap{TeamID: team, Generation: gen, Email: email,
		WrapSealed: s.keys.Seal(purposeTeamWrap, store.TeamWrapID(team, gen, email), buf.Bytes())}
	err = q.InsertTeamWrap(ctx, wrap, now)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// TeamRecipient is the key new uploads to a team are encrypted to, and
// its generation. Returns ECONFLICT when the team has no key (no member
// has an inbox key): its drop-off points take no files then.
func (s *Service) TeamRecipient(ctx context.Context, team string) (*age.X25519Recipient, int, error) {
	k, err := s.db.CurrentTeamKey(ctx, team)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, kluis.Errorf(kluis.ECONFLICT, "This drop-off point cannot take files right now: its team has no key yet.")
	}
	if err != nil {
		return nil, 0, err
	}
	plain, err := s.keys.Open(purposeTeamRecipient, k.ID, k.RecipientSealed)
	if err != nil {
		return nil, 0, &kluis.Error{Code: kluis.EINTEGRITY, Message: "This team key is damaged.", Err: err}
	}
	r, err := age.ParseX25519Recipient(string(plain))
	if err != nil {
		return nil, 0, &kluis.Error{Code: kluis.EINTEGRITY, Message: "This team key is damaged.", Err: err}
	}
	return r, k.Generation, nil
}

// TeamWait is one of a member's teams in which someone waits for the key
// that takes uploads now (see the package comment): the member
// themselves (Waiting), colleagues (Others), or both.
type TeamWait struct {
	Team    string
	Waiting bool
	Others  []string
}

// TeamWaits lists the teams of email in which someone waits for the
// team key, for the member's own pages.
func (s *Service) TeamWaits(ctx context.Context, email string) ([]TeamWait, error) {
	teams, err := s.db.TeamsOf(ctx, email)
	if err != nil {
		return nil, err
	}
	var out []TeamWait
	for _, team := range teams {
		st, err := s.teamState(ctx, s.db.Q, team)
		if err != nil {
			return nil, err
		}
		tw := TeamWait{Team: team}
		for _, m := range st.Members {
			switch {
			case m.Holds:
			case strings.EqualFold(m.Email, email):
				tw.Waiting = true
			default:
				tw.Others = append(tw.Others, m.Email)
			}
		}
		if tw.Waiting || len(tw.Others) > 0 {
			out = append(out, tw)
		}
	}
	return out, nil
}

// TeamsOf lists the teams an address is a member of.
func (s *Service) TeamsOf(ctx context.Context, email string) ([]string, error) {
	return s.db.TeamsOf(ctx, email)
}

// TeamIdentities returns every generation of a team's key that the
// session's sender holds, opened with their unlocked inbox. Meanwhile it
// wraps those generations for members who are waiting and have an inbox
// key (shareTeamKeys). Returns EFORBIDDEN if the sender is not a member,
// ELOCKED when the inbox is locked.
func (s *Service) TeamIdentities(ctx context.Context, token, team string) ([]age.Identity, error) {
	snd, _, err := s.inboxSession(ctx, token)
	if err != nil {
		return nil, err
	}
	members, err := s.db.TeamMembers(ctx, team)
	if err != nil {
		return nil, err
	}
	member := false
	for _, m := range members {
		member = member || strings.EqualFold(m.Email, snd.Email)
	}
	if !member {
		return nil, kluis.Errorf(kluis.EFORBIDDEN, "You are not a member of this team.")
	}
	inbox, err := s.InboxIdentity(ctx, token)
	if err != nil {
		return nil, err
	}
	return s.shareTeamKeys(ctx, snd, team, inbox)
}

// shareAllTeamKeys runs shareTeamKeys for every team of the sender, who
// just unlocked their inbox (by any route: UnlockInbox, OpenInbox). A
// failure is logged: the unlock stands either way.
func (s *Service) shareAllTeamKeys(ctx context.Context, snd *Sender, inbox *age.X25519Identity) {
	teams, err := s.db.TeamsOf(ctx, snd.Email)
	if err != nil {
		s.log.Error("share team keys", "err", err)
		return
	}
	for _, team := range teams {
		if _, err := s.shareTeamKeys(ctx, snd, team, inbox); err != nil {
			s.log.Error("share team keys", "team", team, "err", err)
		}
	}
}

// shareTeamKeys opens every generation of the team's key that snd holds
// with their inbox identity, and wraps those generations for each member
// who waits for them and has an inbox key (see the package comment). A
// wrap is stored only while its member still is one (store.InsertTeamWrap),
// so a removal at the same moment leaves none behind. Returns the opened
// generations.
func (s *Service) shareTeamKeys(ctx context.Context, snd *Sender, team string, inbox *age.X25519Identity) ([]age.Identity, error) {
	wraps, err := s.db.TeamWraps(ctx, team)
	if err != nil {
		return nil, err
	}
	held := map[int]*age.X25519Identity{}
	has := map[string]bool{}
	var out []age.Identity
	for _, w := range wraps {
		has[store.TeamWrapID(team, w.Generation, w.Email)] = true
		if !strings.EqualFold(w.Email, snd.Email) {
			continue
		}
		id, err := s.openTeamWrap(w, inbox)
		if err != nil {
			return nil, err
		}
		held[w.Generation] = id
		out = append(out, id)
	}
	if len(held) == 0 {
		return out, nil
	}
	members, err := s.db.TeamMembers(ctx, team)
	if err != nil {
		return nil, err
	}
	now := s.now()
	for _, m := range members {
		var gens []int
		for g := range held {
			if !has[store.TeamWrapID(team, g, m.Email)] {
				gens = append(gens, g)
			}
		}
		if len(gens) == 0 {
			continue
		}
		to, err := s.inboxRecipient(ctx, s.db.Q, m.Email)
		if kluis.ErrorCode(err) == kluis.ENOTFOUND {
			continue
		}
		if err != nil {
			return nil, err
		}
		n := 0
		for _, g := range gens {
			ok, err := s.insertTeamWrap(ctx, s.db.Q, team, g, m.Email, held[g], to, now)
			if err != nil {
				return nil, err
			}
			if ok {
				n++
			}
		}
		if n > 0 {
			s.audit.Log(ctx, audit.Event{Actor: snd.AuditActor(), Action: audit.TeamWrap, Object: "team:" + team,
				Detail: fmt.Sprintf("member=%s generations=%d", m.Email, n)})
		}
	}
	return out, nil
}

// openTeamWrap opens a member's wrap of a team identity with their inbox
// identity.
func (s *Service) openTeamWrap(w *store.TeamWrap, inbox *age.X25519Identity) (*age.X25519Identity, error) {
	damaged := func(err error) error {
		return &kluis.Error{Code: kluis.EINTEGRITY, Message: "A team key is damaged. Contact your administrator.", Err: err}
	}
	b, err := s.keys.Open(purposeTeamWrap, store.TeamWrapID(w.TeamID, w.Generation, w.Email), w.WrapSealed)
	if err != nil {
		return nil, damaged(err)
	}
	r, err := age.Decrypt(bytes.NewReader(b), inbox)
	if err != nil {
		return nil, damaged(err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, 1024))
	if err != nil {
		return nil, damaged(err)
	}
	id, err := age.ParseX25519Identity(string(plain))
	if err != nil {
		return nil, damaged(err)
	}
	return id, nil
}

// startTeamKeys gives each team of email that has no key a first one,
// now that email has an inbox key.
func (s *Service) startTeamKeys(ctx context.Context, email string) error {
	teams, err := s.db.TeamsOf(ctx, email)
	if err != nil || len(teams) == 0 {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, team := range teams {
		if _, err := tx.CurrentTeamKey(ctx, team); errors.Is(err, store.ErrNotFound) {
			if _, err := s.newTeamKey(ctx, tx, team, "member set an inbox key"); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
	}
	return tx.Commit()
}
