// Package outbox is a persistent outbox: each mail is written in the same
// database transaction as the change that causes it, sealed with the master
// key, and sent by a worker with retries.
//
// # Delivery
//
// The worker claims due rows with a lease, so several instances can run on
// one database; it sends each, and deletes the row once the relay accepted
// it. A crash between the relay's acceptance and the delete sends the mail
// again, with the same Message-ID (<id@domain>), so the receiving side can
// drop the copy. A dead process's claims do not wait out the lease: on
// SQLite the next start ends them (ClearStaleClaims), on PostgreSQL a claim
// of an instance whose database session has ended is free at once
// (store.DB.ClaimOutbox). Temporary failures back off
// exponentially from InitialBackoff, doubling up to MaxBackoff, until the
// mail is older than GiveUpAfter; then, or at once on a permanent failure,
// the row is marked failed, its content erased, and an error is logged with
// the mail's kind and id (never its content or recipient).
//
// # Text messages
//
// An SMS (a mail.Message whose Kind.SMS() is true: To is a number, Text
// the message) is queued, sealed, claimed and retried the same way, and
// goes out through Deps.SMS instead of the mail relay. Once it is sent, or
// given up, the function set with OnSMS is told, in the transaction that
// deletes the row or marks it failed, so the state it records (a file
// request's "SMS sent") and the queue never disagree.
//
// # Erasure
//
// Rows are deleted under secure_delete, and the worker truncates the WAL
// (store.DB.Checkpoint) at most every CheckpointEvery after deliveries, so a
// delivered mail (which may hold a no-password link secret) survives
// neither in the database file nor in the WAL.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sms"
	"github.com/kluis-nl/kluis/internal/store"
)

// Sender delivers one mail to m.To. An error that has a method
// Permanent() bool returning true (as the smtp package's errors do) marks a
// mail that will never be accepted; any other error is retried.
type Sender interface {
	Send(ctx context.Context, m *mail.Message, messageID string) error
}

// Defaults for the worker.
const (
	Lease           = 3 * time.Minute     // how long a claim lasts
	SendTimeout     = 45 * time.Second    // bound on one delivery
	Batch           = 3                   // rows per claim; Batch*SendTimeout < Lease
	PollEvery       = 5 * time.Second     // how often the worker looks without a Wake
	InitialBackoff  = 10 * time.Second    // delay after the first failure
	MaxBackoff      = time.Hour           // longest delay between tries
	GiveUpAfter     = 24 * time.Hour      // age after which a mail failing temporarily is given up
	CheckpointEvery = 5 * time.Second     // least time between WAL truncations
	KeepFailed      = 30 * 24 * time.Hour // failed mails' records (id, kind, error) are kept this long for the operator
)

// sealPurpose binds the sealed mail to the outbox and its row id.
const sealPurpose = "outbox.mail"

// Outbox queues and delivers mail.
type Outbox struct {
	db     *store.DB
	keys   *secret.Keyring
	sender Sender
	sms    sms.Sender
	onSMS  SMSResult
	// smsWanted, if set, is asked before an SMS with a ref goes out.
	smsWanted SMSWanted
	domain    string
	now       func() time.Time
	log       *slog.Logger
	wake      chan struct{}

	// Tunables; tests shorten them.
	lease, sendTimeout, pollEvery, checkpointEvery time.Duration
	batch                                          int

	lastCheckpoint   time.Time // real time
	checkpointNeeded bool

	metrics Metrics // nil: nothing counted
}

// Metrics receives the outcome of each delivery attempt of a mail
// (package metrics implements it for Prometheus); SMS messages are not
// counted.
type Metrics interface {
	// Sent: the relay accepted a mail.
	Sent()
	// Failed: a delivery attempt failed; permanent when the mail was given
	// up (rejected, undecodable, or retried too long). reason is the error
	// text, which may name the recipient: the receiver must not show it
	// as is.
	Failed(permanent bool, reason string)
}

// Deps are what an outbox is built from.
type Deps struct {
	DB   *store.DB
	Keys *secret.Keyring
	// Sender delivers the mail (SMTP or the development mailbox); nil
	// only for an outbox that queues and never runs.
	Sender Sender
	// SMS sends the text messages; nil: none can be sent, and one that
	// was queued is given up.
	SMS sms.Sender
	// Domain is the right-hand side of Message-IDs (the domain of the
	// from address).
	Domain string
	// Now is the clock for queue times; nil: time.Now.
	Now func() time.Time
	// Log receives delivery failures; nil: slog.Default().
	Log *slog.Logger
	// Metrics counts deliveries; nil: nothing is counted.
	Metrics Metrics
}

// New returns an outbox built from d.
func New(d Deps) *Outbox {
	now, log := d.Now, d.Log
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Outbox{
		db: d.DB, keys: d.Keys, sender: d.Sender, sms: d.SMS, domain: d.Domain, now: now, log: log, metrics: d.Metrics,
		wake:            make(chan struct{}, 1),
		lease:           Lease,
		sendTimeout:     SendTimeout,
		pollEvery:       PollEvery,
		checkpointEvery: CheckpointEvery,
		batch:           Batch,
	}
}

// SMSResult is told, in q's transaction, that the SMS of kind for ref was
// sent (sent) or given up (!sent) at at. An error rolls the outcome back:
// the row stays and is tried again.
type SMSResult func(ctx context.Context, q store.Q, kind mail.Kind, ref string, sent bool, at time.Time) error

// OnSMS sets the function told the outcome of each SMS. Call it before
// Run.
func (o *Outbox) OnSMS(f SMSResult) { o.onSMS = f }

// SMSWanted tells, just before an SMS of kind for ref goes out, whether it
// is still wanted; if not, reason says why (for the queue's record). An
// error leaves the SMS queued, to be tried again.
type SMSWanted func(ctx context.Context, kind mail.Kind, ref string) (wanted bool, reason string, err error)

// CheckSMS sets the function asked before each SMS with a ref is sent: an
// SMS no longer wanted (its file request was withdrawn, or its link
// expired, while it waited) is given up unsent, and OnSMS is told so.
// Call it before Run.
func (o *Outbox) CheckSMS(f SMSWanted) { o.smsWanted = f }

// Drop deletes a waiting mail or a failed mail's record, in tx (the
// console's "delete", which audits in the same transaction), as
// store.Q.DropOutbox does. A waiting SMS with a ref is given up: OnSMS is
// told, in tx, that it was not sent, so a file request's page says "not
// sent" instead of "waiting" for a message that will never go.
func (o *Outbox) Drop(ctx context.Context, tx *store.Tx, id string, now time.Time) error {
	row, err := tx.Outbox(ctx, id)
	if err != nil {
		return err
	}
	var kind mail.Kind
	var ref string
	if row.FailedAt == nil && len(row.Sealed) > 0 && mail.Kind(row.Kind).SMS() && o.onSMS != nil {
		// A failed row's content is erased and OnSMS was told already.
		body, err := o.keys.Open(sealPurpose, row.ID, row.Sealed)
		if err == nil {
			var m mail.Message
			if json.Unmarshal(body, &m) == nil {
				kind, ref = m.Kind, m.Ref
			}
			clear(body)
		}
	}
	if err := tx.DropOutbox(ctx, id, now); err != nil {
		return err
	}
	if ref == "" {
		return nil
	}
	return o.onSMS(ctx, tx.Q, kind, ref, false, now)
}

// MessageID is the Message-ID header value of the mail with outbox id id.
func (o *Outbox) MessageID(id string) string { return "<" + id + "@" + o.domain + ">" }

// Enqueue queues m in tx: it is sent only if tx commits. Call Wake after
// the commit to send it at once (otherwise the worker finds it within
// PollEvery). It returns the outbox id, which is also the local part of the
// Message-ID.
func (o *Outbox) Enqueue(ctx context.Context, tx *store.Tx, m *mail.Message) (id string, err error) {
	if tx == nil {
		return "", errors.New("outbox: enqueue needs the transaction of the change that causes the mail")
	}
	if m == nil || m.To == "" {
		return "", errors.New("outbox: a mail needs a recipient")
	}
	body, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("outbox: %w", err)
	}
	id = secret.NewID()
	now := o.now()
	row := &store.OutboxRow{
		ID:        id,
		Kind:      string(m.Kind),
		CreatedAt: now,
		NotBefore: now,
		Sealed:    o.keys.Seal(sealPurpose, id, body),
		// For the admin console's mail queue (MaskAddress).
		RecipientMasked: MaskAddress(m.To),
	}
	if m.Kind.SMS() {
		row.RecipientMasked = sms.Mask(m.To)
	}
	clear(body)
	if err := tx.InsertOutbox(ctx, row); err != nil {
		return "", err
	}
	return id, nil
}

// ClearStaleClaims releases the claims an earlier run left on mail it was
// sending, in a database that only this process uses (SQLite): after a
// crash that mail would otherwise wait for the lease (3 minutes) before it
// goes out. It may be sent twice then, with the same Message-ID, as after
// any crash between the relay's acceptance and the row's deletion. On
// PostgreSQL other instances hold live claims, so it does nothing there:
// a dead instance's claims are free once PostgreSQL has ended its session
// (store.DB.ClaimOutbox).
func (o *Outbox) ClearStaleClaims(ctx context.Context) error {
	if o.db.Dialect() != store.SQLite {
		return nil
	}
	n, err := o.db.ReleaseOutboxClaims(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		o.log.Info("outbox: released mail claimed by an earlier run", "count", n)
	}
	return nil
}

// Wake makes the worker look for due mail now. It never blocks.
func (o *Outbox) Wake() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Run delivers mail until ctx ends: at once after Wake, and every
// PollEvery.
func (o *Outbox) Run(ctx context.Context) {
	tick := time.NewTicker(o.pollEvery)
	defer tick.Stop()
	var cpTimer *time.Timer
	var cpC <-chan time.Time
	var lastPrune time.Time
	for {
		if err := o.drain(ctx); err != nil && ctx.Err() == nil {
			o.log.Error("outbox: delivery round failed; will retry", "err", err)
		}
		if time.Since(lastPrune) > time.Hour {
			// A failed row's error text may name the recipient: it goes too.
			if n, err := o.db.DeleteFailedOutbox(ctx, o.now().Add(-KeepFailed)); err != nil && ctx.Err() == nil {
				o.log.Error("outbox: removing old failed mails", "err", err)
			} else if n > 0 {
				o.log.Info("outbox: removed records of old failed mails", "count", n)
				o.checkpointNeeded = true
			}
			lastPrune = time.Now()
		}
		if wait := o.maybeCheckpoint(ctx); wait > 0 && cpC == nil {
			cpTimer = time.NewTimer(wait)
			cpC = cpTimer.C
		}
		select {
		case <-ctx.Done():
			if cpTimer != nil {
				cpTimer.Stop()
			}
			// Last erasure on the way out, if one is owed.
			if o.checkpointNeeded {
				cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				o.lastCheckpoint = time.Time{}
				o.maybeCheckpoint(cctx)
				cancel()
			}
			return
		case <-tick.C:
		case <-o.wake:
		case <-cpC:
			cpC, cpTimer = nil, nil
		}
	}
}

// maybeCheckpoint truncates the WAL if a delivery erased a row since the
// last truncation and CheckpointEvery has passed; otherwise it returns how
// long to wait before trying again (0 if nothing is owed).
func (o *Outbox) maybeCheckpoint(ctx context.Context) time.Duration {
	if !o.checkpointNeeded {
		return 0
	}
	if since := time.Since(o.lastCheckpoint); since < o.checkpointEvery {
		return o.checkpointEvery - since
	}
	if err := o.db.Checkpoint(ctx); err != nil {
		if ctx.Err() == nil {
			o.log.Error("outbox: WAL checkpoint after delivery failed; will retry", "err", err)
		}
		o.lastCheckpoint = time.Now()
		return o.checkpointEvery
	}
	o.lastCheckpoint = time.Now()
	o.checkpointNeeded = false
	return 0
}

// drain claims and handles due mail until none is left.
func (o *Outbox) drain(ctx context.Context) error {
	for ctx.Err() == nil {
		rows, err := o.db.ClaimOutbox(ctx, o.now(), o.lease, o.batch)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		for _, row := range rows {
			if err := o.deliver(ctx, row); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// deliver sends one claimed row and records the outcome. It returns an
// error only for database failures.
func (o *Outbox) deliver(ctx context.Context, row *store.OutboxRow) error {
	if row.ClaimedUntil != nil && o.now().Add(o.sendTimeout).After(*row.ClaimedUntil) {
		// The lease would run out while sending; leave the row to the
		// next claim rather than risk two instances sending it.
		return nil
	}
	body, err := o.keys.Open(sealPurpose, row.ID, row.Sealed)
	if err != nil {
		o.log.Error("outbox: queued mail cannot be opened (wrong master key or damaged); giving up",
			"mail_id", row.ID, "kind", row.Kind, "err", err)
		return o.fail(ctx, row, "sealed mail cannot be opened")
	}
	var m mail.Message
	err = json.Unmarshal(body, &m)
	clear(body)
	if err != nil {
		o.log.Error("outbox: queued mail cannot be decoded; giving up", "mail_id", row.ID, "kind", row.Kind)
		return o.fail(ctx, row, "sealed mail cannot be decoded")
	}
	kind, ref := m.Kind, m.Ref
	if kind.SMS() && ref != "" && o.smsWanted != nil {
		wanted, reason, err := o.smsWanted(ctx, kind, ref)
		if err != nil {
			m = mail.Message{}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Not the SMS's fault: the lease runs out and a later claim
			// asks again.
			o.log.Warn("outbox: cannot tell whether an SMS is still wanted; will retry", "mail_id", row.ID, "kind", row.Kind, "err", err)
			return nil
		}
		if !wanted {
			m = mail.Message{}
			o.log.Info("sms not sent: no longer wanted", "mail_id", row.ID, "kind", row.Kind, "reason", reason)
			return o.failRef(ctx, row, kind, ref, reason)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, o.sendTimeout)
	switch {
	case !kind.SMS():
		err = o.sender.Send(sctx, &m, o.MessageID(row.ID))
	case o.sms == nil:
		err = errNoGateway
	default:
		err = o.sms.Send(sctx, m.To, m.Text)
	}
	cancel()
	m = mail.Message{}
	if err == nil {
		// A background context: the relay has the mail, so the row must
		// go even if we are shutting down.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := o.sentOrFailed(dctx, row, kind, ref, true, ""); err != nil {
			return fmt.Errorf("delete delivered mail %s: %w", row.ID, err)
		}
		o.checkpointNeeded = true
		if o.metrics != nil && !kind.SMS() {
			o.metrics.Sent()
		}
		what := "mail sent"
		if kind.SMS() {
			what = "sms sent"
		}
		o.log.Info(what, "mail_id", row.ID, "kind", row.Kind, "attempts", row.Attempts+1)
		return nil
	}
	if ctx.Err() != nil {
		// Shutting down: not the mail's fault. The lease runs out and the
		// next run takes it up.
		return ctx.Err()
	}
	msg := errText(err)
	if isPermanent(err) {
		o.log.Error("mail rejected; giving up", "mail_id", row.ID, "kind", row.Kind,
			"attempts", row.Attempts+1, "err", msg)
		return o.failRef(ctx, row, kind, ref, msg)
	}
	now := o.now()
	attempts := row.Attempts + 1
	next := now.Add(Backoff(attempts))
	if next.Sub(row.CreatedAt) > GiveUpAfter {
		o.log.Error("mail not delivered after retrying for a day; giving up", "mail_id", row.ID, "kind", row.Kind,
			"attempts", attempts, "err", msg)
		return o.failRef(ctx, row, kind, ref, msg)
	}
	o.log.Warn("mail not sent; will retry", "mail_id", row.ID, "kind", row.Kind,
		"attempts", attempts, "retry_at", next.UTC().Format(time.RFC3339), "err", msg)
	if o.metrics != nil && !kind.SMS() {
		o.metrics.Failed(false, msg)
	}
	if err := o.db.RetryOutbox(ctx, row.ID, next, attempts, msg); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("record retry of %s: %w", row.ID, err)
	}
	return nil
}

func (o *Outbox) fail(ctx context.Context, row *store.OutboxRow, msg string) error {
	return o.failRef(ctx, row, mail.Kind(row.Kind), "", msg)
}

// failRef gives a row up; for an SMS with a ref, OnSMS is told.
func (o *Outbox) failRef(ctx context.Context, row *store.OutboxRow, kind mail.Kind, ref, msg string) error {
	if o.metrics != nil && !kind.SMS() {
		o.metrics.Failed(true, msg)
	}
	if err := o.sentOrFailed(ctx, row, kind, ref, false, msg); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("record failure of %s: %w", row.ID, err)
	}
	o.checkpointNeeded = true // the sealed content was erased
	return nil
}

// errNoGateway gives up an SMS queued while no gateway is configured.
var errNoGateway = permanent("sms: no SMS gateway is configured")

type permanent string

func (p permanent) Error() string   { return string(p) }
func (p permanent) Permanent() bool { return true }

// sentOrFailed deletes a delivered row (sent) or marks it failed with msg,
// and for an SMS with a ref tells OnSMS in the same transaction.
func (o *Outbox) sentOrFailed(ctx context.Context, row *store.OutboxRow, kind mail.Kind, ref string, sent bool, msg string) error {
	now := o.now()
	if !kind.SMS() || ref == "" || o.onSMS == nil {
		if sent {
			return o.db.DeleteOutbox(ctx, row.ID)
		}
		return o.db.FailOutbox(ctx, row.ID, now, msg)
	}
	tx, err := o.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if sent {
		err = tx.DeleteOutbox(ctx, row.ID)
	} else {
		err = tx.FailOutbox(ctx, row.ID, now, msg)
	}
	if err != nil {
		return err
	}
	if err := o.onSMS(ctx, tx.Q, kind, ref, sent, now); err != nil {
		return err
	}
	return tx.Commit()
}

// Backoff is the delay after the given number of failed attempts (1 or
// more): InitialBackoff, doubling, at most MaxBackoff. With the defaults a
// mail is tried about 30 times over GiveUpAfter.
func Backoff(attempts int) time.Duration {
	d := InitialBackoff
	for i := 1; i < attempts && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

func isPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// errText makes an error fit for last_error and logs: one line, bounded.
func errText(err error) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, err.Error())
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}
