package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/client"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// sendRequest is what kluis send was asked to do, checked.
type sendRequest struct {
	to, cc, bcc              listFlag
	message, subject, body   string
	reference                string
	expires                  string // as given, for the resume key
	expiresAt                *time.Time
	lang                     string
	confirm, notify, showAll bool
	notifyMode               string // --notify; the server checks it
	mode, password           string // password mode "generate", "manual" or "none"
	files                    []sendFile
	total                    int64
	apiKey                   string
	json                     bool
	logins                   map[string]client.RecipientLogin // --recipient-login
	phones                   map[string]client.RecipientAuth  // --recipient-phone
	special                  bool                             // --special-data
}

type sendFile struct {
	path  string // absolute
	name  string
	size  int64
	mtime time.Time
}

// send is kluis send: create a transfer, upload its files over tus
// (resuming an earlier run of the same command), and finish it.
func (a *app) send(ctx context.Context, args []string) error {
	f := a.flags("send", "cli.send.usage")
	server := f.serverFlags()
	req, err := a.sendFlags(f, args)
	if err != nil {
		return err
	}
	c, err := a.newClient(*server.url, server)
	if err != nil {
		return err
	}
	token, err := a.senderToken(c.Base(), req.apiKey)
	if err != nil {
		return err
	}
	statePath, err := a.sendStatePath(c, req)
	if err != nil {
		return err
	}
	st, resumed, err := a.loadSendState(ctx, c, statePath, req.files)
	if err != nil {
		return err
	}
	if st != nil && !resumed {
		// Finished earlier; the state was not removed.
		t, err := c.Transfer(ctx, st.UploadToken, st.TransferID)
		if err != nil {
			return a.explain(err, "sender")
		}
		os.Remove(statePath)
		fmt.Fprintln(a.io.Err, "kluis: "+a.p.T("cli.send.already_sent"))
		return a.printSendResult(req.json, t, "", nil)
	}
	var password string
	if st == nil {
		if st, password, err = a.createTransfer(ctx, c, token, req, statePath); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(a.io.Err, "kluis: "+a.p.T("cli.send.continuing", st.TransferID))
		if st.Generated {
			fmt.Fprintln(a.io.Err, "kluis: "+a.p.T("cli.send.password_not_again"))
		}
	}
	prog := a.newProgress(req.total)
	for i := range req.files {
		if err := a.uploadFile(ctx, c, st, statePath, i, req.files[i], prog); err != nil {
			prog.finish()
			return a.explain(err, "sender")
		}
	}
	prog.finish()
	fin, err := c.Finish(ctx, st.UploadToken, st.TransferID, st.LinkSecret)
	if err != nil {
		if client.Code(err) == "conflict" {
			// Finished by an earlier run whose answer was lost?
			if t, terr := c.Transfer(ctx, st.UploadToken, st.TransferID); terr == nil && (t.State == "ready" || t.State == "scanning") {
				os.Remove(statePath)
				return a.printSendResult(req.json, t, password, nil)
			}
		}
		if code := client.Code(err); code == "infected" || code == "too_large_to_scan" {
			// The server removed the refused file and keeps the transfer
			// open. Running the same command again would resume it and
			// send the other files without the sender having chosen so;
			// cancel it instead, so a new run starts afresh.
			if _, rerr := c.Revoke(ctx, st.UploadToken, st.TransferID, ""); rerr == nil {
				os.Remove(statePath)
			}
			return a.scanRefused(err, req)
		}
		return a.explain(err, "sender")
	}
	os.Remove(statePath)
	var unscanned []string
	for _, n := range fin.UnscannedFiles {
		// The server numbers files in upload order, which is the order
		// of the arguments.
		if n >= 1 && n <= len(req.files) {
			unscanned = append(unscanned, req.files[n-1].name)
		}
	}
	return a.printSendResult(req.json, &fin.Transfer, password, unscanned)
}

// sendFlags parses and checks the flags and files of kluis send, and reads
// the message, the mail text and the password.
func (a *app) sendFlags(f *flagSet, args []string) (*sendRequest, error) {
	r := &sendRequest{}
	to := f.List("to", "cli.ph.list", "cli.flag.to")
	cc := f.List("cc", "cli.ph.list", "cli.flag.cc")
	bcc := f.List("bcc", "cli.ph.list", "cli.flag.bcc")
	logins := f.List("recipient-login", "cli.ph.recipient_login", "cli.flag.recipient_login")
	phones := f.List("recipient-phone", "cli.ph.recipient_phone", "cli.flag.recipient_phone")
	special := f.Bool("special-data", "cli.flag.special_data")
	message := f.String("message", "cli.ph.text", "cli.flag.message")
	messageFile := f.String("message-file", "cli.ph.file", "cli.flag.message_file")
	subject := f.String("subject", "cli.ph.text", "cli.flag.subject")
	reference := f.String("reference", "cli.ph.text", "cli.flag.reference")
	body := f.String("body", "cli.ph.text", "cli.flag.body")
	bodyFile := f.String("body-file", "cli.ph.file", "cli.flag.body_file")
	expires := f.String("expires", "cli.ph.when", "cli.flag.expires")
	lang := f.Lang("cli.flag.send_lang")
	confirm := f.Bool("confirm", "cli.flag.confirm")
	notify := f.Bool("notify-download", "cli.flag.notify_download")
	notifyMode := f.String("notify", "cli.ph.notify", "cli.flag.notify")
	showNames := f.Bool("show-filenames", "cli.flag.show_filenames")
	pwGen := f.Bool("password-generate", "cli.flag.password_generate")
	secret := f.secretFlags()
	noPw := f.Bool("no-password", "cli.flag.no_password")
	apiKey := f.apiKeyFlag()
	asJSON := f.Bool("json", "cli.flag.send_json")
	files, err := f.parse(args)
	if err != nil {
		return nil, err
	}
	r.to, r.cc, r.bcc = *to, *cc, *bcc
	r.subject, r.reference, r.expires, r.lang = *subject, *reference, *expires, *lang
	r.confirm, r.notify, r.showAll = *confirm, *notify, *showNames
	r.notifyMode = *notifyMode
	r.apiKey, r.json = *apiKey, *asJSON
	if len(r.to)+len(r.cc)+len(r.bcc) == 0 {
		return nil, f.usageError("cli.send.no_recipient")
	}
	for _, l := range *logins {
		addr, ra, err := transfer.ParseRecipientAuth(kluis.AuthPasswordLogin, l)
		if err != nil || ra.Login == "" {
			return nil, f.usageError("cli.send.recipient_login", l)
		}
		if r.logins == nil {
			r.logins = map[string]client.RecipientLogin{}
		}
		r.logins[addr] = client.RecipientLogin{Provider: ra.Login, Value: ra.LoginValue}
	}
	for _, l := range *phones {
		addr, ra, err := transfer.ParseRecipientAuth(kluis.AuthPasswordSMS, l)
		if err != nil {
			return nil, f.usageError("cli.send.recipient_phone", l)
		}
		if r.phones == nil {
			r.phones = map[string]client.RecipientAuth{}
		}
		r.phones[addr] = client.RecipientAuth{Method: string(ra.Method), Phone: ra.Phone}
	}
	r.special = *special
	n := 0
	for _, b := range []bool{*pwGen, *secret.file != "", *secret.stdin, *noPw} {
		if b {
			n++
		}
	}
	if n != 1 {
		return nil, f.usageError("cli.send.password_choice")
	}
	if *message != "" && *messageFile != "" {
		return nil, f.usageError("cli.err.not_both", "--message", "--message-file")
	}
	if *body != "" && *bodyFile != "" {
		return nil, f.usageError("cli.err.not_both", "--body", "--body-file")
	}
	if len(files) == 0 && *message == "" && *messageFile == "" {
		return nil, f.usageError("cli.send.nothing")
	}
	if r.message, err = a.textOrFile(f, *message, *messageFile, "cli.send.read_message"); err != nil {
		return nil, err
	}
	if r.body, err = a.textOrFile(f, *body, *bodyFile, "cli.send.read_body"); err != nil {
		return nil, err
	}
	if *expires != "" {
		t, err := a.parseExpiry(*expires, time.Now())
		if err != nil {
			return nil, f.usageError("cli.send.expires", err.Error())
		}
		r.expiresAt = &t
	}
	if err := a.sendFiles(f, r, files); err != nil {
		return nil, err
	}
	r.mode = "generate"
	switch {
	case *noPw:
		r.mode = "none"
	case secret.given():
		r.mode = "manual"
		if r.password, err = a.readSecret(f, secret, ""); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// textOrFile is text, or the contents of file when that is given.
func (a *app) textOrFile(f *flagSet, text, file, key string) (string, error) {
	if file == "" {
		return text, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", f.usageError(key, a.fileText(err))
	}
	return string(b), nil
}

// sendFiles checks the files to send: regular files, each given once.
func (a *app) sendFiles(f *flagSet, r *sendRequest, files []string) error {
	seen := map[string]bool{}
	for _, name := range files {
		abs, err := filepath.Abs(name)
		if err != nil {
			return f.usageError("cli.send.file_error", name, a.fileText(err))
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return f.usageError("cli.send.cannot_read", name, a.fileText(errors.Unwrap(err)))
		}
		if !fi.Mode().IsRegular() {
			return f.usageError("cli.send.not_regular", name)
		}
		if seen[abs] {
			return f.usageError("cli.send.twice", name)
		}
		seen[abs] = true
		r.files = append(r.files, sendFile{path: abs, name: filepath.Base(abs), size: fi.Size(), mtime: fi.ModTime()})
		r.total += fi.Size()
	}
	return nil
}

// parseExpiry reads "14d", a Go duration ("36h", "90m") or a date
// YYYY-MM-DD (until the end of that day, local time).
func (a *app) parseExpiry(s string, now time.Time) (time.Time, error) {
	if strings.HasSuffix(s, "d") {
		if n, err := strconv.Atoi(strings.TrimSuffix(s, "d")); err == nil && n > 0 {
			return now.Add(time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d), nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		t = t.AddDate(0, 0, 1).Add(-time.Second)
		if !t.After(now) {
			return time.Time{}, errors.New(a.p.T("cli.send.expires_past", s))
		}
		return t, nil
	}
	return time.Time{}, errors.New(a.p.T("cli.send.expires_form", s))
}

// sendStatePath is the file of the resume state: the same command on the
// same files (unchanged) finds its earlier, unfinished transfer.
func (a *app) sendStatePath(c *client.Client, r *sendRequest) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "kluis-send-v1\x00%s\x00%s\x00", serverKey(c.Base()), r.mode)
	for _, l := range []listFlag{r.to, r.cc, r.bcc} {
		fmt.Fprintf(h, "%q\x00", []string(l))
	}
	fmt.Fprintf(h, "%q\x00%q\x00%q\x00%q\x00%q\x00%v%v%v\x00", r.message, r.subject, r.body, r.expires, r.lang, r.confirm, r.notify, r.showAll)
	if r.reference != "" {
		// Only when set, so a send interrupted before the upgrade still
		// finds its resume state.
		fmt.Fprintf(h, "reference=%q\x00", r.reference)
	}
	if r.notifyMode != "" { // only then, so state saved before --notify still matches
		fmt.Fprintf(h, "notify=%q\x00", r.notifyMode)
	}
	for _, f := range r.files {
		fmt.Fprintf(h, "%q\x00%d\x00%d\x00", f.path, f.size, f.mtime.UnixNano())
	}
	dir, err := a.cacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "uploads", hex.EncodeToString(h.Sum(nil))[:32]+".json"), nil
}

// createTransfer creates the transfer and saves its resume state. It
// returns the generated password, if any.
func (a *app) createTransfer(ctx context.Context, c *client.Client, token string, r *sendRequest, statePath string) (*sendState, string, error) {
	req := &client.CreateRequest{
		To: r.to, Cc: r.cc, Bcc: r.bcc, Message: r.message, Subject: r.subject, Reference: r.reference, Body: r.body,
		ExpiresAt: r.expiresAt, Lang: r.lang,
		Password:       client.Password{Mode: r.mode, Value: r.password},
		Options:        client.Options{Confirm: r.confirm, NotifyDownload: r.notify, Notify: r.notifyMode, ShowFilenames: r.showAll, SpecialData: r.special},
		RecipientLogin: r.logins,
		RecipientAuth:  r.phones,
	}
	cr, err := c.CreateTransfer(ctx, token, req)
	if err != nil {
		return nil, "", a.explain(err, "sender")
	}
	if cr.MaxSize > 0 && r.total > cr.MaxSize {
		return nil, "", a.fail(exitRefused, a.p.T("cli.hint.smaller"), "cli.send.too_large", a.p.Size(r.total), a.p.Size(cr.MaxSize))
	}
	st := &sendState{Server: serverKey(c.Base()), TransferID: cr.ID, UploadToken: cr.UploadToken, LinkSecret: cr.LinkSecret, Generated: cr.Password != "", ExpiresAt: cr.ExpiresAt}
	for _, f := range r.files {
		st.Files = append(st.Files, fileState{Path: f.path, Size: f.size})
	}
	if cr.Password != "" && !r.json {
		// Shown before the state is saved: a state that says "shown"
		// never belongs to a password nobody saw.
		fmt.Fprintln(a.io.Out, a.p.T("cli.send.password", cr.Password))
		st.PasswordShown = true
	}
	if err := saveSendState(statePath, st); err != nil {
		return nil, "", a.fail(exitUsage, "", "cli.send.state_save", a.fileText(err))
	}
	return st, cr.Password, nil
}

type sendJSON struct {
	ID         string          `json:"id"`
	Recipients []recipientJSON `json:"recipients"`
	ExpiresAt  string          `json:"expires_at"`
	Password   string          `json:"password,omitempty"`
	// Unscanned names the files sent without a malware scan (policy).
	Unscanned []string `json:"unscanned_files,omitempty"`
}

type recipientJSON struct {
	Address string `json:"address"`
	Kind    string `json:"kind"`
	Status  string `json:"status"`
}

func (a *app) printSendResult(asJSON bool, t *client.Transfer, password string, unscanned []string) error {
	if len(unscanned) > 0 {
		fmt.Fprintln(a.io.Err, "kluis: "+a.p.T("cli.send.unscanned", strings.Join(unscanned, ", ")))
	}
	if asJSON {
		out := sendJSON{ID: t.ID, ExpiresAt: t.ExpiresAt.UTC().Format(time.RFC3339), Password: password, Recipients: []recipientJSON{}, Unscanned: unscanned}
		for _, r := range t.Recipients {
			out.Recipients = append(out.Recipients, recipientJSON{Address: r.Address, Kind: r.Kind, Status: r.Status})
		}
		return writeJSON(a.io.Out, out)
	}
	w := a.io.Out
	if t.State == "scanning" {
		// Finished, but held until the malware scan can run (fail-closed).
		fmt.Fprintln(w, a.p.T("cli.send.scanning", t.ID))
	} else {
		fmt.Fprintln(w, a.p.T("cli.send.sent", t.ID, a.p.Date(t.ExpiresAt)))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range t.Recipients {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", a.kindText(r.Kind), visible(r.Address), a.recipientStatus(r.Status))
	}
	tw.Flush()
	fmt.Fprintln(w, a.p.T("cli.send.next", t.ID))
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// scanRefused is the server's malware refusal of one of the files, named
// as the person gave it (the server numbers the files in upload order,
// which is the order of the arguments), with what the scanner found.
// Malware is exit 6, so that a script can tell it from other refusals
// (and, say, quarantine the file); a file too large to check is exit 2.
func (a *app) scanRefused(err error, req *sendRequest) error {
	ce := a.explain(err, "sender")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.File < 1 || ae.File > len(req.files) {
		return ce // a server that does not say which file
	}
	name := visible(req.files[ae.File-1].path)
	if ae.Code == "infected" {
		finding := visible(ae.Finding)
		if finding == "" {
			finding = "?"
		}
		return &cliError{code: exitMalware, msg: a.p.T("cli.send.infected", name, finding), hint: a.p.T("cli.hint.infected_file", name), err: err}
	}
	return &cliError{code: ce.code, msg: a.p.T("cli.send.too_large_to_scan", name), hint: ce.hint, err: err}
}
