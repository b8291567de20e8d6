package store

import (
	"context"
	"fmt"
)

// Locks of a write transaction (BeginTx). On SQLite the transaction holds
// the database's only write lock from its start, so these read without
// locking more. On PostgreSQL write transactions run in parallel at READ
// COMMITTED, and a transaction that checks something and then writes on
// the strength of it must lock what the check read, until its commit:
//
//   - the transfer row (TransferForUpdate) for everything that depends on
//     a transfer's state and its set of files and recipients: adding a
//     file (its index, the transfer's size budget, the 1,000 files),
//     finishing (every file complete), revoking, the purge and its
//     re-check, erasing, abandoning a reply. Row locks are taken FOR NO
//     KEY UPDATE: they queue with each other and with TransferForShare,
//     not with the foreign-key checks of rows that refer to the transfer;
//   - the transfer row shared (TransferForShare) where only the state must
//     hold: completing a file, recording a download, lifting a lock-out;
//   - the recipient row (RecipientForUpdate) for a read-modify-write of
//     that recipient's rows (the served byte ranges);
//   - the sender (LockSender), an advisory lock keyed by the lower-cased
//     address, for the per-sender quotas counted over many transfers (open
//     drafts, the daily volume, the replies of one recipient to a
//     transfer: the reply's sender is that recipient);
//   - the audit actor (LockActor), an advisory lock keyed by the actor,
//     for counts of an actor's own audit entries (the helpdesk's hourly
//     revocations).
//
// Order, so two transactions never wait for each other: the actor, the
// sender, the transfer, then its recipients. Checks that are one statement
// (a conditional UPDATE, an upsert, a unique index) need no lock: the
// verification attempts, the recipient's password attempts
// (ReserveAttempt), the code-mail buckets (TakeRateToken), the upload
// lease (AppendSegmentFenced locks the lease row itself), the reminder
// claim, the first download of a file.

// lockClassActor is the first key of the actor locks (LockActor).
const lockClassActor int32 = 0x6b6c6163 // "klac"

// LockActor locks one audit actor until the transaction ends: of
// transactions that count an actor's recent audit entries and then add
// one (the helpdesk's hourly revocations), one at a time gets past its
// count. Take it before any other lock.
func (tx *Tx) LockActor(ctx context.Context, actor string) error {
	if !tx.pg {
		return nil
	}
	if _, err := tx.tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2::text))`, lockClassActor, actor); err != nil {
		return fmt.Errorf("lock actor: %w", err)
	}
	return nil
}

// lockClassSender is the first key of the sender locks. Two-key advisory
// locks are a key space apart from the one-key locks of the migrations and
// the instance lock, so a hash can never collide with those.
const lockClassSender int32 = 0x6b6c7573 // "klus"

// LockSender locks one sender's quotas until the transaction ends: of
// transactions that count a sender's transfers or files and then add one,
// one at a time gets past its count. The key is a 32-bit hash of the
// address lower-cased by the database, the same lower() the counts use;
// two senders whose hashes collide only wait for each other.
func (tx *Tx) LockSender(ctx context.Context, email string) error {
	if !tx.pg {
		return nil
	}
	if _, err := tx.tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(lower($2::text)))`, lockClassSender, email); err != nil {
		return fmt.Errorf("lock sender: %w", err)
	}
	return nil
}

// TransferForUpdate reads a transfer and locks its row until the
// transaction ends (FOR NO KEY UPDATE). Returns ErrNotFound if there is
// none.
func (tx *Tx) TransferForUpdate(ctx context.Context, id string) (*TransferRow, error) {
	return tx.transferLocked(ctx, id, " FOR NO KEY UPDATE")
}

// TransferForShare reads a transfer and keeps its row from changing until
// the transaction ends (FOR SHARE): others may read and share-lock it, but
// not update it. Returns ErrNotFound if there is none.
func (tx *Tx) TransferForShare(ctx context.Context, id string) (*TransferRow, error) {
	return tx.transferLocked(ctx, id, " FOR SHARE")
}

func (tx *Tx) transferLocked(ctx context.Context, id, lock string) (*TransferRow, error) {
	q := `SELECT ` + transferCols + ` FROM transfers WHERE id = ?`
	if tx.pg {
		q += lock
	}
	return scanTransfer(tx.q.QueryRowContext(ctx, q, id))
}

// RecipientForUpdate reads a recipient and locks its row until the
// transaction ends (FOR NO KEY UPDATE). Returns ErrNotFound if there is
// none.
func (tx *Tx) RecipientForUpdate(ctx context.Context, id int64) (*RecipientRow, error) {
	q := `SELECT ` + recipientCols + ` FROM recipients WHERE id = ?`
	if tx.pg {
		q += " FOR NO KEY UPDATE"
	}
	return scanRecipient(tx.q.QueryRowContext(ctx, q, id))
}
