// Package client is a small HTTP client for Kluis's JSON API under /api/v1
// and its tus upload endpoint. It is used by the command-line client; it
// talks HTTP only.
//
// Errors are typed: *APIError for an error answer of the server (with its
// code and message), *NetError when the server could not be reached or a
// transfer of bytes broke off, and *IntegrityError when data did not verify.
package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one Kluis server.
type Client struct {
	base *url.URL
	http *http.Client
	// UserAgent is sent with every request.
	UserAgent string

	insecureHTTP bool
}

// Option changes how New makes a Client.
type Option func(*Client)

// AllowInsecureHTTP lets the client talk plain http:// to a server that is
// not on this computer. Passwords, codes and tokens then cross the network
// unencrypted.
func AllowInsecureHTTP() Option { return func(c *Client) { c.insecureHTTP = true } }

// InsecureError refuses plain http:// to another computer: as the server
// address, or as the target of a redirect.
type InsecureError struct {
	URL      string // scheme and host only
	Redirect bool
}

func (e *InsecureError) Error() string {
	what := "the server address " + e.URL
	if e.Redirect {
		what = "the server redirects to " + e.URL + ", which"
	}
	return what + " uses plain http:// to another computer: passwords, codes and tokens would cross the network unencrypted"
}

// New returns a client for the server at base (http or https URL; a path
// prefix is kept). hc may be nil. Plain http:// is accepted only for this
// computer (localhost, 127.0.0.0/8, ::1) unless AllowInsecureHTTP is
// given; the same holds for every redirect the client follows, so an
// https:// server cannot send a token on to http://.
func New(base string, hc *http.Client, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %q", ErrServerURL, base)
	}
	u.RawQuery, u.Fragment = "", ""
	c := &Client{base: u, UserAgent: "kluis-cli"}
	for _, o := range opts {
		o(c)
	}
	if !c.secure(u) {
		return nil, &InsecureError{URL: u.Scheme + "://" + u.Host}
	}
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DisableCompression:    true,
			ResponseHeaderTimeout: 2 * time.Minute,
			IdleConnTimeout:       30 * time.Second,
			TLSHandshakeTimeout:   15 * time.Second,
		}}
	}
	own := *hc
	next := own.CheckRedirect
	own.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !c.secure(req.URL) {
			return &InsecureError{URL: req.URL.Scheme + "://" + req.URL.Host, Redirect: true}
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	c.http = &own
	return c, nil
}

// secure reports whether u may carry secrets: https, or http to this
// computer, or anything with AllowInsecureHTTP.
func (c *Client) secure(u *url.URL) bool {
	return c.insecureHTTP || u.Scheme == "https" || (u.Scheme == "http" && IsLoopback(u.Hostname()))
}

// IsLoopback reports whether host (a name or an IP address, without port
// or brackets) is this computer: "localhost" or a loopback address. Other
// names are not resolved: what a name resolves to can change.
func IsLoopback(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.Unmap().IsLoopback()
}

// Base returns the server URL without a trailing slash.
func (c *Client) Base() string { return c.base.String() }

// URL resolves a path (or an absolute URL's path) against the server.
func (c *Client) URL(p string) string {
	if u, err := url.Parse(p); err == nil && u.IsAbs() {
		p = u.EscapedPath()
	}
	return strings.TrimRight(c.base.String(), "/") + "/" + strings.TrimLeft(p, "/")
}

// APIError is an error answer of the server.
type APIError struct {
	Status  int
	Code    string // "unauthorized", "wrong_password", ...; tus errors: the ERR_ code lower-cased without ERR_
	Message string // safe to show
	At      *time.Time
	// Fields are the codes of the problems field by field
	// ("sso_required", "address_invalid", …).
	Fields []string
	// File is the number (from 1) of the file the server's malware scan
	// refused, and Finding what it found (codes infected and
	// too_large_to_scan); 0 and "" otherwise.
	File    int
	Finding string
}

func (e *APIError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("the server answered %d %s", e.Status, http.StatusText(e.Status))
}

// NetError is a failure to reach the server or to complete a transfer of
// bytes. Running the operation again may succeed.
type NetError struct {
	Op  string
	Err error
}

func (e *NetError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *NetError) Unwrap() error { return e.Err }

// ErrServerURL is the error of New for an address that is not an http://
// or https:// URL.
var ErrServerURL = errors.New("the server address is not an http:// or https:// URL")

// ErrUnexpectedAnswer wraps an answer the client cannot use: the server may
// be older than the client, or not Kluis.
var ErrUnexpectedAnswer = errors.New("unexpected answer from the server")

// IntegrityError means downloaded data did not verify.
type IntegrityError struct{ Msg string }

func (e *IntegrityError) Error() string { return e.Msg }

// Code returns the server error code of err, or "".
func Code(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// do sends a request. A non-2xx answer is returned as *APIError (the body
// is consumed); the caller closes the body of a 2xx answer.
func (c *Client) do(ctx context.Context, method, p, token string, hdr http.Header, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.URL(p), body)
	if err != nil {
		return nil, err
	}
	if body != nil && size >= 0 {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", c.UserAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		var ie *InsecureError
		if errors.As(err, &ie) {
			return nil, ie
		}
		if ctx.Err() != nil {
			return nil, &NetError{Op: method + " " + redact(p), Err: ctx.Err()}
		}
		return nil, &NetError{Op: method + " " + redact(p), Err: unwrapURL(err)}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, readError(resp)
}

// redact keeps access ids and upload ids out of error messages' paths.
func redact(p string) string {
	for _, pre := range []string{"/api/v1/links/", "/api/v1/uploads/"} {
		if i := strings.Index(p, pre); i >= 0 {
			return p[:i+len(pre)] + "…"
		}
	}
	return p
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func readError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &APIError{Status: resp.StatusCode}
	var body struct {
		Error struct {
			Code    string     `json:"code"`
			Message string     `json:"message"`
			At      *time.Time `json:"at"`
			Fields  []struct {
				Code string `json:"code"`
			} `json:"fields"`
			File    int    `json:"file"`
			Finding string `json:"finding"`
		} `json:"error"`
	}
	s := strings.TrimSpace(string(b))
	switch {
	case json.Unmarshal(b, &body) == nil && body.Error.Code != "":
		e.Code, e.Message, e.At = body.Error.Code, body.Error.Message, body.Error.At
		e.File, e.Finding = body.Error.File, body.Error.Finding
		for _, f := range body.Error.Fields {
			e.Fields = append(e.Fields, f.Code)
		}
	case strings.HasPrefix(s, "ERR_"):
		// tus errors: "ERR_CODE: message"
		code, msg, _ := strings.Cut(s, ":")
		e.Code = strings.ToLower(strings.TrimPrefix(code, "ERR_"))
		e.Message = strings.TrimSpace(msg)
	default:
		e.Code = statusCode(resp.StatusCode)
		if len(s) > 200 {
			s = s[:200]
		}
		if s != "" && !strings.Contains(s, "<") {
			e.Message = s
		}
	}
	return e
}

func statusCode(st int) string {
	switch st {
	case 400:
		return "invalid"
	case 401:
		return "unauthorized"
	case 403:
		return "forbidden"
	case 404:
		return "not_found"
	case 409:
		return "conflict"
	case 410:
		return "expired"
	case 413:
		return "too_large"
	case 423:
		return "locked"
	case 429:
		return "rate_limited"
	case 503, 502, 504:
		return "unavailable"
	}
	return "internal"
}

func (c *Client) jsonCall(ctx context.Context, method, p, token string, in, out any) error {
	var body io.Reader
	var size int64 = 0
	hdr := http.Header{}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, size = bytes.NewReader(b), int64(len(b))
		hdr.Set("Content-Type", "application/json")
	}
	hdr.Set("Accept", "application/json")
	resp, err := c.do(ctx, method, p, token, hdr, body, size)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return &NetError{Op: method + " " + redact(p), Err: err}
		}
		return fmt.Errorf("%w: %s %s: %w", ErrUnexpectedAnswer, method, redact(p), err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Sender verification

// Sender is a verified sender.
type Sender struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
	Phone string `json:"phone,omitempty"`
	Lang  string `json:"lang,omitempty"`
	Via   string `json:"via,omitempty"`
}

// Verification is the answer to StartVerification.
type Verification struct {
	Verification string    `json:"verification"`
	ExpiresAt    time.Time `json:"expires_at"`
	CodeDigits   int       `json:"code_digits"`
}

// StartVerification asks the server to mail a code to email.
func (c *Client) StartVerification(ctx context.Context, email, name, phone, lang string) (*Verification, error) {
	var out Verification
	in := map[string]string{"email": email, "name": name, "phone": phone, "lang": lang}
	return &out, c.jsonCall(ctx, "POST", "/api/v1/verify", "", in, &out)
}

// Login is the answer to Confirm: a sender token for scripts.
type Login struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	Sender    *Sender   `json:"sender"`
}

// Confirm checks the mailed code and returns a sender token.
func (c *Client) Confirm(ctx context.Context, verification, code string) (*Login, error) {
	var out Login
	in := map[string]string{"verification": verification, "code": code, "client": "cli"}
	if err := c.jsonCall(ctx, "POST", "/api/v1/verify/confirm", "", in, &out); err != nil {
		return nil, err
	}
	if out.Token == "" {
		return nil, fmt.Errorf("%w: no token", ErrUnexpectedAnswer)
	}
	return &out, nil
}

// SSOStart is the answer to StartSSO: a device sign-in (go to
// VerificationURI, type UserCode) or a browser sign-in (open AuthURL; the
// provider comes back to the loopback redirect).
type SSOStart struct {
	Method                  string    `json:"method"` // device or browser
	Handle                  string    `json:"handle"`
	ExpiresAt               time.Time `json:"expires_at"`
	VerificationURI         string    `json:"verification_uri"`
	VerificationURIComplete string    `json:"verification_uri_complete"`
	UserCode                string    `json:"user_code"`
	Interval                int64     `json:"interval"`
	AuthURL                 string    `json:"auth_url"`
}

// StartSSO begins a staff sign-in with the organisation's identity
// provider. redirectURI is a loopback listener for the browser sign-in;
// method "browser" asks for it even where the device sign-in is offered.
func (c *Client) StartSSO(ctx context.Context, redirectURI, method, lang string) (*SSOStart, error) {
	var out SSOStart
	in := map[string]string{"redirect_uri": redirectURI, "method": method, "lang": lang}
	if err := c.jsonCall(ctx, "POST", "/api/v1/sso/start", "", in, &out); err != nil {
		return nil, err
	}
	if out.Handle == "" || (out.Method == "device" && out.UserCode == "") || (out.Method == "browser" && out.AuthURL == "") {
		return nil, fmt.Errorf("%w: an incomplete sign-in", ErrUnexpectedAnswer)
	}
	return &out, nil
}

// FinishSSO asks whether the sign-in of handle is done: for the browser
// sign-in with the state, code (or error) the loopback redirect received.
// It returns the login, or nil while a device sign-in waits for the user.
func (c *Client) FinishSSO(ctx context.Context, handle, state, code, errCode string) (*Login, error) {
	var out struct {
		Login
		Status string `json:"status"`
	}
	in := map[string]string{"handle": handle, "state": state, "code": code, "error": errCode}
	if err := c.jsonCall(ctx, "POST", "/api/v1/sso/finish", "", in, &out); err != nil {
		return nil, err
	}
	if out.Status == "pending" {
		return nil, nil
	}
	if out.Token == "" {
		return nil, fmt.Errorf("%w: no token", ErrUnexpectedAnswer)
	}
	return &out.Login, nil
}

// Logout ends the sender session of token on the server.
func (c *Client) Logout(ctx context.Context, token string) error {
	return c.jsonCall(ctx, "POST", "/api/v1/logout", token, nil, nil)
}

// ---------------------------------------------------------------------------
// Transfers

// Options are the notification choices of a transfer.
type Options struct {
	Confirm        bool `json:"confirm"`
	NotifyDownload bool `json:"notify_download"`
	// Notify is the download-notice mode (none, first, each, summary);
	// empty leaves it to NotifyDownload.
	Notify        string `json:"notify,omitempty"`
	ShowFilenames bool   `json:"show_filenames"`
	// SpecialData marks special personal data: the policy's
	// special_minimum applies to the recipients' verification.
	SpecialData bool `json:"special_data,omitempty"`
}

// Password is the password choice of a new transfer.
type Password struct {
	Mode  string `json:"mode"` // generate, manual, none
	Value string `json:"value,omitempty"`
}

// CreateRequest is the body of POST /api/v1/transfers.
type CreateRequest struct {
	Sender    *SenderDetails `json:"sender,omitempty"`
	To        []string       `json:"to"`
	Cc        []string       `json:"cc,omitempty"`
	Bcc       []string       `json:"bcc,omitempty"`
	Message   string         `json:"message,omitempty"`
	Subject   string         `json:"subject,omitempty"`
	Reference string         `json:"reference,omitempty"`
	Body      string         `json:"body,omitempty"`
	ExpiresAt *time.Time     `json:"expires_at,omitempty"`
	Lang      string         `json:"lang,omitempty"`
	Password  Password       `json:"password"`
	Options   Options        `json:"options"`
	// RecipientLogin: per recipient address, the login after the password.
	RecipientLogin map[string]RecipientLogin `json:"recipient_login,omitempty"`
	// RecipientAuth: per recipient address, the method and for
	// password+sms the mobile number of the code.
	RecipientAuth map[string]RecipientAuth `json:"recipient_auth,omitempty"`
}

// RecipientAuth is a recipient's verification: the method
// ("password", "password+sms") and the mobile number for an SMS code.
type RecipientAuth struct {
	Method string `json:"method"`
	Phone  string `json:"phone,omitempty"`
}

// RecipientLogin is a recipient's login after the password: a provider of the
// server's policy and the claim value the login must show.
type RecipientLogin struct {
	Provider string `json:"provider"`
	Value    string `json:"value,omitempty"`
}

// SenderDetails are the sender's name and phone for one transfer.
type SenderDetails struct {
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
	Phone string `json:"phone,omitempty"`
}

// Download is one recorded download of a file by a recipient (if the
// server reports it).
type Download struct {
	FileIndex int       `json:"file_index"`
	Name      string    `json:"name,omitempty"`
	At        time.Time `json:"at"`
}

// Recipient is one addressee of a transfer.
type Recipient struct {
	Address    string     `json:"address"`
	Kind       string     `json:"kind"`
	Status     string     `json:"status,omitempty"`
	NotifiedAt *time.Time `json:"notified_at,omitempty"`
	OpenedAt   *time.Time `json:"opened_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	Downloads  []Download `json:"downloads,omitempty"`
	URL        string     `json:"url,omitempty"`
	// AuthMethod, Phone (masked), Login and VerifiedAt: how the
	// recipient verifies, and when the second factor was last passed.
	AuthMethod string          `json:"auth_method,omitempty"`
	Phone      string          `json:"phone,omitempty"`
	Login      *RecipientLogin `json:"login,omitempty"`
	VerifiedAt *time.Time      `json:"verified_at,omitempty"`
}

// Transfer is the sender's view of a transfer.
type Transfer struct {
	ID           string        `json:"id"`
	State        string        `json:"state"`
	CreatedAt    time.Time     `json:"created_at"`
	ExpiresAt    time.Time     `json:"expires_at"`
	FinishedAt   *time.Time    `json:"finished_at,omitempty"`
	RevokedAt    *time.Time    `json:"revoked_at,omitempty"`
	PasswordMode string        `json:"password_mode"`
	Options      Options       `json:"options"`
	Sender       SenderDetails `json:"sender"`
	Recipients   []Recipient   `json:"recipients"`
	// Reference is the sender's own reference, in the answer of
	// GET /api/v1/transfers/{id} only ("" when none was given).
	Reference string `json:"reference,omitempty"`
	// ScanRefusal says why the malware scan stopped the transfer before
	// it was sent (GET /api/v1/transfers/{id} only).
	ScanRefusal *ScanRefusal `json:"scan_refusal,omitempty"`
}

// ScanRefusal is why the server's malware scan stopped a transfer: reason
// "infected", "too_large" or "timeout"; the file by number (from 1), by
// name only if the sender showed names; clamd's finding.
type ScanRefusal struct {
	Reason  string `json:"reason"`
	File    int    `json:"file,omitempty"`
	Files   int    `json:"files,omitempty"`
	Name    string `json:"name,omitempty"`
	Finding string `json:"finding,omitempty"`
}

// Created is the answer to CreateTransfer.
type Created struct {
	Transfer
	UploadToken string `json:"upload_token"`
	UploadURL   string `json:"upload_url"`
	MaxSize     int64  `json:"max_size"`
	Password    string `json:"password,omitempty"`
	LinkSecret  string `json:"link_secret,omitempty"`
}

// CreateTransfer creates a draft transfer; token is the sender's token or
// API key.
func (c *Client) CreateTransfer(ctx context.Context, token string, req *CreateRequest) (*Created, error) {
	var out Created
	if err := c.jsonCall(ctx, "POST", "/api/v1/transfers", token, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Transfer returns a transfer; token is its upload token or the sender's
// token.
func (c *Client) Transfer(ctx context.Context, token, id string) (*Transfer, error) {
	var out Transfer
	if err := c.jsonCall(ctx, "GET", "/api/v1/transfers/"+url.PathEscape(id), token, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Transfers lists the sender's transfers.
func (c *Client) Transfers(ctx context.Context, token string) ([]Transfer, error) {
	var out struct {
		Transfers []Transfer `json:"transfers"`
	}
	if err := c.jsonCall(ctx, "GET", "/api/v1/transfers", token, nil, &out); err != nil {
		return nil, err
	}
	return out.Transfers, nil
}

// Finished is the answer to Finish.
type Finished struct {
	Transfer
	Links []Recipient `json:"links"`
	// UnscannedFiles are the numbers (from 1, in upload order) of the
	// files the server's policy let go out without a malware scan.
	UnscannedFiles []int `json:"unscanned_files,omitempty"`
}

// Finish makes the transfer ready; linkSecret is needed for password mode
// "none".
func (c *Client) Finish(ctx context.Context, token, id, linkSecret string) (*Finished, error) {
	var in any
	if linkSecret != "" {
		in = map[string]string{"link_secret": linkSecret}
	}
	var out Finished
	if err := c.jsonCall(ctx, "POST", "/api/v1/transfers/"+url.PathEscape(id)+"/finish", token, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Revoke revokes a transfer for everyone (recipient "") or for one
// recipient.
func (c *Client) Revoke(ctx context.Context, token, id, recipient string) (*Transfer, error) {
	var in any
	if recipient != "" {
		in = map[string]string{"recipient": recipient}
	}
	var out Transfer
	if err := c.jsonCall(ctx, "POST", "/api/v1/transfers/"+url.PathEscape(id)+"/revoke", token, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ---------------------------------------------------------------------------
// tus uploads

func tusHeader() http.Header {
	h := http.Header{}
	h.Set("Tus-Resumable", "1.0.0")
	return h
}

// CreateUpload creates a tus upload of size bytes and returns its path
// (/api/v1/uploads/ID).
func (c *Client) CreateUpload(ctx context.Context, token string, size int64, name, ctype string) (string, error) {
	h := tusHeader()
	h.Set("Upload-Length", strconv.FormatInt(size, 10))
	md := "filename " + base64.StdEncoding.EncodeToString([]byte(name))
	if ctype != "" {
		md += ",filetype " + base64.StdEncoding.EncodeToString([]byte(ctype))
	}
	h.Set("Upload-Metadata", md)
	resp, err := c.do(ctx, "POST", "/api/v1/uploads/", token, h, http.NoBody, 0)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	loc := resp.Header.Get("Location")
	u, err := url.Parse(loc)
	if loc == "" || err != nil {
		return "", fmt.Errorf("%w: the upload was created without a usable Location", ErrUnexpectedAnswer)
	}
	return u.EscapedPath(), nil
}

// UploadOffset returns how much of an upload the server has stored.
func (c *Client) UploadOffset(ctx context.Context, token, loc string) (offset, length int64, err error) {
	resp, err := c.do(ctx, "HEAD", loc, token, tusHeader(), nil, -1)
	if err != nil {
		return 0, 0, err
	}
	resp.Body.Close()
	offset, err = strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: no Upload-Offset", ErrUnexpectedAnswer)
	}
	length, _ = strconv.ParseInt(resp.Header.Get("Upload-Length"), 10, 64)
	return offset, length, nil
}

// Patch sends n bytes of body at offset and returns the new offset.
func (c *Client) Patch(ctx context.Context, token, loc string, offset int64, body io.Reader, n int64) (int64, error) {
	h := tusHeader()
	h.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	h.Set("Content-Type", "application/offset+octet-stream")
	resp, err := c.do(ctx, "PATCH", loc, token, h, io.NopCloser(body), n)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	off, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: no Upload-Offset", ErrUnexpectedAnswer)
	}
	return off, nil
}

// ---------------------------------------------------------------------------
// Recipients

// Link is the answer to Lookup.
type Link struct {
	PasswordRequired bool      `json:"password_required"`
	ExpiresAt        time.Time `json:"expires_at"`
}

// NormalizeAccess removes dashes and spaces from an access code and lower-
// cases it.
func NormalizeAccess(s string) string {
	return strings.ToLower(strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s))
}

// Lookup checks a link's access id.
func (c *Client) Lookup(ctx context.Context, access string) (*Link, error) {
	var out Link
	if err := c.jsonCall(ctx, "GET", "/api/v1/links/"+url.PathEscape(NormalizeAccess(access)), "", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Session is a download session.
type Session struct {
	Session   string    `json:"session"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Unlock opens a link with the password (or the link secret).
func (c *Client) Unlock(ctx context.Context, access, secret string) (*Session, error) {
	var out Session
	in := map[string]string{"secret": secret}
	if err := c.jsonCall(ctx, "POST", "/api/v1/links/"+url.PathEscape(NormalizeAccess(access))+"/unlock", "", in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// File is one file of a transfer as a recipient sees it.
type File struct {
	ID          string `json:"id"`
	Index       int    `json:"index"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256,omitempty"`
	Complete    bool   `json:"complete"`
}

// Contents is the recipient's view of a transfer.
type Contents struct {
	Transfer Transfer `json:"transfer"`
	Message  string   `json:"message"`
	Files    []File   `json:"files"`
}

// Contents lists a session's transfer.
func (c *Client) Contents(ctx context.Context, session string) (*Contents, error) {
	var out Contents
	if err := c.jsonCall(ctx, "GET", "/api/v1/session", session, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Download starts the download of a file from offset (a Range request when
// offset > 0). It returns the response; partial reports whether the body
// starts at offset (206) rather than at 0 (200).
func (c *Client) Download(ctx context.Context, session, fileID string, offset int64) (resp *http.Response, partial bool, err error) {
	h := http.Header{}
	if offset > 0 {
		h.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err = c.do(ctx, "GET", "/api/v1/session/files/"+url.PathEscape(fileID), session, h, nil, -1)
	if err != nil {
		return nil, false, err
	}
	return resp, resp.StatusCode == http.StatusPartialContent, nil
}

// DownloadZip starts the download of all files as one ZIP.
func (c *Client) DownloadZip(ctx context.Context, session string) (*http.Response, error) {
	return c.do(ctx, "GET", "/api/v1/session/zip", session, nil, nil, -1)
}

// ---------------------------------------------------------------------------
// Inbox and file requests

// Inbox is the state of the sender's inbox key.
type Inbox struct {
	Exists    bool   `json:"exists"`
	Recipient string `json:"recipient,omitempty"`
}

// Inbox returns the state of the sender's inbox key.
func (c *Client) Inbox(ctx context.Context, token string) (*Inbox, error) {
	var out Inbox
	if err := c.jsonCall(ctx, "GET", "/api/v1/inbox", token, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateInbox sets the inbox passphrase (once; a login, not an API key).
func (c *Client) CreateInbox(ctx context.Context, token, passphrase string) (*Inbox, error) {
	var out Inbox
	if err := c.jsonCall(ctx, "POST", "/api/v1/inbox", token, map[string]string{"passphrase": passphrase}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ChangeInboxPassphrase puts a new passphrase on the inbox key, with the
// old one (a login, not an API key).
func (c *Client) ChangeInboxPassphrase(ctx context.Context, token, old, passphrase string) (*Inbox, error) {
	var out Inbox
	if err := c.jsonCall(ctx, "POST", "/api/v1/inbox/passphrase", token, map[string]string{"passphrase": old, "new_passphrase": passphrase}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// FileRequestCreate asks one or more people for files.
type FileRequestCreate struct {
	To        []string `json:"to"`
	Message   string   `json:"message,omitempty"`
	Ask       []string `json:"ask,omitempty"`
	ExpiresOn string   `json:"expires_on,omitempty"`
	Lang      string   `json:"lang,omitempty"`
	// Mobile maps addresses of To to mobile numbers (key "": the only
	// address).
	Mobile map[string]string `json:"mobile,omitempty"`
}

// FileRequest is one request as its requester sees it.
type FileRequest struct {
	ID        string     `json:"id"`
	Address   string     `json:"address"`
	State     string     `json:"state"`
	Lang      string     `json:"lang"`
	Message   string     `json:"message,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	DoneAt    *time.Time `json:"done_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	MaxSize   int64      `json:"max_size"`
	MaxFiles  int        `json:"max_files"`
	Files     int        `json:"files"`
	Result    *struct {
		Transfer  string     `json:"transfer"`
		ExpiresAt time.Time  `json:"expires_at"`
		OpenedAt  *time.Time `json:"opened_at,omitempty"`
	} `json:"result,omitempty"`
	// SMS is the SMS with the link, when a mobile number was given.
	SMS *struct {
		To    string     `json:"to,omitempty"`
		State string     `json:"state"`
		At    *time.Time `json:"at,omitempty"`
	} `json:"sms,omitempty"`
}

// CreateFileRequests makes a request for each address.
func (c *Client) CreateFileRequests(ctx context.Context, token string, req *FileRequestCreate) ([]FileRequest, error) {
	var out struct {
		Requests []FileRequest `json:"requests"`
	}
	if err := c.jsonCall(ctx, "POST", "/api/v1/requests", token, req, &out); err != nil {
		return nil, err
	}
	return out.Requests, nil
}

// FileRequests lists the sender's requests, newest first.
func (c *Client) FileRequests(ctx context.Context, token string) ([]FileRequest, error) {
	var out struct {
		Requests []FileRequest `json:"requests"`
	}
	if err := c.jsonCall(ctx, "GET", "/api/v1/requests", token, nil, &out); err != nil {
		return nil, err
	}
	return out.Requests, nil
}

// FileRequest returns one of the sender's requests.
func (c *Client) FileRequest(ctx context.Context, token, id string) (*FileRequest, error) {
	var out FileRequest
	if err := c.jsonCall(ctx, "GET", "/api/v1/requests/"+url.PathEscape(id), token, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeFileRequest withdraws a request.
func (c *Client) RevokeFileRequest(ctx context.Context, token, id string) (*FileRequest, error) {
	var out FileRequest
	if err := c.jsonCall(ctx, "POST", "/api/v1/requests/"+url.PathEscape(id)+"/revoke", token, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// OpenFileRequest opens what was sent on a request with the inbox
// passphrase (used by the server for this call only) and returns a
// download session of it.
func (c *Client) OpenFileRequest(ctx context.Context, token, id, passphrase string) (*Session, error) {
	var out Session
	if err := c.jsonCall(ctx, "POST", "/api/v1/requests/"+url.PathEscape(id)+"/open", token, map[string]string{"passphrase": passphrase}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
