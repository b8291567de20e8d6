package transfer

import (
	"context"
	"errors"
	"fmt"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

// SealedValue is one column of values sealed under the master key, with the
// purpose its values are sealed for.
type SealedValue struct {
	store.SealedColumn
	Purpose string
}

// SealedValues lists every column that holds values sealed under the master
// key, with their purpose and row id as the code that seals them uses. A
// new sealed column must be added here, or a master key rotation leaves it
// sealed under the old key (TestRotateMasterKey checks every *_sealed
// column of the schema is listed or known not to use the master key).
//
// The purposes of the outbox and sender packages are repeated here as
// literals (they are unexported there); the rotation test fails if they
// drift.
var SealedValues = []SealedValue{
	{store.SealedColumn{Table: "transfers", Column: "recipient_sealed", RowID: "id"}, purposeRecipient},
	{store.SealedColumn{Table: "transfers", Column: "identity_sealed", RowID: "id"}, purposeIdentity},
	{store.SealedColumn{Table: "transfers", Column: "details_sealed", RowID: "id"}, purposeDetails},
	{store.SealedColumn{Table: "transfers", Column: "private_sealed", RowID: "id"}, purposePrivate},
	{store.SealedColumn{Table: "transfers", Column: "label_sealed", RowID: "id"}, purposeLabel},
	{store.SealedColumn{Table: "files", Column: "meta_sealed", RowID: "id"}, purposeFileMeta},
	{store.SealedColumn{Table: "files", Column: "private_sealed", RowID: "id"}, purposeFilePriv},
	{store.SealedColumn{Table: "files", Column: "sum_sealed", RowID: "id"}, purposeFileSum},
	{store.SealedColumn{Table: "files", Column: "manifest_sealed", RowID: "id"}, purposeManifest},
	{store.SealedColumn{Table: "files", Column: "head_sealed", RowID: "id"}, purposeHead},
	{store.SealedColumn{Table: "files", Column: "scan_sealed", RowID: "id"}, purposeScan},
	{store.SealedColumn{Table: "segments", Column: "entry_sealed", RowID: "id"}, purposeSegment},
	{store.SealedColumn{Table: "recipients", Column: "phone_sealed", RowID: "id"}, purposePhone},
	{store.SealedColumn{Table: "recipients", Column: "login_sealed", RowID: "id"}, purposeLogin},
	{store.SealedColumn{Table: "login_flows", Column: "flow_sealed", RowID: "lower(hex(state_hash))"}, purposeLoginFlow},
	{store.SealedColumn{Table: "file_requests", Column: "details_sealed", RowID: "id"}, purposeRequestDetails},
	{store.SealedColumn{Table: "file_requests", Column: "inbox_sealed", RowID: "id"}, purposeRequestInbox},
	{store.SealedColumn{Table: "file_requests", Column: "phone_sealed", RowID: "id"}, purposeRequestPhone},
	{store.SealedColumn{Table: "mail_origins", Column: "subject_sealed", RowID: "transfer_id"}, purposeMailSubject},
	{store.SealedColumn{Table: "outbox", Column: "sealed", RowID: "id"}, "outbox.mail"},                                      // internal/outbox sealPurpose
	{store.SealedColumn{Table: "verifications", Column: "details_sealed", RowID: "lower(hex(id_hash))"}, "verify.details"},   // internal/sender purposeVerify
	{store.SealedColumn{Table: "sender_sessions", Column: "details_sealed", RowID: "lower(hex(id_hash))"}, "sender.details"}, // internal/sender purposeSession
	{store.SealedColumn{Table: "oidc_flows", Column: "flow_sealed", RowID: "lower(hex(state_hash))"}, "sso.flow"},            // internal/sender purposeFlow
	{store.SealedColumn{Table: "inbox_keys", Column: "identity_sealed", RowID: "email"}, "inbox.identity"},                   // internal/sender purposeInbox
	{store.SealedColumn{Table: "team_keys", Column: "recipient_sealed", RowID: "id"}, "team.recipient"},                      // internal/sender purposeTeamRecipient
	{store.SealedColumn{Table: "team_wraps", Column: "wrap_sealed", RowID: "id"}, "team.wrap"},                               // internal/sender purposeTeamWrap
	// internal/gateway PurposePassword
	{store.SealedColumn{Table: "gateway_passwords", Column: "sealed", RowID: "lower(hex(token_hash))"}, "gateway.password"},
}

// NotMasterSealed are *_sealed columns that are not under the master key:
// sessions.identity_sealed and sender_sessions.inbox_sealed are sealed with
// a key only the client's token carries, so a rotation neither can nor
// needs to touch them.
var NotMasterSealed = []string{"sessions.identity_sealed", "sender_sessions.inbox_sealed"}

// RotationCount is what [RotateMasterKey] did in one column.
type RotationCount struct {
	Column   string // table.column
	Resealed int    // values opened with the old key and sealed with the new
	Already  int    // values already under the new key (a rerun after a crash)
}

// RotateMasterKey re-seals every value sealed under oldKeys with newKeys,
// same purpose and row id, in one database transaction. Values already
// under newKeys are left alone, so the rotation can be run again after it
// was interrupted after the commit. A value under neither key stops it with
// nothing changed. db should be opened with [store.OpenExclusive]
// (SQLite or PostgreSQL), so no server runs meanwhile.
func RotateMasterKey(ctx context.Context, db *store.DB, oldKeys, newKeys *secret.Keyring) ([]RotationCount, error) {
	if oldKeys.ID() == newKeys.ID() {
		return nil, errors.New("rotate master key: the new key is the old key")
	}
	purposes := make(map[store.SealedColumn]string, len(SealedValues))
	cols := make([]store.SealedColumn, 0, len(SealedValues))
	for _, v := range SealedValues {
		purposes[v.SealedColumn] = v.Purpose
		cols = append(cols, v.SealedColumn)
	}
	newID := newKeys.ID()
	counts, err := db.Reseal(ctx, cols, func(col store.SealedColumn, rowID string, sealed []byte) ([]byte, error) {
		purpose := purposes[col]
		if KeyIDOf(sealed) == newID {
			if _, err := newKeys.Open(purpose, rowID, sealed); err != nil {
				return nil, err
			}
			return nil, nil
		}
		plain, err := oldKeys.Open(purpose, rowID, sealed)
		if err != nil {
			return nil, err
		}
		out := newKeys.Seal(purpose, rowID, plain)
		clear(plain)
		return out, nil
	})
	if err != nil {
		return nil, fmt.Errorf("rotate master key: %w", err)
	}
	out := make([]RotationCount, len(counts))
	for i, c := range counts {
		out[i] = RotationCount{Column: c.Column.String(), Resealed: c.Resealed, Already: c.Kept}
	}
	return out, nil
}

// KeyIDOf returns the id (hex) of the master key a sealed value names, or
// "" if the value is too short to name one. It does not authenticate.
func KeyIDOf(sealed []byte) string {
	if len(sealed) < 9 {
		return ""
	}
	return fmt.Sprintf("%x", sealed[1:9])
}

// ExportIdentity unwraps a transfer's age identity with its secret (the
// password, or for a no-password transfer the link secret from the link's
// #fragment) and returns it as an AGE-SECRET-KEY-1... string, for an
// operator who wants to decrypt the stored segments with the standard age
// tool. It is an administrator's tool: it does not count as a recipient's
// unlock attempt and ignores lockouts, but it costs the same scrypt work
// and refuses a wrong secret with EWRONGSECRET.
func (s *Service) ExportIdentity(ctx context.Context, transferID, transferSecret string) (string, error) {
	t, err := s.db.Transfer(ctx, transferID)
	if errors.Is(err, store.ErrNotFound) {
		return "", kluis.Errorf(kluis.ENOTFOUND, "There is no transfer %s.", transferID)
	}
	if err != nil {
		return "", err
	}
	transferSecret = normalizeSecret(t, transferSecret)
	if len(transferSecret) > 4*secret.MaxPasswordLength {
		transferSecret = transferSecret[:4*secret.MaxPasswordLength]
	}
	if err := s.unlocks.Acquire(ctx); err != nil {
		return "", err
	}
	id, err := s.unwrap(t, transferSecret)
	s.unlocks.Release()
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// CheckMasterKey refuses a master key that is not the one the database is
// sealed under (judged by the newest transfer's wrapped identity), so an
// instance started with an old key after a rotation, or with another
// installation's key, stops at once with a clear message instead of
// failing every request. An empty database passes.
func CheckMasterKey(ctx context.Context, db *store.DB, keys *secret.Keyring) error {
	sealed, err := db.NewestSealedIdentity(ctx)
	if err != nil {
		return fmt.Errorf("check the master key: %w", err)
	}
	if sealed == nil {
		return nil
	}
	if id := KeyIDOf(sealed); id != keys.ID() {
		return fmt.Errorf("the database is sealed under master key %s, but this instance has key %s: give it the key the other instances use (after a rotation: the new key file)", id, keys.ID())
	}
	return nil
}
