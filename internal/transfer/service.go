// Package transfer is Kluis's engine: it creates transfers, takes their
// files as encrypted segments, unlocks them for recipients, streams them
// back decrypted, and erases them at expiry or revocation.
//
// # Keys
//
// Each transfer has its own age X25519 identity. Uploads are encrypted to
// its public recipient, so uploading needs no secret. The identity is stored
// only wrapped: by the transfer secret (a password through age's scrypt
// recipient, or a random link secret) and then sealed under the master key.
// Values only the recipients may read (file names, content types, checksums,
// the confidential message) are age-encrypted to the transfer's recipient
// and then sealed; values the server itself needs to do its work (sizes,
// manifests, sender details and notification text for mails) are sealed
// under the master key only.
//
// # Uploads
//
// WriteFile turns one request body into one or more segments (see package
// segment) and commits each one (blob durable first, then its manifest entry
// and the file's head in the database under a compare-and-swap on the file's
// revision; manifest.go) before it
// returns, whether the body ended cleanly or not. So an interrupted upload
// resumes at the exact byte where the last committed segment ended.
package transfer

import (
	"context"
	"log/slog"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sms"
	"github.com/kluis-nl/kluis/internal/store"
)

// Config holds the engine's limits and periods.
type Config struct {
	// BaseURL is the public address used in links, without a trailing slash.
	BaseURL string
	// MaxTransferSize bounds the sum of a transfer's file sizes.
	MaxTransferSize int64
	// DefaultExpiry and MaxExpiry bound how long a transfer lives.
	DefaultExpiry time.Duration
	MaxExpiry     time.Duration
	// MaxRecipients bounds To + Cc + Bcc.
	MaxRecipients int
	// SessionTTL is how long a download session lasts after an unlock.
	SessionTTL time.Duration
	// MaxFailures wrong attempts of a recipient in a row (passwords, and
	// every other factor that goes through Attempt) lock the access; the
	// n-th lock lasts Lockouts[n-1], the last entry repeating. After
	// HoldAfter wrong attempts in all since the last success or the
	// sender's unlock, the access stays locked until the sender lifts it
	// (0: never). See lockout.go.
	MaxFailures int
	Lockouts    []time.Duration
	HoldAfter   int
	// Retention keeps the minimal record this long after the purge.
	Retention time.Duration
	// PasswordLogN is the scrypt work factor for transfer passwords.
	PasswordLogN int
	// SegmentSize is where a segment is closed during a long request. A
	// smaller bound loses less on a crash (kill -9 loses the open segment).
	SegmentSize int64
	// MinSegment and MaxShortSegments refuse tiny requests: a file may
	// have at most MaxShortSegments segments of less than MinSegment bytes
	// that ended with their request before the file's end (see
	// WriteFile). 0 means the defaults, 1 MiB and 16.
	MinSegment       int64
	MaxShortSegments int
	// TempMaxAge: unfinished blob writes older than this are collected.
	TempMaxAge time.Duration
	// OrphanGrace: a blob no manifest lists is collected once older than
	// this (a commit may be in flight between blob rename and database).
	OrphanGrace time.Duration
	// PurgeInterval is how often the purge looks for expired transfers.
	PurgeInterval time.Duration
	// UnlockConcurrency bounds parallel password checks (each costs up to
	// 2^PasswordLogN KiB of memory).
	UnlockConcurrency int
	// UploadLease is how long an upload lease lasts without renewal (see
	// lease.go); 0 means DefaultUploadLease.
	UploadLease time.Duration
	// Scan is the malware-scan policy (scan.go); the zero value scans
	// nothing.
	Scan ScanConfig
	// SMS bounds the SMS codes of the second factor (sms.go); zero
	// values take DefaultSMSConfig's.
	SMS SMSConfig
}

// DefaultConfig returns the embedded defaults.
func DefaultConfig() Config {
	return Config{
		BaseURL:           "http://127.0.0.1:8080",
		MaxTransferSize:   2_000_000_000,
		DefaultExpiry:     7 * 24 * time.Hour,
		MaxExpiry:         30 * 24 * time.Hour,
		MaxRecipients:     50,
		SessionTTL:        time.Hour,
		MaxFailures:       10,
		Lockouts:          DefaultLockouts(),
		HoldAfter:         50,
		Retention:         30 * 24 * time.Hour,
		PasswordLogN:      secret.PasswordLogN,
		SegmentSize:       16 << 20,
		MinSegment:        DefaultMinSegment,
		MaxShortSegments:  DefaultMaxShortSegments,
		TempMaxAge:        24 * time.Hour,
		OrphanGrace:       time.Hour,
		PurgeInterval:     15 * time.Second,
		UnlockConcurrency: 4,
		Scan:              ScanConfig{Wait: 24 * time.Hour},
	}
}

// Deps are what the engine is built from. DB, Keys and (except for
// commands that touch no file) Blobs are required; the rest may be left
// out where a caller does without.
type Deps struct {
	DB     *store.DB
	Blobs  blob.Store
	Keys   *secret.Keyring
	Config Config
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Log receives the engine's log; nil: slog.Default().
	Log *slog.Logger
	// Mailer queues the notifications (the outbox), written for Org; nil:
	// no mail is written (commands and tests that send none).
	Mailer Mailer
	Org    mail.Org
	// Policy returns the organisation policy in force; it is read on each
	// Create, so a reload applies at once. nil: policy.Default(), every
	// address allowed within Config's limits.
	Policy func() *policy.Policy
	// Audit records the engine's events, in the same transaction as the
	// change they describe; nil: no audit log.
	Audit *audit.Recorder
	// Metrics counts uploads, downloads, unlocks and purges; nil: nothing
	// is counted.
	Metrics Metrics
	// Scanner is clamd (scan.Client); nil with Config.Scan on makes every
	// scanned file wait as for a clamd that is down.
	Scanner Scanner
	// SMS sends the codes of the second factor (an sms.HTTP gateway, or
	// the development mailbox); nil: recipients with an SMS code cannot
	// be verified, and SendCode says so.
	SMS sms.Sender
	// StaffLang returns the language a staff member last used (package
	// sender, KnownLang; "" when unknown), for mails to staff who are not
	// on a page now: a team member's drop-off notice. nil: Dutch.
	StaffLang func(ctx context.Context, email string) (string, error)
}

// Service is the transfer engine.
type Service struct {
	db        *store.DB
	blobs     blob.Store
	keys      *secret.Keyring
	cfg       Config
	now       func() time.Time
	log       *slog.Logger
	unlocks   *secret.Limiter
	wake      chan struct{}
	mailer    Mailer
	org       mail.Org
	policy    func() *policy.Policy                                   // nil: policy.Default()
	audit     *audit.Recorder                                         // nil: no audit log
	metrics   Metrics                                                 // nil: nothing counted
	scanner   Scanner                                                 // nil: no clamd
	sms       sms.Sender                                              // nil: no SMS gateway
	staffLang func(ctx context.Context, email string) (string, error) // nil: Dutch
	holder    string                                                  // this process in upload lease rows
	leases    *leaseRegistry                                          // upload leases held by this process
	logins    loginRPs                                                // recipient login providers, discovered once
}

// New returns the engine built from d.
func New(d Deps) *Service {
	now, log, cfg := d.Now, d.Log, d.Config
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.UnlockConcurrency <= 0 {
		cfg.UnlockConcurrency = 1
	}
	return &Service{
		db:        d.DB,
		blobs:     d.Blobs,
		keys:      d.Keys,
		cfg:       cfg,
		now:       func() time.Time { return now().UTC() },
		log:       log,
		unlocks:   secret.NewLimiter(cfg.UnlockConcurrency),
		wake:      make(chan struct{}, 1),
		mailer:    d.Mailer,
		org:       d.Org,
		policy:    d.Policy,
		audit:     d.Audit,
		metrics:   d.Metrics,
		scanner:   d.Scanner,
		sms:       d.SMS,
		staffLang: d.StaffLang,
		holder:    newHolderID(),
		leases:    &leaseRegistry{held: map[string]*UploadLease{}},
	}
}

// Now returns the engine's clock reading (UTC); handlers use it so that an
// injected clock applies everywhere.
func (s *Service) Now() time.Time { return s.now() }

// Config returns the engine's configuration.
func (s *Service) Config() Config { return s.cfg }

// Ready checks that the database and blob store answer.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.db.Ping(ctx); err != nil {
		return err
	}
	return s.blobs.List(ctx, "readyz-none/", func(blob.Info) error { return nil })
}

// wakePurge asks the background purge to run now.
func (s *Service) wakePurge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Unlocks returns the limiter of scrypt unlocks, so other services that
// unwrap passphrase-wrapped identities (the sender's inbox) stay within
// the same memory bound.
func (s *Service) Unlocks() *secret.Limiter { return s.unlocks }
