// Package web serves Kluis's pages for people: the start page, the receive
// flow (a recipient opens their link, unlocks it, reads the message and
// downloads files), the send flow and My transfers, and the help (for
// recipients and for senders), accessibility and privacy pages.
//
// # Pages
//
// Pages are rendered on the server with html/template from embedded
// templates; every text comes from the catalogs of package locale
// (catalog/<lang>/web.json and base.json) through {{ t "key" }}, and <html>
// carries the language and its writing direction. Recipient pages (the code
// form, everything under /r/{access} and the help for recipients) speak
// every language Kluis has; sender pages only those with a complete
// catalog. How a page's language is chosen (the kluis-lang cookie, the
// transfer's language, Accept-Language) is in chooseLang.
//
// # Assets
//
// CSS and the one small script are embedded and served under
// /static/{checksum}/name with a long cache lifetime; the checksum in the
// URL changes whenever the file does. The NL Design System CSS in
// static/vendor comes from npm through web/scripts/vendor.mjs, which records
// versions and licences. Nothing is loaded from other sites.
//
// # Credentials
//
// The only credential is the download session in the __Host-kluis-dl
// cookie (HttpOnly, Secure, SameSite=Strict). Passwords and link secrets
// travel only in POST bodies, never in a URL.
package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/config"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/oidc"
	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// Deps are what the pages need.
type Deps struct {
	Transfers *transfer.Service
	// Senders verifies senders (the send flow and My transfers). The
	// session is the same __Host-kluis-session cookie the JSON API uses.
	Senders *sender.Service
	// OrgName is shown in the header and the texts; default "Kluis".
	OrgName string
	// LogoFile is an image file (SVG, PNG, JPEG or WebP) shown in the
	// header, or "". It is served from memory under /static/.
	LogoFile string
	// ThemeCSS is an organisation's design-token CSS file, or "" for
	// Kluis's default theme. It is linked after the default theme.
	ThemeCSS string
	// ThemeClass is the class on <html> that the theme's tokens are set
	// on; default "kluis-theme". An NL Design System theme package names
	// its own (e.g. "utrecht-theme").
	ThemeClass string
	// BaseURL is the public address, e.g. https://kluis.example.nl.
	BaseURL string
	// Mailbox shows a banner on every page that mail is not delivered but
	// kept in the development mailbox at /dev/mailbox.
	Mailbox bool
	// Retention, DefaultExpiry and MaxExpiry are shown on the privacy
	// page; zero means the engine's defaults.
	Retention, DefaultExpiry, MaxExpiry, SessionTTL time.Duration
	// AuditRetention (the audit log), SenderSessionTTL (a verified
	// sender's cookie, --verify-ttl) and CodeTTL (a verification code)
	// are shown there too; zero: the defaults of package audit's flag and
	// of package sender.
	AuditRetention, SenderSessionTTL, CodeTTL time.Duration
	// About is what the privacy and accessibility statements say about the
	// organisation: contacts, controller, data protection officer, the
	// accessibility status and dates.
	About config.About
	Log   *slog.Logger
	// ReplyLimiter limits the reply pages (GET and POST /r/{access}/reply)
	// per client IP and over all clients; nil: NewReplyLimiter() (in this
	// process's memory).
	ReplyLimiter *ratelimit.Limiter
	// SSO is the organisation's OpenID provider for staff sign-in, or nil;
	// SSORoles maps its group claims to roles.
	SSO      *oidc.Provider
	SSORoles oidc.Mapping
	// GatewayPasswords holds the passwords of transfers the SMTP gateway
	// made, for their senders' one-time links; nil without the gateway.
	GatewayPasswords GatewayPasswords
	// DB and Audit serve the admin console (/admin): its searches,
	// statistics and audit export. Without DB the console answers 404.
	DB    *store.DB
	Audit *audit.Recorder
	// MailWake asks the outbox worker to look for due mail now (after a
	// retry on the console's mail queue); nil: the worker finds it within
	// its poll interval.
	MailWake func()
	// MailDrop deletes a waiting or failed mail in tx for the console
	// (outbox.Outbox.Drop: a dropped SMS's file request learns it was not
	// sent); nil: store.Q.DropOutbox alone.
	MailDrop func(ctx context.Context, tx *store.Tx, id string, now time.Time) error
	// PolicyFile is the --policy file, shown on the console's policy
	// page; "" for the built-in demo policy.
	PolicyFile string
}

// Web holds the page handlers and what they share.
type Web struct {
	svc      *transfer.Service
	senders  *sender.Service
	log      *slog.Logger
	org      org
	mailbox  bool
	secure   bool // cookies need Secure (always true except for tests over plain http)
	policy   policy
	tmpl     map[locale.Lang]map[string]*pageTemplate // [lang][page]
	static   *assets
	replies  *ratelimit.Limiter
	sso      *oidc.Provider
	ssoRoles oidc.Mapping
	baseURL  string
	// passwords: the mail gateway's waiting passwords, or nil.
	passwords GatewayPasswords
	// db and audit: the admin console's (nil db: no console).
	db    *store.DB
	audit *audit.Recorder
	// mailWake and policyFile: the console's mail queue and policy pages.
	mailWake   func()
	mailDrop   func(ctx context.Context, tx *store.Tx, id string, now time.Time) error
	policyFile string
}

type org struct {
	Name       string
	Site       string // the base URL's host, or "" (the accessibility statement's scope)
	About      config.About
	LogoURL    string // /static/… or ""
	ThemeURL   string // /static/… or ""
	ThemeClass string
}

// policy is what the privacy page says about periods.
type policy struct {
	Retention, DefaultExpiry, MaxExpiry, SessionTTL time.Duration
	AuditRetention, SenderSessionTTL                time.Duration
	CodeMinutes                                     int
}

// contact is one way of reaching someone, as the statements list it.
type contact struct {
	Email, Phone, URL string
}

// Tel is the phone number as a tel: URI. html/template would replace a
// tel: URL by "#ZgotmplZ"; this one is safe, made only of digits and a
// leading +.
func (c contact) Tel() template.URL {
	var b strings.Builder
	for i, r := range c.Phone {
		if ('0' <= r && r <= '9') || (i == 0 && r == '+') {
			b.WriteRune(r)
		}
	}
	return template.URL("tel:" + b.String())
}

// Any reports whether any way of contact is known.
func (c contact) Any() bool { return c.Email != "" || c.Phone != "" || c.URL != "" }

// Contact is the organisation's contact; DPO the data protection officer's.
func (o org) Contact() contact {
	return contact{Email: o.About.Email, Phone: o.About.Phone, URL: o.About.URL}
}

func (o org) DPO() contact { return contact{Email: o.About.DPOEmail, Phone: o.About.DPOPhone} }

// Controller is the controller the privacy statement names.
func (o org) Controller() string {
	if o.About.Controller != "" {
		return o.About.Controller
	}
	return o.Name
}

// New checks d, reads the organisation's files and parses every template.
func New(d Deps) (*Web, error) {
	if d.Transfers == nil || d.Log == nil {
		return nil, errors.New("web: Transfers and Log are required")
	}
	if d.BaseURL != "" {
		if u, err := url.Parse(d.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("web: base URL %q is not an http(s) address", d.BaseURL)
		}
	}
	var site string
	if u, err := url.Parse(d.BaseURL); err == nil {
		site = u.Host
	}
	def := transfer.DefaultConfig()
	sdef := sender.DefaultConfig()
	if d.ReplyLimiter == nil {
		d.ReplyLimiter = NewReplyLimiter()
	}
	h := &Web{
		replies:  d.ReplyLimiter,
		sso:      d.SSO,
		ssoRoles: d.SSORoles,
		baseURL:  strings.TrimRight(d.BaseURL, "/"),
		svc:      d.Transfers,
		senders:  d.Senders,
		log:      d.Log,
		mailbox:  d.Mailbox,
		secure:   true,
		org:      org{Name: strings.TrimSpace(d.OrgName), ThemeClass: d.ThemeClass, About: d.About},
		policy: policy{
			Retention: or(d.Retention, def.Retention), DefaultExpiry: or(d.DefaultExpiry, def.DefaultExpiry),
			MaxExpiry: or(d.MaxExpiry, def.MaxExpiry), SessionTTL: or(d.SessionTTL, def.SessionTTL),
			AuditRetention:   or(d.AuditRetention, audit.DefaultRetention),
			SenderSessionTTL: or(d.SenderSessionTTL, sdef.SessionTTL),
			CodeMinutes:      int((or(d.CodeTTL, sdef.CodeTTL) + time.Minute - 1) / time.Minute),
		},
	}
	h.passwords = d.GatewayPasswords
	h.db, h.audit = d.DB, d.Audit
	h.mailWake, h.mailDrop, h.policyFile = d.MailWake, d.MailDrop, d.PolicyFile
	if h.org.Name == "" {
		h.org.Name = "Kluis"
	}
	h.org.Site = site
	if h.org.ThemeClass == "" {
		h.org.ThemeClass = "kluis-theme"
	}
	if !validClass(h.org.ThemeClass) {
		return nil, fmt.Errorf("web: theme class %q is not a CSS class name", h.org.ThemeClass)
	}
	st, err := loadAssets()
	if err != nil {
		return nil, err
	}
	if d.ThemeCSS != "" {
		b, err := os.ReadFile(d.ThemeCSS)
		if err != nil {
			return nil, fmt.Errorf("web: theme CSS: %w", err)
		}
		h.org.ThemeURL = st.add("org/theme.css", b)
	}
	if d.LogoFile != "" {
		b, err := os.ReadFile(d.LogoFile)
		if err != nil {
			return nil, fmt.Errorf("web: logo: %w", err)
		}
		ext := strings.ToLower(filepath.Ext(d.LogoFile))
		switch ext {
		case ".svg", ".png", ".jpg", ".jpeg", ".webp":
		default:
			return nil, fmt.Errorf("web: logo %s: use an SVG, PNG, JPEG or WebP file", d.LogoFile)
		}
		h.org.LogoURL = st.add("org/logo"+ext, b)
	}
	h.static = st
	if h.tmpl, err = parseTemplates(st); err != nil {
		return nil, err
	}
	return h, nil
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func validClass(s string) bool {
	for i, r := range s {
		ok := r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || (i > 0 && '0' <= r && r <= '9')
		if !ok {
			return false
		}
	}
	return s != ""
}
