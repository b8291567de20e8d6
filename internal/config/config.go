// Package config reads Kluis's server configuration from flags and KLUIS_*
// environment variables (flags win), with *_FILE variants for secrets, and
// validates it once. The result is passed explicitly; there are no globals.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/idna"

	"github.com/kluis-nl/kluis/internal/clientip"
	"github.com/kluis-nl/kluis/internal/oidc"
	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/role"
	"github.com/kluis-nl/kluis/internal/scan"
	"github.com/kluis-nl/kluis/internal/sms"
	"github.com/kluis-nl/kluis/internal/syslog"
	"github.com/kluis-nl/kluis/internal/unit"
)

// Serve is the configuration of `kluis serve`.
type Serve struct {
	Addr              string
	DataDir           string
	BaseURL           string
	MasterKeyFile     string
	MasterKey         string // base64, from KLUIS_MASTER_KEY (environment only: a flag would show in ps); empty: use MasterKeyFile
	BaseURLDefaulted  bool   // BaseURL was derived from Addr, so it follows the real port
	MaxTransferSize   int64
	DefaultExpiry     time.Duration
	MaxExpiry         time.Duration
	MaxRecipients     int
	Retention         time.Duration
	AuditRetention    time.Duration
	SessionTTL        time.Duration
	MaxFailures       int
	Lockouts          []time.Duration // successive lock lengths; the last repeats
	LockoutHoldAfter  int             // wrong attempts in all before the sender must unblock; 0: never
	TempMaxAge        time.Duration
	UnlockConcurrency int
	ShutdownTimeout   time.Duration
	LogLevel          string
	LogStatic         int    // successful static-file requests in the access log: 0 all, -1 none, N one in N (server.StaticLog)
	SMTP              string // smtp:// or smtps:// URL; empty: development mailbox
	MailFrom          string
	OrgName           string
	OrgLogoURL        string
	// The organisation as the privacy and accessibility statements name it
	// (issue 13 item 7). Empty values are "not configured": the pages say
	// so where it matters and the app warns at start (About).
	About       About
	OrgLogoFile string
	Storage     string // "" (the data folder) or s3://BUCKET?endpoint=...
	DB          string // "" (SQLite at DATA/kluis.db), sqlite:PATH or postgres://...; may hold a password
	ThemeCSS    string
	ThemeClass  string
	VerifyTTL   time.Duration
	// APIKeyMaxAge is the longest an API key may be valid.
	APIKeyMaxAge time.Duration
	Policy       string // policy file (JSON); empty: the built-in demo policy (every address allowed)

	// Guessing limits and the client IP.
	TrustedProxies  []netip.Prefix // reverse proxies whose X-Forwarded-For is believed
	RateLimit       int            // requests a minute per client IP on the guessable endpoints; 0: off
	RateLimitGlobal int            // the same over all clients together; 0: off

	// TLS in kluis serve itself (both or neither).
	TLSCert string
	TLSKey  string

	// security.txt (RFC 9116).
	SecurityContact    string // mailto:, https: or tel: URI; empty: mailto:security@HOST (warned at start)
	SecurityPolicyURL  string
	SecurityTxtExpires time.Time // Expires of security.txt; zero: the start day plus a year (warned at start)

	// Slow clients: the longest wait for the next bytes of a request body,
	// and the bytes per second a body must average over such a window
	// (0: only the wait applies).
	BodyTimeout time.Duration
	MinBodyRate int64

	// MetricsToken, if set, is the bearer token /metrics and
	// /healthz?details=1 require; empty: they answer loopback clients only.
	MetricsToken string

	// Malware scanning (issue 16): clamd's address (unix:/path or
	// tcp://host:port), which transfers are scanned ("off", "inbound",
	// "all"; "all" by default when Clamd is set), what happens when clamd
	// cannot be reached ("closed": the transfer waits; "open": files pass
	// with a warning) and to files larger than clamd's StreamMaxLength
	// ("refuse" or "pass").
	Clamd           string
	Scan            string
	ScanUnavailable string
	ScanTooLarge    string
	// ScanWait is how long a transfer finished while clamd could not be
	// reached waits for its scan (fail-closed) before it fails and the
	// sender is told.
	ScanWait time.Duration

	// The SMS gateway of the recipients' second factor (issue 15): one
	// HTTP request per message. Without SMSURL the codes go to the
	// development mailbox, where that is allowed (a plainly local
	// server), and nowhere otherwise.
	SMSURL             string
	SMSMethod          string
	SMSHeadersFile     string
	SMSBody            string
	SMSEncoding        string
	SMSTimeout         time.Duration
	SMSPerRecipientDay int
	SMSPerHour         int

	// Syslog (RFC 5424) for the organisation's SIEM: the receiver
	// (udp://, tcp:// or tls://HOST:PORT; empty: none), a CA file for tls,
	// the application log's facility, APP-NAME, and what is sent ("log",
	// "audit" or both, comma-separated).
	SyslogAddr     string
	SyslogCAFile   string
	SyslogFacility string
	SyslogAppName  string
	SyslogSend     string
	// Staff single sign-on with OpenID Connect (issue 14). Without
	// OIDCIssuer there is none and every sender verifies by mailed code.
	OIDCIssuer           string
	OIDCClientID         string
	OIDCClientSecretFile string
	// OIDCClientSecret is read from OIDCClientSecretFile, or from
	// KLUIS_OIDC_CLIENT_SECRET (environment only: a flag would show in ps).
	OIDCClientSecret  string
	OIDCScopes        []string
	OIDCClaimEmail    string
	OIDCClaimName     string
	OIDCClaimGroups   string
	OIDCSessionMax    time.Duration
	OIDCRoleGroups    map[role.Role][]string // the groups (names or ids) whose members get each role
	OIDCMFARoles      []role.Role            // roles granted only with a second factor
	OIDCACR, OIDCAMR  []string               // what proves a second factor
	oidcMFARolesGiven string
	// The SMTP gateway (issue 18, internal/gateway): off without
	// GatewayAddr. Its STARTTLS certificate is GatewayTLSCert/Key, else
	// TLSCert/Key. GatewayDomain is the name it greets with (default: the
	// base URL's host); GatewayMarkers start the subject of a mail to be
	// taken (default [vertrouwelijk] and [secure]).
	GatewayAddr          string
	GatewayTrustedRelays []netip.Prefix
	GatewayMarkers       []string
	GatewayDomain        string
	GatewayTLSCert       string
	GatewayTLSKey        string
	// GatewayClaimLease: how long a mail being taken holds off another
	// delivery of the same mail after its gateway stopped (dedupe).
	GatewayClaimLease time.Duration
	// GatewayClientNames pin the TLS client certificates of connectors
	// (Exchange Online) that may hand over mail like a trusted relay; the
	// certificate must chain to GatewayClientCA (default: system roots).
	GatewayClientNames []string
	GatewayClientCA    string
}

// option describes one setting: its flag, its environment variable, and
// whether it is a secret (then NAME_FILE is read too).
type option struct {
	name   string
	usage  string
	secret bool
	set    func(string) error
	def    string
}

// ParseServe parses args (without the subcommand) and the environment.
// Output for -help goes to out. Returns flag.ErrHelp after printing help.
func ParseServe(args []string, getenv func(string) string, out io.Writer) (*Serve, error) {
	c := &Serve{OIDCRoleGroups: map[role.Role][]string{}}
	// --trusted-proxy may be repeated; given as flags it replaces
	// KLUIS_TRUSTED_PROXY (flags win), so the first flag clears the list.
	var parsingFlags, proxiesFromFlags bool
	addProxies := func(v string) error {
		if parsingFlags && !proxiesFromFlags {
			c.TrustedProxies, proxiesFromFlags = nil, true
		}
		p, err := clientip.ParsePrefixes(v)
		if err != nil {
			return fmt.Errorf("%q: give addresses or CIDR ranges such as 10.0.0.0/8 or 192.0.2.7", v)
		}
		c.TrustedProxies = append(c.TrustedProxies, p...)
		return nil
	}
	var relaysFromFlags bool
	addRelays := func(v string) error {
		if parsingFlags && !relaysFromFlags {
			c.GatewayTrustedRelays, relaysFromFlags = nil, true
		}
		p, err := clientip.ParsePrefixes(v)
		if err != nil {
			return fmt.Errorf("%q: give addresses or CIDR ranges such as 192.0.2.0/28", v)
		}
		c.GatewayTrustedRelays = append(c.GatewayTrustedRelays, p...)
		return nil
	}
	setMarkers := func(v string) error {
		c.GatewayMarkers = nil
		for _, m := range strings.Split(v, ",") {
			if m = strings.TrimSpace(m); m != "" {
				c.GatewayMarkers = append(c.GatewayMarkers, m)
			}
		}
		if len(c.GatewayMarkers) == 0 {
			return errors.New("give at least one subject marker, such as [secure]")
		}
		return nil
	}
	opts := []option{
		{name: "addr", def: DefaultAddr, usage: "address to listen on, HOST:PORT", set: str(&c.Addr)},
		{name: "data", def: DefaultDataDir, usage: "data folder: database, encrypted files and (by default) the master key", set: str(&c.DataDir)},
		{name: "base-url", usage: "public address used in links and mails (default: http://ADDR)", set: str(&c.BaseURL)},
		{name: "master-key-file", usage: "file holding the master key, base64 (default: DATA/master.key, created on first start with mode 0600; KLUIS_MASTER_KEY may hold the key itself instead)", set: str(&c.MasterKeyFile)},
		{name: "max-transfer-size", def: "2GB", usage: "largest transfer, all files together (e.g. 2GB, 500MB, 1GiB)", set: size(&c.MaxTransferSize)},
		{name: "default-expiry", def: "7d", usage: "how long a transfer stays available unless the sender chooses (e.g. 7d, 36h)", set: dur(&c.DefaultExpiry)},
		{name: "max-expiry", def: "30d", usage: "longest expiry a sender may choose", set: dur(&c.MaxExpiry)},
		{name: "max-recipients", def: "50", usage: "most recipients (To, Cc and Bcc together) of one transfer", set: integer(&c.MaxRecipients)},
		{name: "retention", def: "30d", usage: "how long the minimal record (no content) of an expired transfer is kept", set: dur(&c.Retention)},
		{name: "audit-retention", def: "365d", usage: "how long audit log entries (actor, action, object, result, IP address, time) are kept", set: dur(&c.AuditRetention)},
		{name: "session-ttl", def: "1h", usage: "how long a recipient's download session lasts after entering the password", set: dur(&c.SessionTTL)},
		{name: "max-failures", def: "10", usage: "wrong passwords in a row before a recipient's access is locked", set: integer(&c.MaxFailures)},
		{name: "lockout", def: "15m,1h,1d", usage: "how long the successive locks of a recipient's access last, separated by commas; the last one repeats (a single value locks for that long every time)", set: durList(&c.Lockouts)},
		{name: "lockout-hold-after", def: "50", usage: "wrong passwords in all (since the last right one) after which the access stays locked until the sender unblocks it; 0: never", set: integer(&c.LockoutHoldAfter)},
		{name: "temp-max-age", def: "24h", usage: "temporary files of interrupted writes (left by a crash) older than this are removed", set: dur(&c.TempMaxAge)},
		{name: "unlock-concurrency", def: "4", usage: "most password checks at once (each uses 32 MiB of memory)", set: integer(&c.UnlockConcurrency)},
		{name: "shutdown-timeout", def: "10s", usage: "how long to wait for requests to end on SIGTERM", set: dur(&c.ShutdownTimeout)},
		{name: "log-level", def: "info", usage: "debug, info, warn or error", set: str(&c.LogLevel)},
		{name: "log-static", def: "all", usage: "which successful requests for static files (stylesheets, scripts, images) get an access-log line: all, none, or 1/N for one in N (e.g. 1/100); failed ones always do", set: staticLog(&c.LogStatic)},
		{name: "smtp", secret: true, usage: "mail relay: smtp://USER:PASS@HOST:PORT (STARTTLS required; add ?tls=none only for a local test relay) or smtps://... (implicit TLS). Empty: mail is kept in the development mailbox at /dev/mailbox, allowed only with a loopback address, a loopback http base URL and no trusted proxy", set: str(&c.SMTP)},
		{name: "mail-from", usage: "sender of Kluis's mails, \"Name <address>\" (default: Kluis <kluis@HOST of the base URL>)", set: str(&c.MailFrom)},
		{name: "org-name", def: "Kluis", usage: "organisation name shown in mails and pages", set: str(&c.OrgName)},
		{name: "org-email", usage: "the organisation's contact e-mail address for the people who use Kluis, shown in the privacy and accessibility statements (e.g. info@gemeente.example.nl)", set: str(&c.About.Email)},
		{name: "org-phone", usage: "the organisation's contact phone number, shown in the privacy and accessibility statements (e.g. 14 058 or +31 58 123 4567)", set: str(&c.About.Phone)},
		{name: "org-url", usage: "https URL of the organisation's contact page, shown in the privacy and accessibility statements", set: str(&c.About.URL)},
		{name: "controller", usage: "the controller (verwerkingsverantwoordelijke, AVG article 4(7)) named in the privacy statement, with the --org-email/--org-phone/--org-url contact (default: --org-name)", set: str(&c.About.Controller)},
		{name: "dpo-email", usage: "e-mail address of the data protection officer (functionaris gegevensbescherming), shown in the privacy statement", set: str(&c.About.DPOEmail)},
		{name: "dpo-phone", usage: "phone number of the data protection officer, shown in the privacy statement", set: str(&c.About.DPOPhone)},
		{name: "accessibility-status", usage: "compliance status of the accessibility statement as in the Dutch government's model (digitoegankelijk.nl): A (meets all requirements), B (meets part), C (first measures taken) or D (first measures not yet taken); A and B need --accessibility-audit-date. Empty: the statement says no status has been determined", set: str(&c.About.A11yStatus)},
		{name: "accessibility-statement-date", usage: "the day the accessibility statement was drawn up or last reviewed, as 2026-12-01", set: date(&c.About.A11yStatementDate)},
		{name: "accessibility-audit-date", usage: "the day of the last accessibility audit (WCAG-EM, all 50 requirements), as 2026-11-15; empty: no audit yet", set: date(&c.About.A11yAuditDate)},
		{name: "accessibility-report-url", usage: "https URL of that audit's report", set: str(&c.About.A11yReportURL)},
		{name: "db", secret: true, usage: "metadata database: empty for SQLite at DATA/kluis.db, sqlite:PATH for SQLite elsewhere, or postgres://USER:PASS@HOST:PORT/DBNAME?sslmode=verify-full for PostgreSQL (several instances may share it)", set: str(&c.DB)},
		{name: "storage", usage: "where encrypted files are stored: empty for DATA/blobs, or s3://BUCKET[/PREFIX]?endpoint=https://HOST:PORT&region=REGION for S3-compatible storage (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or their _FILE variants)", set: str(&c.Storage)},
		{name: "org-logo-file", usage: "image file (SVG, PNG, JPEG or WebP) with the organisation's logo for the web pages", set: str(&c.OrgLogoFile)},
		{name: "theme-css", usage: "the organisation's NL Design System design-token CSS file, loaded after Kluis's default theme", set: str(&c.ThemeCSS)},
		{name: "theme-class", usage: "the class on <html> that the theme's tokens are set on (e.g. utrecht-theme); default kluis-theme", set: str(&c.ThemeClass)},
		{name: "org-logo-url", usage: "absolute https URL of the organisation's logo for mails", set: str(&c.OrgLogoURL)},
		{name: "verify-ttl", def: "30d", usage: "how long a verified e-mail address stays verified in a browser or CLI", set: dur(&c.VerifyTTL)},
		{name: "apikey-max-age", def: "365d", usage: "longest an API key made in the admin console may be valid (every key has an expiry)", set: dur(&c.APIKeyMaxAge)},
		{name: "policy", usage: "organisation policy file (JSON; see docs/policy.example.json): organisation domains, allow and deny rules, limits. Checked at start, reloaded on SIGHUP; check it first with kluis admin policy check FILE. Without it every address is allowed (a demo installation)", set: str(&c.Policy)},
		{name: "trusted-proxy", usage: "reverse proxy (address or CIDR range) whose X-Forwarded-For header gives the client's IP address; repeat the flag or separate with commas. Without it the connecting address is the client", set: addProxies},
		{name: "rate-limit", def: "60", usage: "requests a minute one IP address may make to the endpoints open to anyone (verification, links, password checks); 0 turns the limit off", set: integer(&c.RateLimit)},
		{name: "rate-limit-global", def: "1200", usage: "requests a minute to those endpoints from all addresses together, at least 20 times --rate-limit so a few clients cannot use it up; 0 turns the limit off", set: integer(&c.RateLimitGlobal)},
		{name: "tls-cert", usage: "PEM certificate chain: serve HTTPS directly (TLS 1.2 and 1.3, NCSC-NL settings) instead of behind a reverse proxy; needs --tls-key. Reloaded when the file changes", set: str(&c.TLSCert)},
		{name: "tls-key", usage: "PEM private key for --tls-cert", set: str(&c.TLSKey)},
		{name: "security-contact", usage: "Contact of /.well-known/security.txt: mailto:ADDRESS or an https URL (default: mailto:security@HOST of the base URL)", set: str(&c.SecurityContact)},
		{name: "security-txt-expires", usage: "Expires of /.well-known/security.txt: the date by which you will check its contact details again, at most a year ahead (RFC 9116), as 2027-06-30 (midnight UTC) or 2027-06-30T12:00:00Z. Kluis warns at start when it is past or less than 30 days away (default: the start day plus a year, logged)", set: date(&c.SecurityTxtExpires)},
		{name: "security-policy-url", usage: "https URL of the vulnerability disclosure policy, for /.well-known/security.txt", set: str(&c.SecurityPolicyURL)},
		{name: "body-timeout", def: "30s", usage: "longest wait for the next bytes of a request body, and the window --min-body-rate is averaged over; a slower client is cut off (a tus upload keeps what arrived and resumes). There is no limit on a whole request", set: dur(&c.BodyTimeout)},
		{name: "min-body-rate", def: "1KB", usage: "bytes per second a request body must arrive at, averaged over each --body-timeout of waiting (e.g. 1KB, 500B); 0 leaves only --body-timeout", set: rate(&c.MinBodyRate)},
		{name: "clamd", usage: "ClamAV's daemon for the malware scan of files before anyone is notified: unix:/run/clamav/clamd.ctl or tcp://HOST:3310. Without it nothing is scanned", set: str(&c.Clamd)},
		{name: "scan", usage: "which transfers' files are scanned: off, inbound (what people send in: replies and file-request uploads) or all (default all with --clamd, off without)", set: str(&c.Scan)},
		{name: "scan-unavailable", def: "closed", usage: "when clamd cannot be reached: closed (the transfer waits as \"being checked\", nothing is sent, and the scan is retried until it runs or --scan-wait ends) or open (files pass unscanned, with a warning to the sender, in the log and in the audit log)", set: str(&c.ScanUnavailable)},
		{name: "scan-wait", def: "24h", usage: "how long a transfer waits for its malware scan while clamd cannot be reached (--scan-unavailable closed); then it fails, its content is erased and the sender is told by mail", set: dur(&c.ScanWait)},
		{name: "scan-too-large", def: "refuse", usage: "a file larger than clamd's StreamMaxLength: refuse (removed, the sender is told) or pass (unscanned, with a note in the log and the audit log)", set: str(&c.ScanTooLarge)},
		{name: "sms-url", usage: "the SMS gateway's URL (http or https) for the codes of recipients verified by SMS; one request per message. Without it the codes go to the development mailbox (local servers only). Examples in docs/sms.md", set: str(&c.SMSURL)},
		{name: "sms-method", def: "POST", usage: "HTTP method of the SMS gateway request: POST, PUT or GET (GET puts the form-encoded body in the query)", set: str(&c.SMSMethod)},
		{name: "sms-headers-file", usage: "file with the SMS gateway's request headers, one \"Name: value\" a line (its credentials: keep it mode 0600)", set: str(&c.SMSHeadersFile)},
		{name: "sms-body", usage: "body template of the SMS gateway request with {{.To}} (the number, +31612345678) and {{.Text}}; with --sms-encoding json the values come as JSON strings with their quotes, as {\"to\": [{{.To}}], \"body\": {{.Text}}}; with form they are URL-encoded, as To={{.To}}&Body={{.Text}}", set: str(&c.SMSBody)},
		{name: "sms-encoding", def: "json", usage: "how --sms-body's values are encoded, and the request's Content-Type: json or form", set: str(&c.SMSEncoding)},
		{name: "sms-timeout", def: "10s", usage: "longest wait for the SMS gateway's answer", set: dur(&c.SMSTimeout)},
		{name: "sms-per-recipient-day", def: "5", usage: "SMS codes one recipient may be sent in 24 hours", set: integer(&c.SMSPerRecipientDay)},
		{name: "sms-per-hour", def: "100", usage: "SMS codes the whole service may send in an hour, so holding links cannot run up costs", set: integer(&c.SMSPerHour)},
		{name: "syslog-addr", usage: "a syslog receiver (the organisation's SIEM) that gets the application log and the audit log in RFC 5424 format: tls://HOST:6514 (RFC 5425), tcp://HOST:601 (octet counting) or udp://HOST:514 (lines longer than 2048 bytes are cut). The console log stays as it is", set: str(&c.SyslogAddr)},
		{name: "syslog-ca-file", usage: "PEM file with the certificates the tls:// syslog receiver's certificate must chain to (default: the system's)", set: str(&c.SyslogCAFile)},
		{name: "syslog-facility", def: "daemon", usage: "syslog facility of the application log (daemon, local0 … local7, …); audit entries always use facility 13, log audit", set: str(&c.SyslogFacility)},
		{name: "syslog-app-name", def: "kluis", usage: "APP-NAME in the syslog messages (e.g. to tell several Kluis services apart)", set: str(&c.SyslogAppName)},
		{name: "syslog-send", def: "log,audit", usage: "what goes to the syslog receiver: log (the application log), audit (every audit entry, in order, at least once, sent again after an outage) or log,audit", set: str(&c.SyslogSend)},
		{name: "oidc-issuer", usage: "staff single sign-on: the OpenID provider's issuer URL (https; see docs/sso.md for Entra ID, Keycloak and ADFS). Staff then sign in with the organisation account, and addresses in the policy's sso_domains (by default its organisation_domains) get no mailed code", set: str(&c.OIDCIssuer)},
		{name: "oidc-client-id", usage: "Kluis's client id at the OpenID provider; register BASE-URL/sso/callback as its redirect URI", set: str(&c.OIDCClientID)},
		{name: "oidc-client-secret-file", usage: "file holding the client secret at the OpenID provider (KLUIS_OIDC_CLIENT_SECRET may hold the secret itself instead)", set: str(&c.OIDCClientSecretFile)},
		{name: "oidc-scopes", def: "openid,email,profile", usage: "scopes to ask the OpenID provider for, separated by commas (openid is always added); add offline_access where the provider needs it for refresh tokens", set: list(&c.OIDCScopes)},
		{name: "oidc-claim-email", def: "email", usage: "ID-token claim with the user's e-mail address (Entra ID: email or preferred_username; ADFS: upn or email)", set: str(&c.OIDCClaimEmail)},
		{name: "oidc-claim-name", def: "name", usage: "ID-token claim with the user's display name", set: str(&c.OIDCClaimName)},
		{name: "oidc-claim-groups", def: "groups", usage: "ID-token claim with the user's groups (names or ids, as the provider sends them)", set: str(&c.OIDCClaimGroups)},
		{name: "oidc-session-max", def: "12h", usage: "longest a staff session made by single sign-on lasts (and how often a CLI token re-checks the account at the provider), so a disabled account loses access within it", set: dur(&c.OIDCSessionMax)},
		{name: "oidc-role-admin", usage: "groups (names or ids, separated by commas) whose members get the admin role", set: groups(c.OIDCRoleGroups, role.Admin)},
		{name: "oidc-role-auditor", usage: "groups whose members get the auditor role (read the audit log and statistics)", set: groups(c.OIDCRoleGroups, role.Auditor)},
		{name: "oidc-role-helpdesk", usage: "groups whose members get the helpdesk role (look up a transfer's status and revoke it, never its content)", set: groups(c.OIDCRoleGroups, role.Helpdesk)},
		{name: "oidc-mfa-roles", def: "admin,auditor", usage: "roles granted only to a sign-in with a second factor (the ID token's acr or amr, see --oidc-acr and --oidc-amr), separated by commas; none for no role", set: str(&c.oidcMFARolesGiven)},
		{name: "oidc-acr", usage: "acr values that prove a second factor, separated by commas (e.g. Keycloak's level names); empty: only --oidc-amr counts", set: list(&c.OIDCACR)},
		{name: "oidc-amr", def: strings.Join(oidc.DefaultAMR, ","), usage: "amr values (RFC 8176) that prove a second factor, separated by commas", set: list(&c.OIDCAMR)},
		{name: "gateway-addr", usage: "address (HOST:PORT) of the SMTP gateway that turns a marked mail from the organisation's mail server into a transfer (docs/gateway.md); off without it", set: str(&c.GatewayAddr)},
		{name: "gateway-trusted-relay", usage: "mail server (address or CIDR range) that may hand over mail to the gateway without SMTP AUTH: only the organisation's own on-premises server (the weaker option, see docs/gateway.md); repeat the flag or separate with commas. Others authenticate with SMTP AUTH and the sender's API key", set: addRelays},
		{name: "gateway-marker", def: "[vertrouwelijk],[secure]", usage: "subject markers (comma-separated, case-insensitive) that make the gateway take a mail; the marker is removed from the subject", set: setMarkers},
		{name: "gateway-domain", usage: "the name the gateway greets mail servers with, and the domain a mail can be addressed through instead of marked: alice=example.org@DOMAIN is alice@example.org (default: the host of --base-url)", set: str(&c.GatewayDomain)},
		{name: "gateway-tls-cert", usage: "PEM certificate chain the gateway offers with STARTTLS (default: --tls-cert); needs --gateway-tls-key", set: str(&c.GatewayTLSCert)},
		{name: "gateway-tls-key", usage: "PEM private key for --gateway-tls-cert", set: str(&c.GatewayTLSKey)},
		{name: "gateway-client-cert-name", usage: "names (certificate subject CN or DNS name, separated by commas) of the TLS client certificates of mail connectors that may hand over mail like a trusted relay: Exchange Online's outbound connector with the organisation's own certificate (docs/gateway.md)", set: list(&c.GatewayClientNames)},
		{name: "gateway-client-ca", usage: "PEM file with the CA certificates that a connector's client certificate must chain to (default: the system's roots)", set: str(&c.GatewayClientCA)},
		{name: "gateway-claim-lease", def: "2m", usage: "how long a mail the gateway is taking holds off another delivery of the same mail (same sender and Message-ID) without being renewed; after a crash, the mail server's next try after it takes the mail again", set: dur(&c.GatewayClaimLease)},
		{name: "metrics-token", secret: true, usage: "bearer token (at least 16 characters) that Prometheus sends to read /metrics and /healthz?details=1 (Authorization: Bearer TOKEN). Without it they answer only clients connecting from loopback without X-Forwarded-For (set a token, or block /metrics, when a reverse proxy on the same host forwards without that header)", set: str(&c.MetricsToken)},
	}
	fs := flag.NewFlagSet("kluis serve", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: kluis serve [flags]\n\nStarts the Kluis server. With no configuration it uses SQLite and encrypted files in ./kluis-data,\na master key generated there, and listens on 127.0.0.1:8080.\n\nEvery flag can also be set with an environment variable: --max-expiry is KLUIS_MAX_EXPIRY.\nFor secrets, KLUIS_NAME_FILE names a file holding the value. Flags win over the environment.\nSizes take B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB; durations take s, m, h and d (days).\n\nFlags:\n")
		for _, o := range opts {
			def := ""
			if o.def != "" {
				def = fmt.Sprintf(" (default %s)", o.def)
			}
			env := envName(o.name)
			if o.secret {
				env += ", " + env + "_FILE"
			}
			fmt.Fprintf(out, "  --%s\n        %s%s\n        [%s]\n", o.name, o.usage, def, env)
		}
	}
	for _, o := range opts {
		o := o
		fs.Func(o.name, o.usage, func(v string) error {
			if err := o.set(v); err != nil {
				return fmt.Errorf("%w", err)
			}
			return nil
		})
	}
	// Defaults first, then the environment, then flags.
	for _, o := range opts {
		if o.def != "" {
			if err := o.set(o.def); err != nil {
				return nil, err
			}
		}
	}
	for _, o := range opts {
		env := envName(o.name)
		v := getenv(env)
		if o.secret {
			if fv := getenv(env + "_FILE"); fv != "" {
				if v != "" {
					return nil, fmt.Errorf("set either %s or %s_FILE, not both", env, env)
				}
				b, err := os.ReadFile(fv)
				if err != nil {
					return nil, fmt.Errorf("%s_FILE: %w", env, err)
				}
				v = strings.TrimRight(string(b), "\r\n")
				// An empty file is a mistake (an empty systemd credential),
				// never "not configured": for --smtp that would silently
				// mean no mail delivery.
				if strings.TrimSpace(v) == "" {
					return nil, fmt.Errorf("%s_FILE: %s is empty; put the value in it, or remove %s_FILE from the configuration", env, fv, env)
				}
			}
		}
		if v != "" {
			if err := o.set(v); err != nil {
				return nil, fmt.Errorf("%s: %w", env, err)
			}
		}
	}
	c.MasterKey = getenv("KLUIS_MASTER_KEY")
	c.OIDCClientSecret = getenv("KLUIS_OIDC_CLIENT_SECRET")
	parsingFlags = true
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; kluis serve takes only flags (see kluis serve --help)", fs.Arg(0))
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func envName(flagName string) string {
	return "KLUIS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (c *Serve) validate() error {
	if err := c.validateSMS(); err != nil {
		return err
	}
	if err := c.validateSyslog(); err != nil {
		return err
	}
	if err := c.validateScan(); err != nil {
		return err
	}
	if err := c.validateOIDC(); err != nil {
		return err
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < 16 {
		return fmt.Errorf("--metrics-token: use at least 16 characters (for example: openssl rand -hex 16)")
	}
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("--addr %q: give HOST:PORT, for example 127.0.0.1:8080", c.Addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("--addr %q: the port must be a number from 0 to 65535", c.Addr)
	}
	if c.BaseURL == "" {
		h := host
		if h == "" || h == "0.0.0.0" || h == "::" {
			h = "localhost"
		}
		scheme := "http://"
		if c.TLSCert != "" {
			scheme = "https://"
		}
		c.BaseURL = scheme + net.JoinHostPort(h, port)
		c.BaseURLDefaulted = true
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("--base-url %q: give an absolute http(s) URL such as https://kluis.example.nl", c.BaseURL)
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.DataDir == "" {
		return errors.New("--data must not be empty")
	}
	c.DataDir = filepath.Clean(c.DataDir)
	// The value may carry a password: never put it in an error.
	switch {
	case c.DB == "", strings.HasPrefix(c.DB, "postgres://"), strings.HasPrefix(c.DB, "postgresql://"):
	case strings.HasPrefix(c.DB, "sqlite:"):
		if c.DB == "sqlite:" {
			return errors.New("--db sqlite:PATH: the path is empty")
		}
	default:
		return errors.New("--db: give sqlite:PATH or a postgres:// URL")
	}
	if c.MasterKeyFile == "" {
		c.MasterKeyFile = filepath.Join(c.DataDir, "master.key")
	}
	if c.MaxTransferSize < 1 {
		return fmt.Errorf("--max-transfer-size must be at least 1 byte")
	}
	if c.DefaultExpiry <= 0 || c.MaxExpiry <= 0 {
		return fmt.Errorf("--default-expiry and --max-expiry must be positive")
	}
	if c.DefaultExpiry > c.MaxExpiry {
		return fmt.Errorf("--default-expiry (%s) is longer than --max-expiry (%s)", unit.FormatDuration(c.DefaultExpiry), unit.FormatDuration(c.MaxExpiry))
	}
	if c.MaxRecipients < 1 || c.MaxFailures < 1 || c.UnlockConcurrency < 1 {
		return fmt.Errorf("--max-recipients, --max-failures and --unlock-concurrency must be at least 1")
	}
	if c.Retention < 0 || c.SessionTTL <= 0 || c.TempMaxAge <= 0 || c.ShutdownTimeout <= 0 {
		return fmt.Errorf("--retention must not be negative; --session-ttl, --temp-max-age and --shutdown-timeout must be positive")
	}
	if len(c.Lockouts) == 0 || slices.ContainsFunc(c.Lockouts, func(d time.Duration) bool { return d <= 0 }) {
		return fmt.Errorf("--lockout: give one or more positive durations separated by commas, for example 15m,1h,1d")
	}
	if c.LockoutHoldAfter < 0 || (c.LockoutHoldAfter > 0 && c.LockoutHoldAfter < c.MaxFailures) {
		return fmt.Errorf("--lockout-hold-after %d: give 0 (never) or at least --max-failures (%d)", c.LockoutHoldAfter, c.MaxFailures)
	}
	if c.BodyTimeout < time.Second {
		return fmt.Errorf("--body-timeout must be at least 1s")
	}
	if c.AuditRetention <= 0 {
		return fmt.Errorf("--audit-retention must be positive")
	}
	if c.MailFrom == "" {
		host := u.Hostname()
		if !strings.Contains(host, ".") {
			host += ".localdomain"
		}
		c.MailFrom = "Kluis <kluis@" + host + ">"
	}
	if a, err := mail.ParseAddress(c.MailFrom); err != nil || !strings.Contains(a.Address, "@") {
		return fmt.Errorf("--mail-from %q: write it as \"Name <address@example.nl>\"", c.MailFrom)
	}
	if c.APIKeyMaxAge <= 0 {
		return fmt.Errorf("--apikey-max-age must be positive (the default is 365d)")
	}
	if c.VerifyTTL <= 0 {
		return fmt.Errorf("--verify-ttl must be positive")
	}
	if c.RateLimit < 0 || c.RateLimitGlobal < 0 {
		return fmt.Errorf("--rate-limit and --rate-limit-global must not be negative (0 turns a limit off)")
	}
	if c.RateLimit > 0 && c.RateLimitGlobal > 0 && c.RateLimitGlobal < ratelimit.GlobalFactor*c.RateLimit {
		return fmt.Errorf("--rate-limit-global %d is less than %d times --rate-limit %d, so a few clients could use it up for everyone: set it to %d or more (or 0 for no global limit)",
			c.RateLimitGlobal, ratelimit.GlobalFactor, c.RateLimit, ratelimit.GlobalFactor*c.RateLimit)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("give both --tls-cert and --tls-key, or neither")
	}
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("--tls-cert %s / --tls-key %s: %w", c.TLSCert, c.TLSKey, err)
		}
	}
	if err := c.checkGateway(); err != nil {
		return err
	}
	if c.SecurityContact != "" {
		if err := checkContact(c.SecurityContact); err != nil {
			return fmt.Errorf("--security-contact %q: %w", c.SecurityContact, err)
		}
	}
	if c.SecurityPolicyURL != "" {
		if u, err := url.Parse(c.SecurityPolicyURL); err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("--security-policy-url %q: give an absolute https URL", c.SecurityPolicyURL)
		}
	}
	if err := c.About.validate(c.OrgName, time.Now()); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q: choose debug, info, warn or error", c.LogLevel)
	}
	return nil
}

// checkContact accepts the Contact forms of RFC 9116: mailto:, https: or
// tel: URIs, on one line.
func checkContact(v string) error {
	if strings.ContainsAny(v, "\r\n") {
		return errors.New("must be one line")
	}
	u, err := url.Parse(v)
	if err != nil {
		return errors.New("give mailto:ADDRESS or an https URL")
	}
	switch u.Scheme {
	case "mailto":
		if a, err := mail.ParseAddress(u.Opaque); err != nil || a.Address != u.Opaque {
			return errors.New("write it as mailto:security@example.nl")
		}
	case "https":
		if u.Host == "" {
			return errors.New("give an absolute https URL")
		}
	case "tel":
		if u.Opaque == "" {
			return errors.New("write it as tel: and the number in international form, such as tel:+31201234567")
		}
	default:
		return errors.New("give mailto:ADDRESS or an https URL")
	}
	return nil
}

func str(p *string) func(string) error {
	return func(v string) error { *p = v; return nil }
}

func integer(p *int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		*p = n
		return nil
	}
}

func dur(p *time.Duration) func(string) error {
	return func(v string) error {
		d, err := unit.ParseDuration(v)
		if err != nil {
			return err
		}
		*p = d
		return nil
	}
}

// durList parses durations separated by commas ("15m,1h,1d").
func durList(p *[]time.Duration) func(string) error {
	return func(v string) error {
		var out []time.Duration
		for _, f := range strings.Split(v, ",") {
			d, err := unit.ParseDuration(f)
			if err != nil {
				return fmt.Errorf("%q: give durations separated by commas, for example 15m,1h,1d", v)
			}
			out = append(out, d)
		}
		*p = out
		return nil
	}
}

func size(p *int64) func(string) error {
	return func(v string) error {
		n, err := unit.ParseSize(v)
		if err != nil {
			return err
		}
		*p = n
		return nil
	}
}

// date parses a day (midnight UTC) or an RFC 3339 time.
func date(p *time.Time) func(string) error {
	return func(v string) error {
		v = strings.TrimSpace(v)
		t, err := time.Parse("2006-01-02", v)
		if err != nil {
			t, err = time.Parse(time.RFC3339, v)
		}
		if err != nil {
			return fmt.Errorf("%q is not a date; write for example 2027-06-30 (midnight UTC) or 2027-06-30T12:00:00Z", v)
		}
		*p = t.UTC()
		return nil
	}
}

// staticLog reads --log-static: "all" (0), "none" (-1) or "1/N" (N; 1/1
// is all).
func staticLog(p *int) func(string) error {
	return func(v string) error {
		switch v {
		case "all":
			*p = 0
			return nil
		case "none":
			*p = -1
			return nil
		}
		n, ok := strings.CutPrefix(v, "1/")
		k, err := strconv.Atoi(n)
		if !ok || err != nil || k < 1 {
			return fmt.Errorf("--log-static %q: give all, none, or 1/N to log one in N (e.g. 1/100)", v)
		}
		if k == 1 {
			k = 0
		}
		*p = k
		return nil
	}
}

// rate parses a size per second; "/s" may follow the unit ("1KB/s").
func rate(p *int64) func(string) error {
	return func(v string) error {
		n, err := unit.ParseSize(strings.TrimSuffix(strings.TrimSpace(v), "/s"))
		if err != nil {
			return fmt.Errorf("%q is not a rate; write bytes per second, for example 1KB or 500B", v)
		}
		*p = n
		return nil
	}
}

// SMSGateway is the gateway request of the --sms-* flags, without the
// headers (the app reads --sms-headers-file).
func (c *Serve) SMSGateway() sms.Config {
	return sms.Config{URL: c.SMSURL, Method: c.SMSMethod, Body: c.SMSBody, Encoding: c.SMSEncoding, Timeout: c.SMSTimeout}
}

func (c *Serve) validateSMS() error {
	if c.SMSPerRecipientDay < 1 || c.SMSPerHour < 1 {
		return fmt.Errorf("--sms-per-recipient-day and --sms-per-hour must be at least 1")
	}
	if c.SMSTimeout <= 0 {
		return fmt.Errorf("--sms-timeout must be positive")
	}
	if c.SMSURL == "" {
		if c.SMSBody != "" || c.SMSHeadersFile != "" {
			return fmt.Errorf("--sms-body and --sms-headers-file need --sms-url: the SMS gateway's address")
		}
		return nil
	}
	if _, err := sms.NewHTTP(c.SMSGateway()); err != nil {
		return fmt.Errorf("--sms-url, --sms-method, --sms-body, --sms-encoding: %w", err)
	}
	if c.SMSHeadersFile != "" {
		if _, err := sms.ReadHeaders(c.SMSHeadersFile); err != nil {
			return fmt.Errorf("--sms-headers-file: %w", err)
		}
	}
	return nil
}

func (c *Serve) validateSyslog() error {
	if _, err := syslog.ParseFacility(c.SyslogFacility); err != nil {
		return fmt.Errorf("--syslog-facility: %w", err)
	}
	for _, part := range strings.Split(c.SyslogSend, ",") {
		if p := strings.TrimSpace(part); p != "log" && p != "audit" {
			return fmt.Errorf("--syslog-send %q: use log, audit or log,audit", c.SyslogSend)
		}
	}
	if c.SyslogAddr == "" {
		if c.SyslogCAFile != "" {
			return errors.New("--syslog-ca-file needs --syslog-addr tls://HOST:PORT")
		}
		return nil
	}
	if _, err := syslog.New(c.SyslogConfig()); err != nil {
		return fmt.Errorf("--syslog-addr, --syslog-ca-file: %w", err)
	}
	return nil
}

// SyslogConfig is the syslog receiver's configuration (Addr empty: none).
func (c *Serve) SyslogConfig() syslog.Config {
	f, _ := syslog.ParseFacility(c.SyslogFacility)
	return syslog.Config{Addr: c.SyslogAddr, CAFile: c.SyslogCAFile, Facility: f, AppName: c.SyslogAppName}
}

// SyslogSends reports whether what ("log" or "audit") goes to the syslog
// receiver.
func (c *Serve) SyslogSends(what string) bool {
	if c.SyslogAddr == "" {
		return false
	}
	for _, part := range strings.Split(c.SyslogSend, ",") {
		if strings.TrimSpace(part) == what {
			return true
		}
	}
	return false
}

func (c *Serve) validateScan() error {
	if c.Clamd != "" {
		if _, err := scan.Parse(c.Clamd); err != nil {
			return fmt.Errorf("--clamd: %w", err)
		}
	}
	switch c.Scan {
	case "":
		c.Scan = "off"
		if c.Clamd != "" {
			c.Scan = "all"
		}
	case "off", "inbound", "all":
		if c.Scan != "off" && c.Clamd == "" {
			return fmt.Errorf("--scan %s needs --clamd: the address of ClamAV's daemon, as unix:/run/clamav/clamd.ctl or tcp://127.0.0.1:3310", c.Scan)
		}
	default:
		return fmt.Errorf("--scan %q: use off, inbound or all", c.Scan)
	}
	if c.ScanUnavailable != "closed" && c.ScanUnavailable != "open" {
		return fmt.Errorf("--scan-unavailable %q: use closed or open", c.ScanUnavailable)
	}
	if c.ScanTooLarge != "refuse" && c.ScanTooLarge != "pass" {
		return fmt.Errorf("--scan-too-large %q: use refuse or pass", c.ScanTooLarge)
	}
	if c.ScanWait < time.Minute {
		return fmt.Errorf("--scan-wait %s: use at least 1m (the default is 24h)", c.ScanWait)
	}
	return nil
}

// list parses values separated by commas, dropping empty ones.
func list(p *[]string) func(string) error {
	return func(v string) error {
		var out []string
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
		*p = out
		return nil
	}
}

// groups sets the groups of role r in m.
func groups(m map[role.Role][]string, r role.Role) func(string) error {
	return func(v string) error {
		var l []string
		if err := list(&l)(v); err != nil {
			return err
		}
		m[r] = l
		return nil
	}
}

// SSO reports whether staff single sign-on is configured.
func (c *Serve) SSO() bool { return c.OIDCIssuer != "" }

// OIDC is the relying party and the role mapping of the --oidc-* flags.
func (c *Serve) OIDC() (oidc.Config, oidc.Mapping) {
	return oidc.Config{
			Issuer: c.OIDCIssuer, ClientID: c.OIDCClientID, ClientSecret: c.OIDCClientSecret,
			RedirectURL: c.BaseURL + "/sso/callback", Scopes: c.OIDCScopes,
			ClaimEmail: c.OIDCClaimEmail, ClaimName: c.OIDCClaimName, ClaimGroups: c.OIDCClaimGroups,
		}, oidc.Mapping{
			Groups: c.OIDCRoleGroups, MFA: c.OIDCMFARoles, ACR: c.OIDCACR, AMR: c.OIDCAMR,
		}
}

func (c *Serve) validateOIDC() error {
	if c.OIDCSessionMax <= 0 {
		return fmt.Errorf("--oidc-session-max must be positive (the default is 12h)")
	}
	c.OIDCMFARoles = nil
	if c.oidcMFARolesGiven != "none" {
		for _, f := range strings.Split(c.oidcMFARolesGiven, ",") {
			if strings.TrimSpace(f) == "" {
				continue
			}
			r, err := role.Parse(f)
			if err != nil {
				return fmt.Errorf("--oidc-mfa-roles: %w, or none", err)
			}
			c.OIDCMFARoles = append(c.OIDCMFARoles, r)
		}
	}
	if !c.SSO() {
		// A setting without the issuer would be silently ignored.
		given := c.OIDCClientID != "" || c.OIDCClientSecretFile != "" || c.OIDCClientSecret != ""
		for _, g := range c.OIDCRoleGroups {
			given = given || len(g) > 0
		}
		if given {
			return fmt.Errorf("--oidc-client-id, --oidc-client-secret-file and --oidc-role-* need --oidc-issuer: the OpenID provider's issuer URL")
		}
		return nil
	}
	u, err := url.Parse(c.OIDCIssuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("--oidc-issuer %q: give the provider's issuer URL, such as https://login.microsoftonline.com/TENANT/v2.0", c.OIDCIssuer)
	}
	if u.Scheme == "http" {
		// Tokens and the client secret cross this connection: plain http
		// only to a provider on this machine.
		ip, err := netip.ParseAddr(u.Hostname())
		if u.Hostname() != "localhost" && (err != nil || !ip.IsLoopback()) {
			return fmt.Errorf("--oidc-issuer %q: use https (plain http is accepted only for a provider on this machine)", c.OIDCIssuer)
		}
	}
	if c.OIDCClientID == "" {
		return fmt.Errorf("--oidc-client-id is required with --oidc-issuer: the client id Kluis is registered with at the provider")
	}
	switch {
	case c.OIDCClientSecretFile != "" && c.OIDCClientSecret != "":
		return fmt.Errorf("set either --oidc-client-secret-file or KLUIS_OIDC_CLIENT_SECRET, not both")
	case c.OIDCClientSecretFile != "":
		b, err := os.ReadFile(c.OIDCClientSecretFile)
		if err != nil {
			return fmt.Errorf("--oidc-client-secret-file: %w", err)
		}
		c.OIDCClientSecret = strings.TrimRight(string(b), "\r\n")
		if strings.TrimSpace(c.OIDCClientSecret) == "" {
			return fmt.Errorf("--oidc-client-secret-file: %s is empty; put the client secret in it", c.OIDCClientSecretFile)
		}
	case c.OIDCClientSecret == "":
		return fmt.Errorf("--oidc-client-secret-file is required with --oidc-issuer: a file holding the client secret Kluis has at the provider")
	}
	for _, claim := range []struct{ flag, v string }{{"email", c.OIDCClaimEmail}, {"name", c.OIDCClaimName}, {"groups", c.OIDCClaimGroups}} {
		if strings.TrimSpace(claim.v) == "" {
			return fmt.Errorf("--oidc-claim-%s must not be empty", claim.flag)
		}
	}
	if len(c.OIDCMFARoles) > 0 && len(c.OIDCACR) == 0 && len(c.OIDCAMR) == 0 {
		return fmt.Errorf("--oidc-mfa-roles %s needs --oidc-acr or --oidc-amr: the values that prove a second factor (or --oidc-mfa-roles none)", c.oidcMFARolesGiven)
	}
	return nil
}

// checkGateway validates the --gateway-* settings.
func (c *Serve) checkGateway() error {
	if c.GatewayAddr == "" {
		if len(c.GatewayTrustedRelays) > 0 || c.GatewayTLSCert != "" || c.GatewayDomain != "" {
			return errors.New("--gateway-trusted-relay, --gateway-tls-cert and --gateway-domain need --gateway-addr")
		}
		return nil
	}
	if _, port, err := net.SplitHostPort(c.GatewayAddr); err != nil {
		return fmt.Errorf("--gateway-addr %q: give HOST:PORT, for example 0.0.0.0:2525", c.GatewayAddr)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("--gateway-addr %q: the port must be a number from 0 to 65535", c.GatewayAddr)
	}
	if d := c.GatewayDomain; d != "" {
		// Mail is addressed through it (alice=example.org@DOMAIN): a
		// domain name, nothing else.
		if a, err := idna.Lookup.ToASCII(strings.TrimSuffix(d, ".")); err != nil || !strings.Contains(a, ".") || net.ParseIP(d) != nil {
			return fmt.Errorf("--gateway-domain %q: give a domain name, for example secure.gemeente.nl", d)
		}
	}
	if c.GatewayClientCA != "" && len(c.GatewayClientNames) == 0 {
		return errors.New("--gateway-client-ca needs --gateway-client-cert-name: name the connector certificates to trust")
	}
	if c.GatewayClientCA != "" {
		b, err := os.ReadFile(c.GatewayClientCA)
		if err != nil {
			return fmt.Errorf("--gateway-client-ca: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(b) {
			return fmt.Errorf("--gateway-client-ca %s: no PEM certificate in it", c.GatewayClientCA)
		}
	}
	if c.GatewayClaimLease < time.Second || c.GatewayClaimLease > time.Hour {
		return fmt.Errorf("--gateway-claim-lease %s: give a duration from 1s to 1h, for example 2m", c.GatewayClaimLease)
	}
	if (c.GatewayTLSCert == "") != (c.GatewayTLSKey == "") {
		return errors.New("give both --gateway-tls-cert and --gateway-tls-key, or neither")
	}
	if c.GatewayTLSCert == "" {
		c.GatewayTLSCert, c.GatewayTLSKey = c.TLSCert, c.TLSKey
	}
	if c.GatewayTLSCert == "" {
		return errors.New("--gateway-addr needs a certificate for STARTTLS (the gateway takes mail only over TLS): give --gateway-tls-cert and --gateway-tls-key, or --tls-cert and --tls-key")
	}
	if _, err := tls.LoadX509KeyPair(c.GatewayTLSCert, c.GatewayTLSKey); err != nil {
		return fmt.Errorf("--gateway-tls-cert %s / --gateway-tls-key %s: %w", c.GatewayTLSCert, c.GatewayTLSKey, err)
	}
	if c.GatewayDomain == "" {
		if u, err := url.Parse(c.BaseURL); err == nil {
			c.GatewayDomain = u.Hostname()
		}
	}
	return nil
}
