// Package app is the Kluis server as one value. [New] builds every part
// from the configuration, each with its own constructor and its
// dependencies passed in (nothing is patched in afterwards); [App.Run]
// serves and runs the background work until its context ends; [App.Close]
// releases what New opened. `kluis serve` is config.ParseServe, New, Run;
// tests start the same program on 127.0.0.1:0 with a temporary data folder
// (package kluistest).
//
// # Parts, in the order New builds them
//
//	data folder, listener (TLS), development-mailbox check
//	master key → database (SQLite or PostgreSQL) → blob store (folder or S3)
//	policy (reloaded on SIGHUP) → mail relay (SMTP, or the development mailbox)
//	metrics, audit log → outbox → engine (transfer) → sender verification
//	pages (web) → rate limiter → HTTP handler (server)
//
// # Background work
//
// Run runs, in one errgroup: the HTTP server, the outbox worker, the
// engine's purge round, the malware-scan retries, the sender cleanup and
// the policy watcher. When
// the context ends the server stops accepting and drains the requests in
// flight (--shutdown-timeout); then the background loops stop, and Run
// returns once every one of them has returned. If one fails, the others
// are stopped too and Run returns the error.
package app

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/blob/local"
	"github.com/kluis-nl/kluis/internal/blob/s3"
	"github.com/kluis-nl/kluis/internal/config"
	"github.com/kluis-nl/kluis/internal/gateway"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/mail/devbox"
	"github.com/kluis-nl/kluis/internal/mail/smtp"
	"github.com/kluis-nl/kluis/internal/metrics"
	"github.com/kluis-nl/kluis/internal/oidc"
	"github.com/kluis-nl/kluis/internal/outbox"
	"github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/scan"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/server"
	"github.com/kluis-nl/kluis/internal/sms"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/syslog"
	"github.com/kluis-nl/kluis/internal/transfer"
	"github.com/kluis-nl/kluis/internal/web"
)

// Options are what New needs besides the configuration.
type Options struct {
	// Stdout receives the lines for the person who started the server:
	// where it runs and where mail goes. nil: discarded.
	Stdout io.Writer
	// Log is the server's log; nil: slog.Default().
	Log *slog.Logger
	// Getenv reads the S3 credentials (AWS_ACCESS_KEY_ID, …); nil:
	// os.Getenv.
	Getenv func(string) string
	// Version is logged at start.
	Version string
	// Reload delivers requests to reload the policy file; nil: SIGHUP to
	// this process.
	Reload <-chan os.Signal

	// The fields below are for tests; kluis serve leaves them zero.

	// Now is the clock of the engine, sender verification, outbox, audit
	// log and metrics; nil: time.Now.
	Now func() time.Time
	// Engine adjusts the engine's settings after they are taken from the
	// configuration (a cheaper password hash, smaller segments).
	Engine func(*transfer.Config)
	// Limiter replaces the rate limiter made from --rate-limit and
	// --rate-limit-global.
	Limiter *ratelimit.Limiter
	// ReplyLimiter replaces the reply pages' limit (web.NewReplyLimiter).
	ReplyLimiter *ratelimit.Limiter
	// LocalBlobs are the options of the data folder's blob store (without
	// --storage); benchmarks wrap its temporary files to time writes and
	// fsyncs.
	LocalBlobs local.Options
}

// App is a Kluis server: its parts, built by New. The fields are for
// reading (tests, admin tooling); they are never replaced.
type App struct {
	DB        *store.DB
	Keys      *secret.Keyring
	Blobs     blob.Store
	Policy    *policy.Holder
	Mailbox   *devbox.Box // nil when mail goes out over SMTP
	Metrics   *metrics.Metrics
	Audit     *audit.Recorder
	Outbox    *outbox.Outbox
	Transfers *transfer.Service
	Senders   *sender.Service
	// SSO is the organisation's OpenID provider (--oidc-issuer), or nil.
	SSO     *oidc.Provider
	Web     *web.Web
	Handler http.Handler
	// Gateway and GatewayPasswords are the SMTP gateway (--gateway-addr)
	// and its senders' waiting passwords; nil without it.
	Gateway          *gateway.Gateway
	GatewayPasswords *gateway.Passwords

	cfg        *config.Serve
	log        *slog.Logger
	stdout     io.Writer
	version    string
	ln         net.Listener
	url        string       // where it listens: scheme://host:port
	gwln       net.Listener // the gateway's, with --gateway-addr
	reload     <-chan os.Signal
	stopReload func()
}

// New builds the server described by cfg: it creates the data folder,
// listens on cfg.Addr (so port 0 is resolved and the base URL follows it),
// opens the database and the blob store, and builds every part. Nothing
// runs until Run. On an error everything opened so far is closed again.
func New(ctx context.Context, cfg *config.Serve, o Options) (_ *App, err error) {
	a := &App{cfg: cfg, log: o.Log, stdout: o.Stdout, version: o.Version, stopReload: func() {}}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.stdout == nil {
		a.stdout = io.Discard
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	if err := a.listen(); err != nil {
		return nil, err
	}
	if cfg.SMTP == "" {
		// The development mailbox shows every mailed link and code: only on
		// a plainly local setup (devbox.Allowed), and only to direct
		// loopback requests (its handler's guard). Checked before anything
		// is opened or created.
		if err := devbox.Allowed(devbox.Setup{ListenAddr: a.ln.Addr().String(), BaseURL: cfg.BaseURL, TrustedProxies: cfg.TrustedProxies}); err != nil {
			return nil, fmt.Errorf("no --smtp given: %w", err)
		}
	}
	if a.Keys, err = loadKeys(cfg, a.log); err != nil {
		return nil, err
	}
	if a.DB, err = openDB(ctx, cfg, a.log); err != nil {
		return nil, err
	}
	if err := transfer.CheckMasterKey(ctx, a.DB, a.Keys); err != nil {
		return nil, err
	}
	if a.Blobs, err = openBlobs(ctx, cfg, o.LocalBlobs, getenv, a.log); err != nil {
		return nil, err
	}
	if a.Policy, err = loadPolicy(cfg.Policy, a.log); err != nil {
		return nil, err
	}
	org := mail.Org{Name: cfg.OrgName, LogoURL: cfg.OrgLogoURL, BaseURL: cfg.BaseURL}
	if err := org.Validate(); err != nil {
		return nil, fmt.Errorf("organisation settings: %w", err)
	}
	relay, domain, err := a.mailRelay()
	if err != nil {
		return nil, err
	}

	a.Metrics = metrics.New(a.DB, o.Now, a.log)
	a.Audit = audit.New(a.DB, cfg.AuditRetention, o.Now, a.log)
	smsSender, err := a.smsSender()
	if err != nil {
		return nil, err
	}
	a.Outbox = outbox.New(outbox.Deps{DB: a.DB, Keys: a.Keys, Sender: relay, SMS: smsSender, Domain: domain, Now: o.Now, Log: a.log, Metrics: a.Metrics})
	if err := a.Outbox.ClearStaleClaims(ctx); err != nil {
		return nil, err
	}
	tc := engineConfig(cfg)
	if o.Engine != nil {
		o.Engine(&tc)
	}
	scanner, err := a.scanner(ctx)
	if err != nil {
		return nil, err
	}
	tc.SMS = transfer.SMSConfig{PerRecipientDay: cfg.SMSPerRecipientDay, PerHour: cfg.SMSPerHour}
	a.Transfers = transfer.New(transfer.Deps{
		DB: a.DB, Blobs: a.Blobs, Keys: a.Keys, Config: tc, Now: o.Now, Log: a.log,
		Mailer: a.Outbox, Org: org, Policy: a.Policy.Get, Audit: a.Audit, Metrics: a.Metrics,
		Scanner: scanner, SMS: smsSender,
		// a.Senders is made below, before anything is sent.
		StaffLang: func(ctx context.Context, email string) (string, error) { return a.Senders.KnownLang(ctx, email) },
	})
	// The outbox tells the engine what became of a file request's SMS.
	a.Outbox.OnSMS(a.Transfers.RequestSMSResult)
	a.Outbox.CheckSMS(a.Transfers.RequestSMSWanted)
	if err := a.Transfers.ClearStaleLeases(ctx); err != nil {
		return nil, err
	}
	sc := sender.DefaultConfig()
	sc.SessionTTL, sc.IdleTTL = cfg.VerifyTTL, cfg.VerifyTTL
	sc.APIKeyMaxAge = cfg.APIKeyMaxAge
	sd := sender.Deps{DB: a.DB, Keys: a.Keys, Mailer: a.Outbox, Org: org, Config: sc, Now: o.Now, Log: a.log, Audit: a.Audit,
		Unlocks: a.Transfers.Unlocks()}
	if cfg.SSO() {
		rp, mapping := cfg.OIDC()
		if a.SSO, err = oidc.New(ctx, rp); err != nil {
			return nil, fmt.Errorf("--oidc-issuer: %w", err)
		}
		sd.Config.SSOSessionMax = cfg.OIDCSessionMax
		// The policy is read at each sign-in, so a reload (SIGHUP) that
		// changes sso_domains applies at once.
		sd.SSORequired = func(addr string) bool { return a.Policy.Get().SSORequired(addr) }
		sd.Recheck = oidc.Account{Provider: a.SSO, Mapping: mapping}
		a.log.Info("staff single sign-on", "issuer", cfg.OIDCIssuer, "sso_domains", a.Policy.Get().SSODomains(), "session_max", cfg.OIDCSessionMax.String())
	}
	a.Senders = sender.New(sd)
	if err := a.newGateway(org, o.Now); err != nil {
		return nil, err
	}
	if a.Web, a.Handler, err = a.newHandler(o); err != nil {
		return nil, err
	}
	// From here on a SIGHUP is a reload request, not the end of the
	// process.
	a.reload = o.Reload
	if a.reload == nil {
		a.reload, a.stopReload = notifyHangup()
	}
	return a, nil
}

// scanner is the clamd client of --clamd (nil without), checked with a
// PING. A clamd that does not answer at start is only a warning: the
// --scan-unavailable policy applies while it is down.
func (a *App) scanner(ctx context.Context) (transfer.Scanner, error) {
	if a.cfg.Clamd == "" {
		return nil, nil
	}
	c, err := scan.Parse(a.cfg.Clamd)
	if err != nil {
		return nil, fmt.Errorf("--clamd: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if v, err := c.Version(pctx); err != nil {
		a.log.Warn("clamd does not answer; files wait for their malware scan until it does (--scan-unavailable closed) or pass unscanned (open)",
			"clamd", c.String(), "scan", a.cfg.Scan, "unavailable", a.cfg.ScanUnavailable, "err", err)
	} else {
		a.log.Info("malware scanning with clamd", "clamd", c.String(), "version", v, "scan", a.cfg.Scan,
			"unavailable", a.cfg.ScanUnavailable, "too_large", a.cfg.ScanTooLarge)
	}
	return c, nil
}

// newHandler builds the pages, the rate limiter and the HTTP handler.
func (a *App) newHandler(o Options) (*web.Web, http.Handler, error) {
	cfg := a.cfg
	_, mapping := cfg.OIDC()
	var passwords web.GatewayPasswords // an interface: no typed nil in it
	if a.GatewayPasswords != nil {
		passwords = a.GatewayPasswords
	}
	w, err := web.New(web.Deps{
		Transfers: a.Transfers, Senders: a.Senders, OrgName: cfg.OrgName, BaseURL: cfg.BaseURL, Mailbox: a.Mailbox != nil,
		LogoFile: cfg.OrgLogoFile, ThemeCSS: cfg.ThemeCSS, ThemeClass: cfg.ThemeClass,
		Retention: cfg.Retention, DefaultExpiry: cfg.DefaultExpiry, MaxExpiry: cfg.MaxExpiry, SessionTTL: cfg.SessionTTL,
		AuditRetention: cfg.AuditRetention, SenderSessionTTL: cfg.VerifyTTL, CodeTTL: sender.DefaultConfig().CodeTTL,
		About: cfg.About, Log: a.log, ReplyLimiter: o.ReplyLimiter,
		SSO: a.SSO, SSORoles: mapping, GatewayPasswords: passwords,
		DB: a.DB, Audit: a.Audit, MailWake: a.Outbox.Wake, MailDrop: a.Outbox.Drop, PolicyFile: cfg.Policy,
	})
	// The statements show what is configured and say plainly what is not;
	// the administrator hears it here.
	for _, m := range cfg.About.Missing(time.Now()) {
		a.log.Warn(m)
	}
	if err != nil {
		return nil, nil, err
	}
	limiter := o.Limiter
	if limiter == nil {
		limiter = newLimiter(cfg, a.DB, a.Keys, a.log)
	}
	if limiter == nil {
		a.log.Warn("rate limits are off (--rate-limit 0 --rate-limit-global 0): only the per-link lock-out slows down password guessing")
	}
	deps := server.Deps{Transfers: a.Transfers, Senders: a.Senders, Web: w, Log: a.log,
		Limiter:        limiter,
		TrustedProxies: cfg.TrustedProxies,
		SecurityTxt:    a.securityTxt(),
		Metrics:        a.Metrics,
		MetricsToken:   cfg.MetricsToken,
		StaticLog:      server.StaticLog(cfg.LogStatic),
		SSO:            a.SSO,
		SSORoles:       mapping,
	}
	if a.Mailbox != nil {
		deps.Mailbox = a.Mailbox.Handler()
	}
	h, err := server.New(deps)
	if err != nil {
		return nil, nil, err
	}
	return w, h, nil
}

// URL is where the server listens, such as http://127.0.0.1:8080 (the
// public address, cfg.BaseURL, may differ).
func (a *App) URL() string { return a.url }

// Run serves until ctx ends and runs the background work (see the package
// documentation); it returns when everything it started has stopped. Call
// it once.
func (a *App) Run(ctx context.Context) error {
	a.log.Info("kluis started", "version", a.version, "listen", a.url, "base_url", a.cfg.BaseURL, "data", a.cfg.DataDir)
	fmt.Fprintf(a.stdout, "Kluis is running at %s/ (public address %s)\n", a.url, a.cfg.BaseURL)
	if a.Mailbox != nil {
		a.log.Warn("no SMTP configured: mail is NOT delivered; read it in the development mailbox", "mailbox", a.url+"/dev/mailbox")
		fmt.Fprintf(a.stdout, "Mail is not delivered: read it at %s/dev/mailbox (configure --smtp to send mail)\n", a.url)
	}

	// The background work stops after the server: a request still in
	// flight may queue mail or purge work. bg ends when the server has
	// returned, or when a loop fails (errgroup); serveCtx when ctx ends or
	// when a loop fails.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	g, bg := errgroup.WithContext(bg)
	serveCtx, stopServe := context.WithCancel(ctx)
	defer stopServe()
	defer context.AfterFunc(bg, stopServe)()

	to := server.DefaultTimeouts()
	to.Body, to.MinBodyRate = a.cfg.BodyTimeout, a.cfg.MinBodyRate
	g.Go(func() error {
		defer stopBG()
		return server.Serve(serveCtx, a.ln, a.Handler, server.ServeOptions{ShutdownTimeout: a.cfg.ShutdownTimeout, Timeouts: to, Log: a.log})
	})
	g.Go(func() error { a.Outbox.Run(bg); return nil })
	g.Go(func() error { a.Transfers.Run(bg); return nil })
	g.Go(func() error { a.Transfers.RunScans(bg); return nil })
	g.Go(func() error { runSenderCleanup(bg, a.Senders, a.log); return nil })
	g.Go(func() error { watchPolicy(bg, a.reload, a.Policy, a.cfg.Policy, a.log); return nil })
	if a.cfg.SyslogSends("audit") {
		w, err := syslog.New(a.cfg.SyslogConfig())
		if err != nil {
			return fmt.Errorf("--syslog-addr: %w", err)
		}
		defer w.Close()
		g.Go(func() error { return syslog.ForwardAudit(bg, a.DB, w, auditForwardEvery, a.log) })
	}
	if a.Gateway != nil {
		// Stops with the HTTP server: a mail in flight may still commit.
		g.Go(func() error { return a.Gateway.Serve(serveCtx, a.gwln) })
		g.Go(func() error { runGatewayCleanup(bg, a.Gateway, a.GatewayPasswords, a.log); return nil })
	}
	err := g.Wait()
	a.log.Info("kluis stopped")
	return err
}

// auditForwardEvery is how often committed audit entries are sent to
// syslog (--syslog-send audit).
const auditForwardEvery = 2 * time.Second

// Close releases what New opened: the listener (if Run did not close it),
// the SIGHUP subscription and the database. Call it after Run has
// returned.
func (a *App) Close() error {
	a.stopReload()
	if a.ln != nil {
		a.ln.Close()
	}
	if a.gwln != nil {
		a.gwln.Close()
	}
	if a.DB != nil {
		return a.DB.Close()
	}
	return nil
}

// listen opens the listener (TLS with --tls-cert) and, when the base URL
// was derived from --addr, puts the real port in it (port 0).
func (a *App) listen() error {
	cfg := a.cfg
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	a.ln = ln
	scheme := "http://"
	if cfg.TLSCert != "" {
		scheme = "https://"
	}
	if cfg.BaseURLDefaulted {
		// The host stays the one derived from --addr (localhost for a
		// wildcard address).
		if u, err := url.Parse(cfg.BaseURL); err == nil {
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			cfg.BaseURL = scheme + net.JoinHostPort(u.Hostname(), port)
		}
	}
	a.url = scheme + ln.Addr().String()
	if cfg.TLSCert != "" {
		// TLS 1.2+ with the NCSC-NL settings; HSTS is sent on every answer.
		if a.ln, err = server.TLSListener(ln, cfg.TLSCert, cfg.TLSKey, a.log); err != nil {
			ln.Close()
			a.ln = nil
			return err
		}
	}
	return nil
}

func loadKeys(cfg *config.Serve, log *slog.Logger) (*secret.Keyring, error) {
	if cfg.MasterKey != "" {
		b, err := base64.StdEncoding.DecodeString(cfg.MasterKey)
		if err != nil {
			return nil, errors.New("KLUIS_MASTER_KEY: not valid base64")
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

// openDB opens the metadata database of --db (SQLite in the data folder by
// default) and says how a PostgreSQL connection is secured.
func openDB(ctx context.Context, cfg *config.Serve, log *slog.Logger) (*store.DB, error) {
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
		return nil, err
	}
	if db.Dialect() == store.Postgres {
		// The connection is up, so the URL resolved.
		if _, pt, err := store.ResolvePostgres(cfg.DB); err == nil {
			if w := pt.Warning(); w != "" {
				log.Warn(w, "sslmode", pt.Mode)
			} else {
				log.Info("connected to PostgreSQL", "sslmode", pt.Mode, "local", pt.Local)
			}
		}
	}
	return db, nil
}

// openBlobs opens where the encrypted segments live: the data folder, or
// S3-compatible object storage with --storage s3://BUCKET?endpoint=...
func openBlobs(ctx context.Context, cfg *config.Serve, lo local.Options, getenv func(string) string, log *slog.Logger) (blob.Store, error) {
	if cfg.Storage == "" {
		st, err := local.NewWithOptions(cfg.DataDir, lo)
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

// mailRelay is what delivers the outbox's mail, and the domain of its
// Message-IDs: the SMTP relay of --smtp, else the development mailbox
// (a.Mailbox).
func (a *App) mailRelay() (outbox.Sender, string, error) {
	cfg := a.cfg
	if cfg.SMTP == "" {
		a.Mailbox = devbox.New()
		return a.Mailbox, domainOf(cfg.MailFrom), nil
	}
	sc, err := smtp.ParseURL(cfg.SMTP)
	if err != nil {
		return nil, "", fmt.Errorf("--smtp: %w", err)
	}
	ss, err := smtp.New(sc, cfg.MailFrom)
	if err != nil {
		return nil, "", fmt.Errorf("--mail-from: %w", err)
	}
	a.log.Info("mail goes out through SMTP", "relay", sc.String())
	return ss, ss.Domain(), nil
}

// smsSender is the SMS gateway of --sms-url, else the development
// mailbox when there is one, else nil (no recipient can then be verified
// by SMS, and Validate refuses that method).
func (a *App) smsSender() (sms.Sender, error) {
	cfg := a.cfg
	if cfg.SMSURL == "" {
		if a.Mailbox != nil {
			return a.Mailbox.SMS(), nil
		}
		return nil, nil
	}
	gc := cfg.SMSGateway()
	if cfg.SMSHeadersFile != "" {
		h, err := sms.ReadHeaders(cfg.SMSHeadersFile)
		if err != nil {
			return nil, fmt.Errorf("--sms-headers-file: %w", err)
		}
		gc.Headers = h
	}
	g, err := sms.NewHTTP(gc)
	if err != nil {
		return nil, fmt.Errorf("--sms-url: %w", err)
	}
	a.log.Info("SMS codes go out through the gateway", "host", hostOf(cfg.SMSURL))
	return g, nil
}

// hostOf is the host of a URL, for the log (a gateway URL may carry a key
// in its query).
func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return ""
}

func domainOf(from string) string {
	if i := strings.LastIndexByte(from, '@'); i >= 0 {
		return strings.TrimRight(from[i+1:], "> ")
	}
	return "localhost"
}

// engineConfig is the engine's part of the configuration.
func engineConfig(cfg *config.Serve) transfer.Config {
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
	tc.Scan = transfer.ScanConfig{
		Scope:        transfer.ScanScope(cfg.Scan),
		FailOpen:     cfg.ScanUnavailable == "open",
		PassTooLarge: cfg.ScanTooLarge == "pass",
		Wait:         cfg.ScanWait,
	}
	return tc
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

// securityTxt is /.well-known/security.txt from the configuration, with
// the defaults for what is not set; what is missing or ending is logged
// (and an expired date also told on Stdout).
func (a *App) securityTxt() server.SecurityTxt {
	cfg, log := a.cfg, a.log
	st := server.SecurityTxt{Contact: cfg.SecurityContact, Policy: cfg.SecurityPolicyURL, Expires: cfg.SecurityTxtExpires}
	if cfg.SecurityContact == "" {
		log.Warn("no --security-contact configured: /.well-known/security.txt names "+server.DefaultSecurityContact(cfg.BaseURL)+"; make sure it is read, or set --security-contact", "contact", server.DefaultSecurityContact(cfg.BaseURL))
	}
	if st.Expires.IsZero() {
		st.Expires = server.DefaultSecurityTxtExpires(time.Now())
		log.Warn("no --security-txt-expires configured: /.well-known/security.txt expires on "+st.Expires.Format("2006-01-02")+
			" (the start day plus a year, and moved by every restart); set --security-txt-expires to the date by which you will check its contact details again",
			"expires", st.Expires)
	}
	if msg, expired := st.ExpiresProblem(time.Now()); expired {
		log.Error(msg, "expires", st.Expires)
		fmt.Fprintln(a.stdout, "Warning: "+msg)
	} else if msg != "" {
		log.Warn(msg, "expires", st.Expires)
	}
	return st
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

// newGateway builds the SMTP gateway of --gateway-addr and listens (port 0
// is resolved here, as for the HTTP listener); nothing without it.
func (a *App) newGateway(org mail.Org, now func() time.Time) error {
	cfg := a.cfg
	if cfg.GatewayAddr == "" {
		return nil
	}
	tlsCfg, err := server.ReloadingTLSConfig(cfg.GatewayTLSCert, cfg.GatewayTLSKey, a.log)
	if err != nil {
		return fmt.Errorf("--gateway-tls-cert: %w", err)
	}
	var clientCAs *x509.CertPool // nil: the system's roots
	if cfg.GatewayClientCA != "" {
		b, err := os.ReadFile(cfg.GatewayClientCA)
		if err != nil {
			return fmt.Errorf("--gateway-client-ca: %w", err)
		}
		clientCAs = x509.NewCertPool()
		clientCAs.AppendCertsFromPEM(b)
	}
	a.GatewayPasswords = gateway.NewPasswords(gateway.PasswordsDeps{DB: a.DB, Keys: a.Keys, Mailer: a.Outbox, Org: org, Now: now, Log: a.log})
	a.Gateway, err = gateway.New(gateway.Deps{Transfers: a.Transfers, Senders: a.Senders, Confirmer: a.GatewayPasswords, DB: a.DB, Now: now, Log: a.log,
		Config: gateway.Config{Domain: cfg.GatewayDomain, TrustedRelays: cfg.GatewayTrustedRelays, Markers: cfg.GatewayMarkers, TLS: tlsCfg,
			ClaimLease: cfg.GatewayClaimLease, ClientNames: cfg.GatewayClientNames, ClientCAs: clientCAs}})
	if err != nil {
		return err
	}
	if a.gwln, err = net.Listen("tcp", cfg.GatewayAddr); err != nil {
		return fmt.Errorf("listen on --gateway-addr %s: %w", cfg.GatewayAddr, err)
	}
	return nil
}

// GatewayAddr is where the SMTP gateway listens ("" without it).
func (a *App) GatewayAddr() string {
	if a.gwln == nil {
		return ""
	}
	return a.gwln.Addr().String()
}

// runGatewayCleanup erases the gateway passwords whose link expired and
// forgets the mails taken longer ago than the dedupe window.
func runGatewayCleanup(ctx context.Context, gw *gateway.Gateway, p *gateway.Passwords, log *slog.Logger) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		if err := p.Cleanup(ctx); err != nil && ctx.Err() == nil {
			log.Error("gateway password cleanup failed; will retry", "err", err)
		}
		if err := gw.Cleanup(ctx); err != nil && ctx.Err() == nil {
			log.Error("gateway dedupe cleanup failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
