package store

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"time"
)

// TeamKey is a team_keys row (migration 0036): one generation of a
// team's inbox key. RecipientSealed is opaque here.
type TeamKey struct {
	ID              string
	TeamID          string
	Generation      int
	RecipientSealed []byte
	CreatedAt       time.Time
	RetiredAt       *time.Time
}

// TeamKeyID is the row id of a team key generation ("team/generation"),
// which its seal is bound to.
func TeamKeyID(team string, generation int) string {
	return team + "/" + strconv.Itoa(generation)
}

// TeamWrapID is the row id of a member's wrap of a generation.
func TeamWrapID(team string, generation int, email string) string {
	return TeamKeyID(team, generation) + "/" + email
}

// TeamWrap is a team_wraps row: a generation's identity for one member.
type TeamWrap struct {
	TeamID     string
	Generation int
	Email      string
	WrapSealed []byte
}

// TeamMember is a team_members row.
type TeamMember struct {
	TeamID  string
	Email   string
	AddedAt time.Time
}

// InsertTeamMember adds a member. Returns ErrConflict if the address is a
// member already.
func (q Q) InsertTeamMember(ctx context.Context, m *TeamMember) error {
	res, err := q.q.ExecContext(ctx, `INSERT INTO team_members (team_id, email, added_at) VALUES (?, ?, ?)
		ON CONFLICT (team_id, email) DO NOTHING`, m.TeamID, m.Email, ms(m.AddedAt))
	return affected(res, err, ErrConflict)
}

// DeleteTeamMember removes a member and every wrap of the team's keys
// made for them. Returns ErrNotFound if the address is not a member.
//
// The member row goes first: on PostgreSQL that locks it, so a wrap being
// written for the member at the same moment (InsertTeamWrap, which
// share-locks the row) either waits and finds no member, or was written
// before and is deleted by the second statement, which sees it once the
// writer committed.
func (q Q) DeleteTeamMember(ctx context.Context, team, email string) error {
	res, err := q.q.ExecContext(ctx, `DELETE FROM team_members WHERE team_id = ? AND email = ?`, team, email)
	if err := affected(res, err, ErrNotFound); err != nil {
		return err
	}
	_, err = q.q.ExecContext(ctx, `DELETE FROM team_wraps WHERE team_id = ? AND email = ?`, team, email)
	return err
}

// TeamMembers lists a team's members, oldest first.
func (q Q) TeamMembers(ctx context.Context, team string) ([]*TeamMember, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT team_id, email, added_at FROM team_members WHERE team_id = ? ORDER BY added_at, email`, team)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*TeamMember
	for rows.Next() {
		var m TeamMember
		var added int64
		if err := rows.Scan(&m.TeamID, &m.Email, &added); err != nil {
			return nil, err
		}
		m.AddedAt = fromMS(added)
		out = append(out, &m)
	}
	return out, rows.Err()
}

// TeamsOf lists the teams an address is a member of (members are kept in
// lower case).
func (q Q) TeamsOf(ctx context.Context, email string) ([]string, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT team_id FROM team_members WHERE email = lower(?) ORDER BY team_id`, email)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// InsertTeamKey stores a new generation of a team key and retires the
// ones before it. Returns ErrConflict if the generation exists (another
// administrator re-keyed meanwhile).
func (q Q) InsertTeamKey(ctx context.Context, k *TeamKey) error {
	res, err := q.q.ExecContext(ctx, `INSERT INTO team_keys (id, team_id, generation, recipient_sealed, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`, TeamKeyID(k.TeamID, k.Generation), k.TeamID, k.Generation, k.RecipientSealed, ms(k.CreatedAt))
	if err := affected(res, err, ErrConflict); err != nil {
		return err
	}
	_, err = q.q.ExecContext(ctx, `UPDATE team_keys SET retired_at = ? WHERE team_id = ? AND generation < ? AND retired_at IS NULL`,
		ms(k.CreatedAt), k.TeamID, k.Generation)
	return err
}

// RetireTeamKey retires the current generation of a team without a new
// one (no member can hold it): the team takes no uploads until one is made.
func (q Q) RetireTeamKey(ctx context.Context, team string, at time.Time) error {
	_, err := q.q.ExecContext(ctx, `UPDATE team_keys SET retired_at = ? WHERE team_id = ? AND retired_at IS NULL`, ms(at), team)
	return err
}

const teamKeyCols = `id, team_id, generation, recipient_sealed, created_at, retired_at`

func scanTeamKey(row interface{ Scan(...any) error }) (*TeamKey, error) {
	var k TeamKey
	var created int64
	var retired sql.NullInt64
	err := row.Scan(&k.ID, &k.TeamID, &k.Generation, &k.RecipientSealed, &created, &retired)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	k.CreatedAt, k.RetiredAt = fromMS(created), fromNullMS(retired)
	return &k, nil
}

// CurrentTeamKey returns the team's generation that takes uploads.
// Returns ErrNotFound if it has none (no member with an inbox key yet, or
// the last one was removed).
func (q Q) CurrentTeamKey(ctx context.Context, team string) (*TeamKey, error) {
	return scanTeamKey(q.q.QueryRowContext(ctx, `SELECT `+teamKeyCols+` FROM team_keys WHERE team_id = ? AND retired_at IS NULL`, team))
}

// LastTeamGeneration is the newest generation a team ever had, 0 if none.
func (q Q) LastTeamGeneration(ctx context.Context, team string) (int, error) {
	var g sql.NullInt64
	err := q.q.QueryRowContext(ctx, `SELECT MAX(generation) FROM team_keys WHERE team_id = ?`, team).Scan(&g)
	return int(g.Int64), err
}

// InsertTeamWrap stores a member's wrap of a generation, in one statement
// only while the address is a member of the team (on PostgreSQL with the
// member row share-locked, so a removal under way either waits for this
// wrap and deletes it, or this waits for the removal and stores nothing;
// see DeleteTeamMember). Returns ErrConflict if the member has one
// already, ErrNotFound if the address is not a member (any more).
func (q Q) InsertTeamWrap(ctx context.Context, w *TeamWrap, at time.Time) error {
	lock := ""
	if q.postgres() {
		lock = " FOR SHARE"
	}
	res, err := q.q.ExecContext(ctx, `INSERT INTO team_wraps (id, team_id, generation, email, wrap_sealed, created_at)
		SELECT ?, ?, ?, ?, ?, ? FROM team_members WHERE team_id = ? AND email = ?`+lock+`
		ON CONFLICT (id) DO NOTHING`, TeamWrapID(w.TeamID, w.Generation, w.Email), w.TeamID, w.Generation, w.Email, w.WrapSealed, ms(at),
		w.TeamID, w.Email)
	if err := affected(res, err, ErrConflict); !errors.Is(err, ErrConflict) {
		return err
	}
	var n int
	if err := q.q.QueryRowContext(ctx, `SELECT count(*) FROM team_members WHERE team_id = ? AND email = ?`, w.TeamID, w.Email).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return ErrConflict
}

// TeamWraps lists the wraps of a team's keys, all members and generations
// (newest generation first).
func (q Q) TeamWraps(ctx context.Context, team string) ([]*TeamWrap, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT team_id, generation, email, wrap_sealed FROM team_wraps WHERE team_id = ?
		ORDER BY generation DESC, email`, team)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*TeamWrap
	for rows.Next() {
		var w TeamWrap
		if err := rows.Scan(&w.TeamID, &w.Generation, &w.Email, &w.WrapSealed); err != nil {
			return nil, err
		}
		out = append(out, &w)
	}
	return out, rows.Err()
}

// DropoffUpload is a dropoff_uploads row.
type DropoffUpload struct {
	TransferID  string
	Slug        string
	TeamID      string
	Generation  int
	SenderEmail string
	CreatedAt   time.Time
}

// InsertDropoffUpload records what a transfer was sent to.
func (q Q) InsertDropoffUpload(ctx context.Context, d *DropoffUpload) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO dropoff_uploads (transfer_id, slug, team_id, generation, sender_email, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, d.TransferID, d.Slug, d.TeamID, d.Generation, d.SenderEmail, ms(d.CreatedAt))
	return err
}

const dropoffCols = `d.transfer_id, d.slug, d.team_id, d.generation, d.sender_email, d.created_at`

func scanDropoffs(rows *sql.Rows, err error) ([]*DropoffUpload, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*DropoffUpload
	for rows.Next() {
		var d DropoffUpload
		var created int64
		if err := rows.Scan(&d.TransferID, &d.Slug, &d.TeamID, &d.Generation, &d.SenderEmail, &created); err != nil {
			return nil, err
		}
		d.CreatedAt = fromMS(created)
		out = append(out, &d)
	}
	return out, rows.Err()
}

// DropoffUpload returns the drop-off record of a transfer. Returns
// ErrNotFound if the transfer was not sent to a drop-off point.
func (q Q) DropoffUpload(ctx context.Context, transferID string) (*DropoffUpload, error) {
	list, err := scanDropoffs(q.q.QueryContext(ctx, `SELECT `+dropoffCols+` FROM dropoff_uploads d WHERE d.transfer_id = ?`, transferID))
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, ErrNotFound
	}
	return list[0], nil
}

// OpenDropoffDraft returns a sender's unfinished upload to a drop-off
// point (draft or uploading), the newest. Returns ErrNotFound if none.
func (q Q) OpenDropoffDraft(ctx context.Context, email, slug string) (*DropoffUpload, error) {
	list, err := scanDropoffs(q.q.QueryContext(ctx, `SELECT `+dropoffCols+` FROM dropoff_uploads d JOIN transfers t ON t.id = d.transfer_id
		WHERE d.sender_email = ? AND d.slug = ? AND t.state IN ('draft', 'uploading') AND t.revoked_at IS NULL AND t.purged_at IS NULL
		ORDER BY d.created_at DESC LIMIT 1`, email, slug))
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, ErrNotFound
	}
	return list[0], nil
}

// TeamDropoffs lists what was sent to a team's drop-off points and
// finished (not drafts), newest first, at most limit.
func (q Q) TeamDropoffs(ctx context.Context, team string, limit int) ([]*DropoffUpload, error) {
	return scanDropoffs(q.q.QueryContext(ctx, `SELECT `+dropoffCols+` FROM dropoff_uploads d JOIN transfers t ON t.id = d.transfer_id
		WHERE d.team_id = ? AND t.state NOT IN ('draft', 'uploading') ORDER BY d.created_at DESC LIMIT ?`, team, limit))
}
