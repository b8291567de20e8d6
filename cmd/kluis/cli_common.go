package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/client"
)

// Exit codes of the client commands. They are fixed: scripts rely on them.
const (
	exitOK        = 0 // success
	exitUsage     = 1 // usage: wrong flags or arguments, missing or existing local files
	exitRefused   = 2 // refused by the server's rules: policy, forbidden, expired, revoked, unknown link, too large, conflict
	exitAuth      = 3 // authentication: not logged in, invalid token or API key, wrong password, locked
	exitNetwork   = 4 // network: server unreachable, connection broke off, server unavailable or failing, interrupted
	exitIntegrity = 5 // integrity: tampered or corrupt data (nothing was saved under the final name)
)

const defaultServer = "http://127.0.0.1:8080"

// cliError is an error with an exit code and a hint saying what to do.
type cliError struct {
	code int
	err  error
	hint string
}

func (e *cliError) Error() string {
	if e.hint == "" {
		return e.err.Error()
	}
	return e.err.Error() + "\n" + e.hint
}

func (e *cliError) Unwrap() error { return e.err }

func fail(code int, hint, format string, args ...any) error {
	return &cliError{code: code, err: fmt.Errorf(format, args...), hint: hint}
}

// exitCode maps an error of run to the process exit code.
func exitCode(err error) int {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code
	}
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	if code, ok := clientExit(err); ok {
		return code
	}
	return exitUsage
}

func clientExit(err error) (int, bool) {
	var ae *client.APIError
	if errors.As(err, &ae) {
		switch ae.Code {
		case "unauthorized", "wrong_password", "locked":
			return exitAuth, true
		case "integrity":
			return exitIntegrity, true
		case "forbidden", "policy":
			return exitRefused, true
		case "unavailable", "internal", "rate_limited", "insufficient_storage":
			return exitNetwork, true
		}
		if ae.Status >= 500 {
			return exitNetwork, true
		}
		return exitRefused, true
	}
	var ne *client.NetError
	if errors.As(err, &ne) {
		return exitNetwork, true
	}
	var ie *client.IntegrityError
	if errors.As(err, &ie) {
		return exitIntegrity, true
	}
	var insecure *client.InsecureError
	if errors.As(err, &insecure) {
		return exitUsage, true
	}
	if errors.Is(err, context.Canceled) {
		return exitNetwork, true
	}
	return 0, false
}

// explain turns a client error into a cliError whose hint says what to do.
// what names the situation for "unauthorized": "sender" or "recipient".
func explain(err error, what string) error {
	if err == nil {
		return nil
	}
	var ce *cliError
	if errors.As(err, &ce) {
		return err
	}
	code, ok := clientExit(err)
	if !ok {
		return err
	}
	var hint string
	var ae *client.APIError
	if errors.As(err, &ae) {
		switch ae.Code {
		case "unauthorized":
			if what == "sender" {
				hint = "Log in with `kluis login --email ADDRESS`, or give an API key with --api-key or KLUIS_API_KEY."
			} else {
				hint = "The download session ended. Run the command again."
			}
		case "wrong_password":
			hint = "Check the password (ask the sender if unsure) and try again. After too many wrong passwords the link is locked for a while."
		case "locked":
			hint = "Too many wrong passwords were tried."
			if ae.At != nil {
				hint += " Try again after " + ae.At.Local().Format("2006-01-02 15:04") + ","
			}
			hint += " or ask the sender for help."
		case "expired", "revoked":
			hint = "Ask the sender to send the files again."
		case "not_found":
			if what == "sender" {
				hint = "Check the transfer id (see `kluis status`)."
			} else {
				hint = "Check the link: copy it completely from the e-mail. It may also be no longer valid."
			}
		case "forbidden", "policy":
			hint = "This is not allowed by the server's rules. Change what the message says, or ask the administrator."
		case "too_large":
			hint = "Send fewer or smaller files, or split them over more transfers."
		case "integrity":
			hint = "The stored data is damaged. Tell the sender; nothing was saved under the final name."
		case "unavailable", "rate_limited":
			hint = "The server is busy. Wait a moment and run the same command again."
		case "insufficient_storage":
			hint = "The server's storage is full. Run the same command later to continue, or tell the administrator."
		case "internal":
			hint = "The server failed. Try again later, or tell the administrator."
		case "invalid":
			hint = "Correct the input as the message says and run the command again."
		case "conflict":
			hint = "Check the state of the transfer with `kluis status`."
		}
		msg := ae.Error()
		return &cliError{code: code, err: errors.New(msg), hint: hint}
	}
	var ne *client.NetError
	if errors.As(err, &ne) {
		if errors.Is(err, context.Canceled) {
			return &cliError{code: code, err: errors.New("interrupted"), hint: "Run the same command again to continue."}
		}
		return &cliError{code: code, err: err, hint: "Check the server address (--server or KLUIS_SERVER) and your network connection, then run the same command again to continue."}
	}
	var ie *client.IntegrityError
	if errors.As(err, &ie) {
		return &cliError{code: code, err: err, hint: "The data was damaged or tampered with. Nothing was saved under the final name. Tell the sender."}
	}
	var insecure *client.InsecureError
	if errors.As(err, &insecure) {
		return &cliError{code: code, err: err, hint: insecureHint}
	}
	return &cliError{code: code, err: err}
}

// ---------------------------------------------------------------------------
// Flags

// listFlag collects repeated list flags; each value may hold several
// entries separated by ';' or ','.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' }) {
		if s := strings.TrimSpace(part); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// parseArgs parses flags anywhere among the arguments; "--" ends the flags.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			tail = args[i+1:]
			args = args[:i]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return append(pos, tail...), nil
}

func newFlags(name, usageText string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fmt.Fprintln(stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

func flagErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err}
}

// serverOpts are the flags every client command has for its server.
type serverOpts struct {
	url          *string
	insecureHTTP *bool
}

// serverFlag adds --server and --insecure-http.
func serverFlag(fs *flag.FlagSet, getenv func(string) string) serverOpts {
	return serverOpts{
		url:          fs.String("server", envOr(getenv, "KLUIS_SERVER", defaultServer), "Kluis server `URL` (default: KLUIS_SERVER, else "+defaultServer+")"),
		insecureHTTP: fs.Bool("insecure-http", false, "allow a plain http:// server on another computer (passwords, codes and tokens cross the network unencrypted)"),
	}
}

// newClient makes the client for server (the --server value, or the
// server of a link), with the --insecure-http choice of so.
func newClient(server string, so serverOpts) (*client.Client, error) {
	var opts []client.Option
	if *so.insecureHTTP {
		opts = append(opts, client.AllowInsecureHTTP())
	}
	c, err := client.New(server, nil, opts...)
	var ie *client.InsecureError
	if errors.As(err, &ie) {
		return nil, fail(exitUsage, insecureHint, "%v", err)
	}
	if err != nil {
		return nil, fail(exitUsage, "Give the server as --server https://kluis.example.nl or in KLUIS_SERVER.", "%v", err)
	}
	c.UserAgent = "kluis-cli/" + version
	return c, nil
}

const insecureHint = "Use the server's https:// address. Only on a network you trust completely, give --insecure-http to send anyway."

// ---------------------------------------------------------------------------
// Token store: CONFIG/kluis/token.json, mode 0600, keyed by server URL.

type storedLogin struct {
	Token     string    `json:"token"`
	Email     string    `json:"email"`
	ExpiresAt time.Time `json:"expires_at"`
}

type tokenFile struct {
	Servers map[string]storedLogin `json:"servers"`
}

func configDir(getenv func(string) string) (string, error) {
	if d := getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "kluis"), nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fail(exitUsage, "Set HOME or XDG_CONFIG_HOME.", "no folder for the login: %v", err)
	}
	return filepath.Join(d, "kluis"), nil
}

func cacheDir(getenv func(string) string) (string, error) {
	if d := getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "kluis"), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fail(exitUsage, "Set HOME or XDG_CACHE_HOME.", "no folder for the upload state: %v", err)
	}
	return filepath.Join(d, "kluis"), nil
}

func serverKey(server string) string { return strings.TrimRight(server, "/") }

func readTokens(getenv func(string) string) (*tokenFile, string, error) {
	dir, err := configDir(getenv)
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, "token.json")
	tf := &tokenFile{Servers: map[string]storedLogin{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return tf, path, nil
	}
	if err != nil {
		return nil, "", err
	}
	if err := json.Unmarshal(b, tf); err != nil {
		return nil, "", fail(exitUsage, "Delete the file and log in again.", "%s is damaged: %v", path, err)
	}
	if tf.Servers == nil {
		tf.Servers = map[string]storedLogin{}
	}
	return tf, path, nil
}

func writeTokens(path string, tf *tokenFile) error {
	b, err := json.MarshalIndent(tf, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// writeFileAtomic writes a private file (0600, folder 0700) by rename.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// senderToken returns the API key (--api-key, KLUIS_API_KEY) or the stored
// login for server.
func senderToken(getenv func(string) string, server, apiKey string) (string, error) {
	if apiKey == "" {
		apiKey = getenv("KLUIS_API_KEY")
	}
	if apiKey != "" {
		return apiKey, nil
	}
	tf, _, err := readTokens(getenv)
	if err != nil {
		return "", err
	}
	l, ok := tf.Servers[serverKey(server)]
	if !ok || l.Token == "" {
		return "", fail(exitAuth, "Log in with `kluis login --email ADDRESS --server "+serverKey(server)+"`, or give an API key with --api-key or KLUIS_API_KEY.", "you are not logged in at %s", serverKey(server))
	}
	if !l.ExpiresAt.IsZero() && time.Now().After(l.ExpiresAt) {
		return "", fail(exitAuth, "Log in again with `kluis login --email "+l.Email+"`.", "your login at %s ended on %s", serverKey(server), l.ExpiresAt.Local().Format("2006-01-02 15:04"))
	}
	return l.Token, nil
}

// ---------------------------------------------------------------------------
// Small helpers

func isTerminal(f any) bool {
	if ff, ok := f.(*os.File); ok {
		return termIsTerminal(int(ff.Fd()))
	}
	return false
}

func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

// readSecretFile reads a password file, dropping one trailing newline.
func trimOneNewline(s string) string {
	if strings.HasSuffix(s, "\r\n") {
		return s[:len(s)-2]
	}
	return strings.TrimSuffix(s, "\n")
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
