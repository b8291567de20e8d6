package cli

// kluis request and kluis inbox (issue 17): ask people for files, follow
// and withdraw the requests, and set the inbox passphrase that what they
// send is encrypted for. kluis receive opens what was sent (receive.go).

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/kluis-nl/kluis/internal/client"
)

// textFlag collects a repeated flag whose values are kept whole (a
// comma is part of the text).
type textFlag []string

func (l *textFlag) String() string { return strings.Join(*l, "\n") }
func (l *textFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// senderClient is the client and the sender's token (login or API key)
// of a command.
func (a *app) senderClient(server serverFlags, apiKey string) (*client.Client, string, error) {
	c, err := a.newClient(*server.url, server)
	if err != nil {
		return nil, "", err
	}
	token, err := a.senderToken(c.Base(), apiKey)
	if err != nil {
		return nil, "", err
	}
	return c, token, nil
}

// request is kluis request: make requests, or list, show or withdraw them.
func (a *app) request(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "list":
			return a.requestList(ctx, args[1:])
		case "status":
			return a.requestStatus(ctx, args[1:])
		case "revoke":
			return a.requestRevoke(ctx, args[1:])
		}
	}
	f := a.flags("request", "cli.request.usage")
	server := f.serverFlags()
	apiKey := f.apiKeyFlag()
	to := f.List("to", "cli.ph.list", "cli.flag.request_to")
	var mobile textFlag
	f.fs.Var(&mobile, "mobile", f.describe("mobile", "cli.ph.mobile", "cli.flag.request_mobile", nil))
	message := f.String("message", "cli.ph.text", "cli.flag.request_message")
	var ask textFlag
	f.fs.Var(&ask, "ask", f.describe("ask", "cli.ph.text", "cli.flag.ask", nil))
	deadline := f.String("deadline", "cli.ph.date", "cli.flag.deadline")
	lang := f.Lang("cli.flag.request_lang")
	asJSON := f.Bool("json", "cli.flag.request_json")
	if err := f.parseNone(args); err != nil {
		return err
	}
	if len(*to) == 0 {
		return f.usageError("cli.request.no_to")
	}
	if strings.TrimSpace(*message) == "" && len(ask) == 0 {
		return f.usageError("cli.request.no_message")
	}
	// --mobile NUMBER is for the only address; --mobile ADDRESS=NUMBER
	// names it (the server checks both against the addresses).
	var mobiles map[string]string
	for _, m := range mobile {
		addr, number, named := strings.Cut(m, "=")
		if !named {
			addr, number = "", m
		}
		if mobiles == nil {
			mobiles = map[string]string{}
		}
		if _, dup := mobiles[strings.ToLower(strings.TrimSpace(addr))]; dup || strings.TrimSpace(number) == "" || named && strings.TrimSpace(addr) == "" {
			return f.usageError("cli.request.mobile_form", m)
		}
		mobiles[strings.ToLower(strings.TrimSpace(addr))] = number
	}
	c, token, err := a.senderClient(server, *apiKey)
	if err != nil {
		return err
	}
	frs, err := c.CreateFileRequests(ctx, token, &client.FileRequestCreate{To: *to, Message: *message, Ask: ask, ExpiresOn: *deadline, Lang: *lang,
		Mobile: mobiles})
	if err != nil {
		return a.explain(err, "request")
	}
	if *asJSON {
		return writeJSON(a.io.Out, map[string]any{"requests": frs})
	}
	for _, r := range frs {
		fmt.Fprintln(a.io.Out, a.p.T("cli.request.made", visible(r.Address), r.ID, a.date(&r.ExpiresAt)))
	}
	fmt.Fprintln(a.io.Out, a.p.T("cli.request.made_next"))
	return nil
}

func (a *app) requestList(ctx context.Context, args []string) error {
	f := a.flags("request list", "cli.request.list_usage")
	server := f.serverFlags()
	apiKey := f.apiKeyFlag()
	asJSON := f.Bool("json", "cli.flag.request_json")
	if err := f.parseNone(args); err != nil {
		return err
	}
	c, token, err := a.senderClient(server, *apiKey)
	if err != nil {
		return err
	}
	frs, err := c.FileRequests(ctx, token)
	if err != nil {
		return a.explain(err, "request")
	}
	if *asJSON {
		return writeJSON(a.io.Out, map[string]any{"requests": frs})
	}
	if len(frs) == 0 {
		fmt.Fprintln(a.io.Out, a.p.T("cli.request.none"))
		return nil
	}
	tw := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, a.p.T("cli.request.list_header"))
	for _, r := range frs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, a.requestStateText(r.State), a.date(&r.CreatedAt), a.date(&r.ExpiresAt), r.Files, visible(r.Address))
	}
	return tw.Flush()
}

// oneRequest parses the flags of a command on one request (request status,
// request revoke) and returns the client, the sender's token and the id;
// asJSON, if not nil, is set by --json.
func (a *app) oneRequest(cmd, usage string, args []string, asJSON *bool) (*client.Client, string, string, error) {
	f := a.flags(cmd, usage)
	server := f.serverFlags()
	apiKey := f.apiKeyFlag()
	if asJSON != nil {
		f.fs.BoolVar(asJSON, "json", false, f.describe("json", "", "cli.flag.request_json", nil))
	}
	pos, err := f.parse(args)
	if err != nil {
		return nil, "", "", err
	}
	if len(pos) != 1 {
		return nil, "", "", f.usageError("cli.request.one_id")
	}
	c, token, err := a.senderClient(server, *apiKey)
	return c, token, pos[0], err
}

func (a *app) requestStatus(ctx context.Context, args []string) error {
	var asJSON bool
	c, token, id, err := a.oneRequest("request status", "cli.request.status_usage", args, &asJSON)
	if err != nil {
		return err
	}
	r, err := c.FileRequest(ctx, token, id)
	if err != nil {
		return a.explain(err, "request")
	}
	if asJSON {
		return writeJSON(a.io.Out, r)
	}
	fmt.Fprintln(a.io.Out, a.p.T("cli.request.heading", r.ID, visible(r.Address), a.requestStateText(r.State)))
	tw := tabwriter.NewWriter(a.io.Out, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "  %s\t%s\n", a.p.T("cli.status.created"), a.date(&r.CreatedAt))
	fmt.Fprintf(tw, "  %s\t%s\n", a.p.T("cli.request.until"), a.date(&r.ExpiresAt))
	if r.DoneAt != nil {
		fmt.Fprintf(tw, "  %s\t%s\n", a.p.T("cli.status.sent"), a.date(r.DoneAt))
	}
	if r.RevokedAt != nil {
		fmt.Fprintf(tw, "  %s\t%s\n", a.p.T("cli.status.revoked"), a.date(r.RevokedAt))
	}
	fmt.Fprintf(tw, "  %s\t%d\n", a.p.T("cli.request.files"), r.Files)
	if r.SMS != nil {
		text := visible(r.SMS.State)
		if k, ok := requestSMSKeys[r.SMS.State]; ok {
			text = a.p.T(k, visible(r.SMS.To), a.date(r.SMS.At))
		}
		fmt.Fprintf(tw, "  %s\t%s\n", a.p.T("cli.request.sms"), text)
	}
	if r.Result != nil {
		fmt.Fprintf(tw, "  %s\t%s\n", a.p.T("cli.request.open_until"), a.date(&r.Result.ExpiresAt))
		fmt.Fprintf(tw, "  %s\t%s\n", a.p.T("cli.request.opened"), a.date(r.Result.OpenedAt))
	}
	tw.Flush()
	if r.Message != "" {
		fmt.Fprintf(a.io.Out, "\n%s\n%s\n", a.p.T("cli.request.asked"), strings.TrimRight(visible(r.Message), "\n"))
	}
	if r.Result != nil {
		fmt.Fprintln(a.io.Out, "\n"+a.p.T("cli.request.receive_hint", r.ID))
	}
	return nil
}

func (a *app) requestRevoke(ctx context.Context, args []string) error {
	c, token, id, err := a.oneRequest("request revoke", "cli.request.revoke_usage", args, nil)
	if err != nil {
		return err
	}
	r, err := c.RevokeFileRequest(ctx, token, id)
	if err != nil {
		return a.explain(err, "request")
	}
	fmt.Fprintln(a.io.Out, a.p.T("cli.request.revoked", r.ID, visible(r.Address)))
	return nil
}

func (a *app) requestStateText(v string) string { return a.word(requestStateKeys, v) }

var requestSMSKeys = map[string]string{
	"queued": "cli.request.sms_queued", "sent": "cli.request.sms_sent", "failed": "cli.request.sms_failed",
}

var requestStateKeys = map[string]string{
	"open": "cli.request.state_open", "done": "cli.request.state_done",
	"revoked": "cli.request.state_revoked", "expired": "cli.request.state_expired",
}

// passphraseFlags are --passphrase-file and --passphrase-stdin, for the
// inbox passphrase; without them KLUIS_INBOX_PASSPHRASE, else the
// terminal.
func (f *flagSet) passphraseFlags() secretFlags {
	return secretFlags{
		file:  f.String("passphrase-file", "cli.ph.file", "cli.flag.passphrase_file"),
		stdin: f.Bool("passphrase-stdin", "cli.flag.passphrase_stdin"),
	}
}

// readPassphrase reads the inbox passphrase: a flag, else
// KLUIS_INBOX_PASSPHRASE, else the terminal (prompt).
func (a *app) readPassphrase(f *flagSet, s secretFlags, prompt string) (string, error) {
	if !s.given() {
		if v := a.getenv("KLUIS_INBOX_PASSPHRASE"); v != "" {
			return v, nil
		}
	}
	v, err := a.readSecret(f, s, prompt)
	if err == errNoSecret {
		return "", f.usageError("cli.inbox.needs_passphrase")
	}
	return v, err
}

// inbox is kluis inbox: the state of the inbox key, or (create) set the
// inbox passphrase.
func (a *app) inbox(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "passphrase" {
		return a.inboxPassphrase(ctx, args[1:])
	}
	create := len(args) > 0 && args[0] == "create"
	usage := "cli.inbox.usage"
	if create {
		args, usage = args[1:], "cli.inbox.create_usage"
	}
	f := a.flags("inbox", usage)
	server := f.serverFlags()
	var sec secretFlags
	if create {
		sec = f.passphraseFlags()
	}
	if err := f.parseNone(args); err != nil {
		return err
	}
	c, token, err := a.senderClient(server, "")
	if err != nil {
		return err
	}
	if !create {
		st, err := c.Inbox(ctx, token)
		if err != nil {
			return a.explain(err, "")
		}
		if st.Exists {
			fmt.Fprintln(a.io.Out, a.p.T("cli.inbox.exists", st.Recipient))
		} else {
			fmt.Fprintln(a.io.Out, a.p.T("cli.inbox.none"))
		}
		return nil
	}
	pass, err := a.readPassphrase(f, sec, a.p.T("cli.inbox.prompt_new"))
	if err != nil {
		return err
	}
	if !sec.given() && a.getenv("KLUIS_INBOX_PASSPHRASE") == "" {
		again, err := a.readSecret(f, sec, a.p.T("cli.inbox.prompt_again"))
		if err != nil {
			return err
		}
		if again != pass {
			return f.usageError("cli.inbox.mismatch")
		}
	}
	st, err := c.CreateInbox(ctx, token, pass)
	if err != nil {
		return a.explain(err, "")
	}
	fmt.Fprintln(a.io.Out, a.p.T("cli.inbox.created", st.Recipient))
	return nil
}

// inboxPassphrase is kluis inbox passphrase: change the inbox passphrase.
// The old one comes as for opening (a flag, KLUIS_INBOX_PASSPHRASE or the
// terminal); the new one from --new-passphrase-file,
// KLUIS_INBOX_NEW_PASSPHRASE or the terminal (asked twice).
func (a *app) inboxPassphrase(ctx context.Context, args []string) error {
	f := a.flags("inbox passphrase", "cli.inbox.passphrase_usage")
	server := f.serverFlags()
	sec := f.passphraseFlags()
	newFile := f.String("new-passphrase-file", "cli.ph.file", "cli.flag.new_passphrase_file")
	if err := f.parseNone(args); err != nil {
		return err
	}
	c, token, err := a.senderClient(server, "")
	if err != nil {
		return err
	}
	old, err := a.readPassphrase(f, sec, a.p.T("cli.inbox.prompt_old"))
	if err != nil {
		return err
	}
	noStdin := false
	ns := secretFlags{file: newFile, stdin: &noStdin}
	pass := ""
	if !ns.given() {
		pass = a.getenv("KLUIS_INBOX_NEW_PASSPHRASE")
	}
	if pass == "" {
		if pass, err = a.readSecret(f, ns, a.p.T("cli.inbox.prompt_new")); err == errNoSecret {
			return f.usageError("cli.inbox.needs_new_passphrase")
		} else if err != nil {
			return err
		}
		if !ns.given() {
			again, err := a.readSecret(f, ns, a.p.T("cli.inbox.prompt_again"))
			if err != nil {
				return err
			}
			if again != pass {
				return f.usageError("cli.inbox.mismatch")
			}
		}
	}
	if _, err := c.ChangeInboxPassphrase(ctx, token, old, pass); err != nil {
		return a.explain(err, "inbox")
	}
	fmt.Fprintln(a.io.Out, a.p.T("cli.inbox.passphrase_changed"))
	return nil
}

// isRequestLink reports whether s is the link of a request's page
// (http(s)://HOST/requests/ID), as in the mail that says files arrived.
func isRequestLink(s string) bool {
	_, _, ok := requestLink(s)
	return ok
}

func requestLink(s string) (base, id string, ok bool) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		return "", "", false
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "", false
	}
	p := strings.TrimRight(u.Path, "/")
	i := strings.LastIndex(p, "/requests/")
	if i < 0 || p[i+10:] == "" || strings.Contains(p[i+10:], "/") {
		return "", "", false
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: p[:i]}).String(), p[i+10:], true
}

// receiveRequest is kluis receive for what was sent on a request: the
// request's id (--request) or the link of its page; opened with the inbox
// passphrase, which the server uses for this one call.
func (a *app) receiveRequest(ctx context.Context, f *flagSet, server serverFlags, apiKey, id string, pos []string, pass secretFlags, to receiveTo) error {
	base := *server.url
	if id == "" {
		base, id, _ = requestLink(pos[0])
	}
	c, err := a.newClient(base, server)
	if err != nil {
		return err
	}
	token, err := a.senderToken(c.Base(), apiKey)
	if err != nil {
		return err
	}
	r, err := c.FileRequest(ctx, token, id)
	if err != nil {
		return a.explain(err, "request")
	}
	if r.Result == nil {
		return a.fail(exitRefused, a.p.T("cli.hint.request_wait", r.ID), "cli.receive.not_sent", visible(r.Address), a.requestStateText(r.State))
	}
	passphrase, err := a.readPassphrase(f, pass, a.p.T("cli.receive.passphrase_prompt"))
	if err != nil {
		return err
	}
	sess, err := c.OpenFileRequest(ctx, token, r.ID, passphrase)
	if err != nil {
		return a.explain(err, "inbox")
	}
	return a.receiveSession(ctx, c, sess.Session, r.Result.ExpiresAt, to)
}
