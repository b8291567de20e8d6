package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/blob/local"
	"github.com/kluis-nl/kluis/internal/blob/s3"
	"github.com/kluis-nl/kluis/internal/config"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/mail/devbox"
	"github.com/kluis-nl/kluis/internal/mail/smtp"
	"github.com/kluis-nl/kluis/internal/metrics"
	"github.com/kluis-nl/kluis/internal/outbox"
	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/server"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
	"github.com/kluis-nl/kluis/internal/web"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.ParseServe(args, getenv, stdout)
	if err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	scheme := "http://"
	if cfg.TLSCert != "" {
		scheme = "https://"
	}
	if cfg.BaseURLDefaulted {
		// With port 0 the real port is known only now; the host stays the
		// one derived from --addr (localhost for a wildcard address).
		if u, err := url.Parse(cfg.BaseURL); err == nil {
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			cfg.BaseURL = scheme + net.JoinHostPort(u.Hostname(), port)
		}
	}
	defer ln.Close()
	if cfg.TLSCert != "" {
		// TLS 1.2+ with the NCSC-NL settings; HSTS is sent on every answer.
		if ln, err = server.TLSListener(ln, cfg.TLSCert, cfg.TLSKey, log); err != nil {
			return err
		}
	}
	if cfg.SMTP == "" {
		// The development mailbox shows every mailed link and code: only on
		// a plainly local setup (devbox.Allowed), and only to direct
		// loopback requests (its handler's guard). Checked before anything
		// is opened or created.
		if err := devbox.Allowed(devbox.Setup{ListenAddr: ln.Addr().String(), BaseURL: cfg.BaseURL, TrustedProxies: cfg.TrustedProxies}); err != nil {
			return fmt.Errorf("no --smtp given: %w", err)
		}
	}
	keys, err := loadKeys(cfg, log)
	if err != nil {
		return err
	}
	if cfg.DB == "" || strings.HasPrefix(cfg.DB, "sqlite:") {
		dbPath := filepath.Join(cfg.DataDir, "kluis.db")
		if p, ok := strings.CutPrefix(cfg.DB, "sqlite:"); ok {
			dbPath = p
		}
		// SQLite creates the WAL and shm files with the database's mode.
		if f, err := os.OpenFile(dbPath, os.O_CREATE|os.O_RDWR, 0o600); err == nil {
			f.Close()
		}
	}
	db, err := store.Open(ctx, cfg.DB, cfg.DataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	if db.Dialect() == store.Postgres {
		// The connection is up, so the URL resolved; say how it is secured.
		if _, pt, err := store.ResolvePostgres(cfg.DB); err == nil {
			if w := pt.Warning(); w != "" {
				log.Warn(w, "sslmode", pt.Mode)
			} else {
				log.Info("connected to PostgreSQL", "sslmode", pt.Mode, "local", pt.Local)
			}
		}
	}
	if err := transfer.CheckMasterKey(ctx, db, keys); err != nil {
		return err
	}
	blobs, err := openBlobs(ctx, cfg, getenv, log)
	if err != nil {
		return err
	}
	tc := transfer.DefaultConfig()
	tc.BaseURL = cfg.BaseURL
	tc.MaxTransferSize = cfg.MaxTransferSize
	tc.DefaultExpiry, tc.MaxExpiry = cfg.DefaultExpiry, cfg.MaxExpiry
	tc.MaxRecipients = cfg.MaxRecipients
	tc.Retention = cfg.Retention
	tc.SessionTTL = cfg.SessionTTL
	tc.MaxFailures, tc.Lockouts, tc.HoldAfter = cfg.MaxFailures, cfg.Lockouts, cfg.LockoutHoldAfter
	tc.TempMaxAge = cfg.TempMaxAge
	tc.UnlockConcurrency = cfg.UnlockConcurrency
	svc := transfer.New(db, blobs, keys, tc, nil, log)
	if err := svc.ClearStaleLeases(ctx); err != nil {
		return err
	}
	pol, err := loadPolicy(cfg.Policy, log)
	if err != nil {
		return err
	}
	svc.SetPolicy(pol.Get)
	hup, stopHup := notifyHangup()
	defer stopHup()

	org := mail.Org{Name: cfg.OrgName, LogoURL: cfg.OrgLogoURL, BaseURL: cfg.BaseURL}
	if err := org.Validate(); err != nil {
		return fmt.Errorf("organisation settings: %w", err)
	}
	var mailSender outbox.Sender
	var mailbox *devbox.Box
	mailDomain := domainOf(cfg.MailFrom)
	if cfg.SMTP != "" {
		sc, err := smtp.ParseURL(cfg.SMTP)
		if err != nil {
			return fmt.Errorf("--smtp: %w", err)
		}
		ss, err := smtp.New(sc, cfg.MailFrom)
		if err != nil {
			return fmt.Errorf("--mail-from: %w", err)
		}
		mailSender, mailDomain = ss, ss.Domain()
		log.Info("mail goes out through SMTP", "relay", sc.String())
	} else {
		mailbox = devbox.New()
		mailSender = mailbox
	}
	ob := outbox.New(db, keys, mailSender, mailDomain, nil, log)
	svc.SetMailer(ob, org)
	sc := sender.DefaultConfig()
	sc.SessionTTL, sc.IdleTTL = cfg.VerifyTTL, cfg.VerifyTTL
	senders := sender.New(db, keys, ob, org, sc, nil, log)
	auditLog := audit.New(db, cfg.AuditRetention, nil, log)
	svc.SetAudit(auditLog)
	senders.SetAudit(auditLog)
	// Prometheus metrics at /metrics (token or loopback only) and the mail
	// queue in /healthz?details=1.
	met := metrics.New(db, nil, log)
	svc.SetMetrics(met)
	ob.SetMetrics(met)

	pages, err := web.New(web.Deps{
		Transfers: svc, Senders: senders, OrgName: cfg.OrgName, BaseURL: cfg.BaseURL, Mailbox: mailbox != nil,
		LogoFile: cfg.OrgLogoFile, ThemeCSS: cfg.ThemeCSS, ThemeClass: cfg.ThemeClass,
		Retention: cfg.Retention, DefaultExpiry: cfg.DefaultExpiry, MaxExpiry: cfg.MaxExpiry, SessionTTL: cfg.SessionTTL,
		Log: log,
	})
	if err != nil {
		return err
	}
	deps := server.Deps{Transfers: svc, Senders: senders, Web: pages, Log: log,
		Limiter:        newLimiter(cfg, db, keys, log),
		TrustedProxies: cfg.TrustedProxies,
		SecurityTxt:    server.SecurityTxt{Contact: cfg.SecurityContact, Policy: cfg.SecurityPolicyURL, Expires: cfg.SecurityTxtExpires},
		Metrics:        met,
		MetricsToken:   cfg.MetricsToken,
	}
	if cfg.SecurityContact == "" {
		log.Warn("no --security-contact configured: /.well-known/security.txt names "+server.DefaultSecurityContact(cfg.BaseURL)+"; make sure it is read, or set --security-contact", "contact", server.DefaultSecurityContact(cfg.BaseURL))
	}
	if deps.SecurityTxt.Expires.IsZero() {
		deps.SecurityTxt.Expires = server.DefaultSecurityTxtExpires(time.Now())
		log.Warn("no --security-txt-expires configured: /.well-known/security.txt expires on "+deps.SecurityTxt.Expires.Format("2006-01-02")+
			" (the start day plus a year, and moved by every restart); set --security-txt-expires to the date by which you will check its contact details again",
			"expires", deps.SecurityTxt.Expires)
	}
	if msg, expired := deps.SecurityTxt.ExpiresProblem(time.Now()); expired {
		log.Error(msg, "expires", deps.SecurityTxt.Expires)
		fmt.Fprintln(stdout, "Warning: "+msg)
	} else if msg != "" {
		log.Warn(msg, "expires", deps.SecurityTxt.Expires)
	}
	if deps.Limiter == nil {
		log.Warn("rate limits are off (--rate-limit 0 --rate-limit-global 0): only the per-link lock-out slows down password guessing")
	}
	if mailbox != nil {
		deps.Mailbox = mailbox.Handler()
	}
	h, err := server.New(deps)
	if err != nil {
		return err
	}
	bgCtx, stopBG := context.WithCancel(context.Background())
	bgDone := make(chan struct{})
	go func() {
		defer close(bgDone)
		done := make(chan struct{})
		go func() { defer close(done); ob.Run(bgCtx) }()
		go watchPolicy(bgCtx, hup, pol, cfg.Policy, log)
		cleaned := make(chan struct{})
		go func() { defer close(cleaned); runSenderCleanup(bgCtx, senders, log) }()
		svc.Run(bgCtx)
		<-done
		<-cleaned
	}()

	url := scheme + ln.Addr().String()
	log.Info("kluis started", "version", version, "listen", url, "base_url", cfg.BaseURL, "data", cfg.DataDir)
	fmt.Fprintf(stdout, "Kluis is running at %s/ (public address %s)\n", url, cfg.BaseURL)
	if mailbox != nil {
		log.Warn("no SMTP configured: mail is NOT delivered; read it in the development mailbox", "mailbox", url+"/dev/mailbox")
		fmt.Fprintf(stdout, "Mail is not delivered: read it at %s/dev/mailbox (configure --smtp to send mail)\n", url)
	}

	to := server.DefaultTimeouts()
	to.Body, to.MinBodyRate = cfg.BodyTimeout, cfg.MinBodyRate
	err = server.Serve(ctx, ln, h, server.ServeOptions{ShutdownTimeout: cfg.ShutdownTimeout, Timeouts: to, Log: log})
	stopBG()
	<-bgDone
	log.Info("kluis stopped")
	return err
}

// newLimiter builds the rate limiter from --rate-limit and
// --rate-limit-global (0 turns one off); nil when both are off. On
// PostgreSQL the buckets are in the database, shared by every instance.
func newLimiter(cfg *config.Serve, db *store.DB, keys *secret.Keyring, log *slog.Logger) *ratelimit.Limiter {
	if cfg.RateLimit == 0 && cfg.RateLimitGlobal == 0 {
		return nil
	}
	rc := ratelimit.Config{PerMinute: cfg.RateLimit, GlobalPerMinute: cfg.RateLimitGlobal, Trusted: cfg.TrustedProxies, Log: log}
	if db != nil && db.Dialect() == store.Postgres {
		rc.Shared = db
		// Shared rows name clients by a keyed hash, not their address.
		rc.KeyHash = func(ip string) string {
			return hex.EncodeToString(keys.MAC("ratelimit.ip", []byte(ip))[:16])
		}
	}
	const off = 1 << 30
	if rc.PerMinute == 0 {
		rc.PerMinute, rc.Burst = off, off
	}
	if rc.GlobalPerMinute == 0 {
		rc.GlobalPerMinute, rc.GlobalBurst = off, off
	}
	return ratelimit.New(rc)
}

func loadKeys(cfg *config.Serve, log *slog.Logger) (*secret.Keyring, error) {
	if cfg.MasterKey != "" {
		b, err := base64.StdEncoding.DecodeString(cfg.MasterKey)
		if err != nil {
			return nil, fmt.Errorf("KLUIS_MASTER_KEY: not valid base64")
		}
		return secret.NewKeyring(b)
	}
	keys, created, err := secret.LoadOrCreateMasterKey(cfg.MasterKeyFile)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if created {
		log.Warn("generated a new master key; back it up: without it no stored transfer can be opened", "file", cfg.MasterKeyFile)
	}
	return keys, nil
}

func domainOf(from string) string {
	if i := strings.LastIndexByte(from, '@'); i >= 0 {
		return strings.TrimRight(from[i+1:], "> ")
	}
	return "localhost"
}

// runSenderCleanup deletes verifications and sender sessions past their
// end (they hold the sender's address), every minute until ctx ends.
func runSenderCleanup(ctx context.Context, senders *sender.Service, log *slog.Logger) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		if err := senders.Cleanup(ctx); err != nil && ctx.Err() == nil {
			log.Error("sender cleanup failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// openBlobs opens where the encrypted segments live: the data folder, or
// S3-compatible object storage with --storage s3://BUCKET?endpoint=...
func openBlobs(ctx context.Context, cfg *config.Serve, getenv func(string) string, log *slog.Logger) (blob.Store, error) {
	if cfg.Storage == "" {
		st, err := local.New(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
		return st, nil
	}
	sc, err := s3.ParseURL(cfg.Storage, getenv)
	if err != nil {
		return nil, fmt.Errorf("--storage: %w", err)
	}
	st, err := s3.New(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("--storage: %w", err)
	}
	log.Info("encrypted files are stored in S3-compatible object storage", "storage", sc.String())
	return st, nil
}
