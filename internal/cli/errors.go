package cli

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/client"
	"github.com/kluis-nl/kluis/internal/config"
)

// Exit codes. They are fixed: scripts rely on them (README, "Exit codes").
const (
	exitOK        = 0 // success, also --help
	exitUsage     = 1 // usage: wrong flags or arguments, missing or existing local files
	exitRefused   = 2 // refused by the server's rules: policy, forbidden, expired, revoked, unknown link, too large, conflict
	exitAuth      = 3 // authentication: not logged in, invalid token or API key, wrong password, locked
	exitNetwork   = 4 // network: server unreachable, connection broke off, server unavailable or failing, interrupted
	exitIntegrity = 5 // integrity: tampered or corrupt data (nothing was saved under the final name)
	exitMalware   = 6 // the server's malware check found malware in a file; nothing was sent
)

// cliError is an error for a person: a message and a hint saying what to
// do, both in the person's language, and the exit code.
type cliError struct {
	code int
	msg  string
	hint string
	err  error // the cause, if any, for errors.Is and errors.As
}

func (e *cliError) Error() string {
	if e.hint == "" {
		return e.msg
	}
	return e.msg + "\n" + e.hint
}

func (e *cliError) Unwrap() error { return e.err }

// fail returns an error with code, the text of key and a hint (already
// in the person's language, or "").
func (a *app) fail(code int, hint, key string, args ...any) error {
	return &cliError{code: code, msg: a.p.T(key, args...), hint: hint}
}

// usageError is exit 1 with msg; the hint points at the help of cmd
// ("send", "admin apikey"), or at kluis help when cmd is "".
func (a *app) usageError(cmd, msg string) error {
	hint := a.p.T("cli.hint.help")
	if cmd != "" {
		hint = a.p.T("cli.hint.help_cmd", cmd)
	}
	return &cliError{code: exitUsage, msg: msg, hint: hint}
}

// apiText are the texts of the server's error codes: what happened, and
// what to do, by who asked ("" the default, "recipient", "login").
var apiText = map[string]map[string]struct{ msg, hint string }{
	"unauthorized": {
		"":          {"cli.api.unauthorized", "cli.hint.login"},
		"recipient": {"cli.api.session_ended", "cli.hint.run_again"},
		"login":     {"cli.api.no_code_waiting", "cli.hint.new_code"},
		"sso":       {"cli.api.sso_refused", "cli.hint.sso_again"},
	},
	"wrong_password": {
		"":      {"cli.api.wrong_password", "cli.hint.wrong_password"},
		"login": {"cli.api.wrong_code", "cli.hint.retype_code"},
		"inbox": {"cli.api.wrong_passphrase", "cli.hint.wrong_passphrase"},
	},
	"locked": {
		"":      {"cli.api.locked", "cli.hint.locked"}, // with a date when the server gives one
		"login": {"cli.api.code_locked", "cli.hint.new_code"},
	},
	"expired": {
		"":      {"cli.api.expired", "cli.hint.send_again"},
		"login": {"cli.api.code_expired", "cli.hint.new_code"},
	},
	"revoked": {"": {"cli.api.revoked", "cli.hint.send_again"}},
	"not_found": {
		"":          {"cli.api.not_found", "cli.hint.check_transfer"},
		"recipient": {"cli.api.link_not_found", "cli.hint.check_link"},
		"request":   {"cli.api.request_not_found", "cli.hint.check_request"},
		"inbox":     {"cli.api.request_not_found", "cli.hint.check_request"},
	},
	"forbidden":            {"": {"cli.api.forbidden", "cli.hint.rules"}},
	"policy":               {"": {"cli.api.policy", "cli.hint.rules"}},
	"too_large":            {"": {"cli.api.too_large", "cli.hint.smaller"}},
	"too_many_segments":    {"": {"cli.api.too_many_segments", "cli.hint.run_again"}},
	"quota_exceeded":       {"": {"cli.api.quota_exceeded", "cli.hint.quota"}},
	"integrity":            {"": {"cli.api.integrity", "cli.hint.integrity_server"}},
	"unavailable":          {"": {"cli.api.unavailable", "cli.hint.busy"}},
	"rate_limited":         {"": {"cli.api.rate_limited", "cli.hint.busy"}},
	"insufficient_storage": {"": {"cli.api.insufficient_storage", "cli.hint.storage_full"}},
	"internal":             {"": {"cli.api.internal", "cli.hint.server_failed"}},
	"invalid":              {"": {"cli.api.invalid", "cli.hint.correct_input"}},
	"conflict": {
		"":        {"cli.api.conflict", "cli.hint.check_status"},
		"request": {"cli.api.conflict", "cli.hint.request_conflict"},
	},
	"infected":          {"": {"cli.api.infected", "cli.hint.infected"}},
	"too_large_to_scan": {"": {"cli.api.too_large_to_scan", "cli.hint.too_large_to_scan"}},
	"scan_pending":      {"": {"cli.api.scan_pending", "cli.hint.busy"}},
}

// exitOf is the exit code of an error of the server or the client library.
func exitOf(err error) (int, bool) {
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
	var ie *client.IntegrityError
	var insecure *client.InsecureError
	var ke *kluis.Error
	switch {
	case errors.As(err, &ne), errors.Is(err, context.Canceled):
		return exitNetwork, true
	case errors.As(err, &ie):
		return exitIntegrity, true
	case errors.As(err, &insecure), errors.Is(err, client.ErrServerURL):
		return exitUsage, true
	case errors.Is(err, client.ErrUnexpectedAnswer):
		return exitNetwork, true
	case errors.As(err, &ke):
		// The administration commands call the engine directly.
		switch ke.Code {
		case kluis.EUNAUTHORIZED, kluis.EWRONGSECRET, kluis.ELOCKED:
			return exitAuth, true
		case kluis.EINTEGRITY:
			return exitIntegrity, true
		case kluis.EUNAVAILABLE, kluis.ENOSPACE, kluis.ETOOMANYREQUESTS:
			return exitNetwork, true
		case kluis.EINTERNAL, kluis.EINVALID:
			return exitUsage, true
		}
		return exitRefused, true
	}
	return 0, false
}

// explain turns any error into a cliError in the person's language, with a
// hint saying what to do. who is "sender" or "recipient" where the hint
// differs, else "".
func (a *app) explain(err error, who string) *cliError {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce
	}
	code, ok := exitOf(err)
	if !ok {
		code = exitUsage
	}
	var ae *client.APIError
	var ne *client.NetError
	var ie *client.IntegrityError
	var insecure *client.InsecureError
	var se *config.SettingError
	var ke *kluis.Error
	switch {
	case errors.As(err, &ae):
		return a.explainAPI(ae, code, who)
	case errors.As(err, &ne) && errors.Is(err, context.Canceled), errors.Is(err, context.Canceled):
		return &cliError{code: code, msg: a.p.T("cli.err.interrupted"), hint: a.p.T("cli.hint.run_again"), err: err}
	case errors.As(err, &ne):
		return &cliError{code: code, msg: a.p.T("cli.err.network", ne.Error()), hint: a.p.T("cli.hint.network"), err: err}
	case errors.As(err, &ie):
		return &cliError{code: code, msg: ie.Msg, hint: a.p.T("cli.hint.integrity_local"), err: err}
	case errors.As(err, &insecure):
		key := "cli.err.insecure"
		if insecure.Redirect {
			key = "cli.err.insecure_redirect"
		}
		return &cliError{code: code, msg: a.p.T(key, insecure.URL), hint: a.p.T("cli.hint.insecure"), err: err}
	case errors.Is(err, client.ErrServerURL):
		return &cliError{code: code, msg: a.p.T("cli.err.server_url"), hint: a.p.T("cli.hint.server_url"), err: err}
	case errors.Is(err, client.ErrUnexpectedAnswer):
		return &cliError{code: code, msg: a.p.T("cli.err.unexpected_answer", err.Error()), hint: a.p.T("cli.hint.unexpected_answer"), err: err}
	case errors.As(err, &se):
		return &cliError{code: exitUsage, msg: a.settingText(se), err: err}
	case errors.As(err, &ke) && ke.Code != kluis.EINTERNAL:
		// The engine's messages are in English until they become keys.
		return &cliError{code: code, msg: visible(ke.Message), err: err}
	}
	return &cliError{code: code, msg: a.fileText(err), err: err}
}

func (a *app) explainAPI(ae *client.APIError, code int, who string) *cliError {
	msg, hint := a.p.T("cli.api.other", ae.Status), ""
	if texts, ok := apiText[ae.Code]; ok {
		t, ok := texts[who]
		if !ok {
			t = texts[""]
		}
		msg, hint = a.p.T(t.msg), a.p.T(t.hint)
		if ae.Code == "locked" && who != "login" && ae.At != nil {
			hint = a.p.T("cli.hint.locked_until", a.p.Date(*ae.At))
		}
	}
	if ae.Message != "" {
		// The server's own words say what exactly; a server may send
		// anything, so control characters are made visible.
		msg += "\n" + a.p.T("cli.api.server_says", visible(ae.Message))
	}
	return &cliError{code: code, msg: msg, hint: hint, err: ae}
}

// settingText is a SettingError in the person's language.
func (a *app) settingText(se *config.SettingError) string {
	switch se.Problem {
	case config.ProblemBoth:
		v := strings.TrimSuffix(se.Setting, "_FILE")
		return a.p.T("cli.err.setting_both", v, se.Setting)
	case config.ProblemUnreadable:
		return a.p.T("cli.err.setting_unreadable", se.Setting, a.fileText(se.Err))
	case config.ProblemEmpty:
		return a.p.T("cli.err.setting_empty", se.Setting)
	case config.ProblemDBForm:
		return a.p.T("cli.err.setting_db", se.Setting)
	}
	return se.Error()
}

// fileText says what went wrong with a file in the person's language where
// the cause is a common one; other errors keep the system's own words.
func (a *app) fileText(err error) string {
	var reason string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		reason = a.p.T("cli.file.not_exist")
	case errors.Is(err, fs.ErrPermission):
		reason = a.p.T("cli.file.permission")
	case errors.Is(err, fs.ErrExist):
		reason = a.p.T("cli.file.exists")
	case errors.Is(err, syscall.EISDIR):
		reason = a.p.T("cli.file.is_dir")
	case errors.Is(err, syscall.ENOSPC):
		reason = a.p.T("cli.file.no_space")
	default:
		return err.Error()
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return a.p.T("cli.file.problem", pe.Path, reason)
	}
	return reason
}
