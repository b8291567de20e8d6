package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kluis-nl/kluis/internal/client"
	"github.com/kluis-nl/kluis/internal/locale"
)

const sendUsage = `Usage: kluis send --to LIST [--cc LIST] [--bcc LIST]
         [--message TEXT | --message-file FILE] [--subject TEXT] [--body TEXT | --body-file FILE]
         [--expires 14d | YYYY-MM-DD] [--lang CODE] [--confirm] [--notify-download] [--show-filenames]
         (--password-generate | --password-file FILE | --password-stdin | --no-password)
         [--api-key KEY] [--json] [--server URL] [--insecure-http] FILE...

Sends files (and a confidential message) to the recipients. Lists take ';'
or ','; list flags may repeat. Exactly one password choice is required:
--password-generate prints a new password before the upload starts (give it
to the recipients by phone or text message). One trailing newline of a
password file or of standard input is dropped.

If the upload breaks off (network error, Ctrl-C), run the same command again:
it continues where it stopped. The state for that is kept in your cache
folder (kluis/uploads/, readable only by you) until the transfer is sent; it
holds the transfer's upload token (which allows uploading to this one
transfer) and, for --no-password only, the link secret; never a password.
With --json a generated password is printed only at the end: an interrupted
--json run never showed it, so the rerun starts a new transfer instead.
`

// sendState is the resume state of one send; it never holds a password.
type sendState struct {
	Server      string `json:"server"`
	TransferID  string `json:"transfer_id"`
	UploadToken string `json:"upload_token"`
	LinkSecret  string `json:"link_secret,omitempty"` // --no-password only
	Generated   bool   `json:"password_generated,omitempty"`
	// PasswordShown records that a generated password was printed when the
	// transfer was created. With --json it is printed only at the end, so
	// an interrupted --json run never showed it: that draft is useless to
	// its recipients and is not continued.
	PasswordShown bool        `json:"password_shown,omitempty"`
	ExpiresAt     time.Time   `json:"expires_at"`
	Files         []fileState `json:"files"`
}

type fileState struct {
	Path     string `json:"path"`
	Size     int64  `json:"size"`
	Location string `json:"location,omitempty"` // tus upload path
	Done     bool   `json:"done,omitempty"`
}

type sendFile struct {
	path  string // absolute
	name  string
	size  int64
	mtime time.Time
}

func runSend(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("kluis send", sendUsage, stderr)
	server := serverFlag(fs, getenv)
	var to, cc, bcc listFlag
	fs.Var(&to, "to", "recipients (`LIST`)")
	fs.Var(&cc, "cc", "recipients in copy (`LIST`)")
	fs.Var(&bcc, "bcc", "hidden recipients (`LIST`)")
	message := fs.String("message", "", "the confidential message (`TEXT`)")
	messageFile := fs.String("message-file", "", "read the confidential message from `FILE`")
	subject := fs.String("subject", "", "subject of the e-mail (`TEXT`, not confidential)")
	body := fs.String("body", "", "text of the e-mail (`TEXT`, not confidential)")
	bodyFile := fs.String("body-file", "", "read the text of the e-mail from `FILE`")
	expires := fs.String("expires", "", "how long the files stay available: `14d` (days), 36h, or a date YYYY-MM-DD (until the end of that day)")
	lang := fs.String("lang", "", "language of the recipients' mail and pages, as its `CODE`: "+strings.Join(locale.Codes(), ", ")+" (default nl)")
	confirm := fs.Bool("confirm", false, "mail me a confirmation when the transfer is sent")
	notify := fs.Bool("notify-download", false, "mail me when a recipient downloads")
	showNames := fs.Bool("show-filenames", false, "show the file names in the recipients' mail")
	pwGen := fs.Bool("password-generate", false, "generate a password and print it")
	pwFile := fs.String("password-file", "", "read the password from `FILE`")
	pwStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	noPw := fs.Bool("no-password", false, "no password: anyone with the e-mail's link can open it")
	apiKey := fs.String("api-key", "", "API `KEY` instead of the login (default KLUIS_API_KEY)")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	files, err := parseArgs(fs, args)
	if err != nil {
		return flagErr(err)
	}
	usage := func(format string, a ...any) error {
		return &cliError{code: exitUsage, err: fmt.Errorf(format, a...), hint: "See `kluis send --help`."}
	}
	if len(to)+len(cc)+len(bcc) == 0 {
		return usage("give at least one recipient with --to, --cc or --bcc")
	}
	n := 0
	for _, b := range []bool{*pwGen, *pwFile != "", *pwStdin, *noPw} {
		if b {
			n++
		}
	}
	if n != 1 {
		return usage("choose exactly one of --password-generate, --password-file FILE, --password-stdin and --no-password")
	}
	if *message != "" && *messageFile != "" {
		return usage("give --message or --message-file, not both")
	}
	if *body != "" && *bodyFile != "" {
		return usage("give --body or --body-file, not both")
	}
	if len(files) == 0 && *message == "" && *messageFile == "" {
		return usage("give at least one file, or a message")
	}
	if *lang != "" {
		l, ok := locale.Parse(*lang)
		if !ok {
			return usage("--lang %q is not a language Kluis speaks: use one of %s", *lang, strings.Join(locale.Codes(), ", "))
		}
		*lang = string(l)
	}
	if *messageFile != "" {
		b, err := os.ReadFile(*messageFile)
		if err != nil {
			return usage("reading the message: %v", err)
		}
		*message = string(b)
	}
	if *bodyFile != "" {
		b, err := os.ReadFile(*bodyFile)
		if err != nil {
			return usage("reading the mail text: %v", err)
		}
		*body = string(b)
	}
	var expiresAt *time.Time
	if *expires != "" {
		t, err := parseExpiry(*expires, time.Now())
		if err != nil {
			return usage("--expires: %v", err)
		}
		expiresAt = &t
	}
	var sf []sendFile
	var total int64
	seen := map[string]bool{}
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return usage("%s: %v", f, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return usage("cannot read %s: %v", f, errors.Unwrap(err))
		}
		if !fi.Mode().IsRegular() {
			return usage("%s is not a regular file", f)
		}
		if seen[abs] {
			return usage("%s is given twice", f)
		}
		seen[abs] = true
		sf = append(sf, sendFile{path: abs, name: filepath.Base(abs), size: fi.Size(), mtime: fi.ModTime()})
		total += fi.Size()
	}
	mode, pwValue := "generate", ""
	switch {
	case *noPw:
		mode = "none"
	case *pwFile != "":
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return usage("reading the password file: %v", err)
		}
		mode, pwValue = "manual", trimOneNewline(string(b))
	case *pwStdin:
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
		if err != nil {
			return usage("reading the password from standard input: %v", err)
		}
		mode, pwValue = "manual", trimOneNewline(string(b))
	}
	if mode == "manual" && pwValue == "" {
		return usage("the password is empty")
	}

	c, err := newClient(*server.url, server)
	if err != nil {
		return err
	}
	token, err := senderToken(getenv, c.Base(), *apiKey)
	if err != nil {
		return err
	}

	// The resume key: the same command on the same files (unchanged) finds
	// its earlier, unfinished transfer.
	h := sha256.New()
	fmt.Fprintf(h, "kluis-send-v1\x00%s\x00%s\x00", serverKey(c.Base()), mode)
	for _, l := range []listFlag{to, cc, bcc} {
		fmt.Fprintf(h, "%q\x00", []string(l))
	}
	fmt.Fprintf(h, "%q\x00%q\x00%q\x00%q\x00%q\x00%v%v%v\x00", *message, *subject, *body, *expires, *lang, *confirm, *notify, *showNames)
	for _, f := range sf {
		fmt.Fprintf(h, "%q\x00%d\x00%d\x00", f.path, f.size, f.mtime.UnixNano())
	}
	cdir, err := cacheDir(getenv)
	if err != nil {
		return err
	}
	statePath := filepath.Join(cdir, "uploads", hex.EncodeToString(h.Sum(nil))[:32]+".json")

	st, resumed, err := loadSendState(ctx, c, statePath, sf, stderr)
	if err != nil {
		return err
	}
	var password string
	if st != nil && !resumed {
		// Finished earlier; the state was not removed.
		t, err := c.Transfer(ctx, st.UploadToken, st.TransferID)
		if err != nil {
			return explain(err, "sender")
		}
		os.Remove(statePath)
		fmt.Fprintf(stderr, "kluis: this transfer was already sent earlier.\n")
		return printSendResult(stdout, *asJSON, t, "")
	}
	if st == nil {
		req := &client.CreateRequest{
			To: to, Cc: cc, Bcc: bcc, Message: *message, Subject: *subject, Body: *body,
			ExpiresAt: expiresAt, Lang: *lang,
			Password: client.Password{Mode: mode, Value: pwValue},
			Options:  client.Options{Confirm: *confirm, NotifyDownload: *notify, ShowFilenames: *showNames},
		}
		cr, err := c.CreateTransfer(ctx, token, req)
		if err != nil {
			return explain(err, "sender")
		}
		if cr.MaxSize > 0 && total > cr.MaxSize {
			return fail(exitRefused, "Send fewer or smaller files, or split them over more transfers.", "the files are %s together; this server takes at most %s per transfer", humanBytes(total), humanBytes(cr.MaxSize))
		}
		st = &sendState{Server: serverKey(c.Base()), TransferID: cr.ID, UploadToken: cr.UploadToken, LinkSecret: cr.LinkSecret, Generated: cr.Password != "", ExpiresAt: cr.ExpiresAt}
		for _, f := range sf {
			st.Files = append(st.Files, fileState{Path: f.path, Size: f.size})
		}
		password = cr.Password
		if password != "" && !*asJSON {
			// Shown before the state is saved: a state that says "shown"
			// never belongs to a password nobody saw.
			fmt.Fprintf(stdout, "Password (give it to the recipients by phone or text message): %s\n", password)
			st.PasswordShown = true
		}
		if err := saveSendState(statePath, st); err != nil {
			return fmt.Errorf("saving the upload state: %w", err)
		}
	} else {
		fmt.Fprintf(stderr, "kluis: continuing the earlier upload of transfer %s.\n", st.TransferID)
		if st.Generated {
			fmt.Fprintf(stderr, "kluis: the password was shown when this transfer was started; it is not stored and cannot be shown again.\n")
		}
	}

	prog := newProgress(stderr, isTerminal(stderr), total)
	for i := range sf {
		if err := uploadFile(ctx, c, st, statePath, i, sf[i], prog, stderr); err != nil {
			prog.finish()
			return explain(err, "sender")
		}
	}
	prog.finish()
	fin, err := c.Finish(ctx, st.UploadToken, st.TransferID, st.LinkSecret)
	if err != nil {
		if client.Code(err) == "conflict" {
			// Finished by an earlier run whose answer was lost?
			if t, terr := c.Transfer(ctx, st.UploadToken, st.TransferID); terr == nil && t.State == "ready" {
				os.Remove(statePath)
				return printSendResult(stdout, *asJSON, t, password)
			}
		}
		return explain(err, "sender")
	}
	os.Remove(statePath)
	return printSendResult(stdout, *asJSON, &fin.Transfer, password)
}

// parseExpiry reads "14d", a Go duration ("36h", "90m") or a date
// YYYY-MM-DD (until the end of that day, local time).
func parseExpiry(s string, now time.Time) (time.Time, error) {
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
			return time.Time{}, fmt.Errorf("%s is in the past", s)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a number of days (14d), a duration (36h) or a date (YYYY-MM-DD)", s)
}

// loadSendState returns the saved state if its transfer can still take
// uploads (resumed = true), or if it was finished already (resumed =
// false, st != nil). A state that is of no use is removed.
func loadSendState(ctx context.Context, c *client.Client, path string, sf []sendFile, stderr io.Writer) (st *sendState, resumed bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	st = &sendState{}
	if json.Unmarshal(b, st) != nil || len(st.Files) != len(sf) {
		os.Remove(path)
		return nil, false, nil
	}
	t, err := c.Transfer(ctx, st.UploadToken, st.TransferID)
	if err != nil {
		var ne *client.NetError
		if errors.As(err, &ne) {
			return nil, false, explain(err, "sender")
		}
		fmt.Fprintf(stderr, "kluis: the earlier upload of transfer %s cannot be continued (%v); starting a new transfer.\n", st.TransferID, err)
		os.Remove(path)
		return nil, false, nil
	}
	switch t.State {
	case "draft", "uploading":
		if st.Generated && !st.PasswordShown {
			// Its password was to be printed at the end (--json) and the
			// run never got there: nobody can ever open this transfer.
			fmt.Fprintf(stderr, "kluis: the earlier upload of transfer %s cannot be continued: its generated password was never shown (the run with --json was interrupted); starting a new transfer with a new password.\n", st.TransferID)
			os.Remove(path)
			return nil, false, nil
		}
		return st, true, nil
	case "ready":
		return st, false, nil
	}
	fmt.Fprintf(stderr, "kluis: the earlier upload of transfer %s cannot be continued (it is %s); starting a new transfer.\n", st.TransferID, t.State)
	os.Remove(path)
	return nil, false, nil
}

func saveSendState(path string, st *sendState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

const maxUploadAttempts = 5

// uploadFile sends file i over tus, continuing at the server's offset; a
// network error is retried a few times.
func uploadFile(ctx context.Context, c *client.Client, st *sendState, statePath string, i int, f sendFile, prog *progress, stderr io.Writer) error {
	fst := &st.Files[i]
	if fst.Done {
		prog.file(f.name, f.size, f.size)
		return nil
	}
	if fst.Location == "" {
		ctype := mime.TypeByExtension(filepath.Ext(f.name))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		loc, err := c.CreateUpload(ctx, st.UploadToken, f.size, f.name, ctype)
		if err != nil {
			return err
		}
		fst.Location = loc
		if err := saveSendState(statePath, st); err != nil {
			return err
		}
	}
	file, err := os.Open(f.path)
	if err != nil {
		return fail(exitUsage, "Do not move or change the files while sending.", "%v", err)
	}
	defer file.Close()
	started := false
	var lastErr error
	for attempt := 0; attempt < maxUploadAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return &client.NetError{Op: "upload", Err: ctx.Err()}
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		off, _, err := c.UploadOffset(ctx, st.UploadToken, fst.Location)
		if err != nil {
			var ne *client.NetError
			if errors.As(err, &ne) && ctx.Err() == nil {
				lastErr = err
				continue
			}
			return err
		}
		if !started {
			prog.file(f.name, f.size, off)
			started = true
		} else {
			prog.reset(off)
		}
		if off < f.size {
			body := &countingReader{r: io.NewSectionReader(file, off, f.size-off), p: prog}
			_, err = c.Patch(ctx, st.UploadToken, fst.Location, off, body, f.size-off)
			if err != nil {
				var ne *client.NetError
				if (errors.As(err, &ne) && ctx.Err() == nil) || client.Code(err) == "conflict" || client.Code(err) == "mismatched_offset" {
					lastErr = err
					continue
				}
				return err
			}
		}
		fst.Done = true
		return saveSendState(statePath, st)
	}
	return lastErr
}

type sendJSON struct {
	ID         string          `json:"id"`
	Recipients []recipientJSON `json:"recipients"`
	ExpiresAt  string          `json:"expires_at"`
	Password   string          `json:"password,omitempty"`
}

type recipientJSON struct {
	Address string `json:"address"`
	Kind    string `json:"kind"`
	Status  string `json:"status"`
}

func printSendResult(w io.Writer, asJSON bool, t *client.Transfer, password string) error {
	if asJSON {
		out := sendJSON{ID: t.ID, ExpiresAt: t.ExpiresAt.UTC().Format(time.RFC3339), Password: password, Recipients: []recipientJSON{}}
		for _, r := range t.Recipients {
			out.Recipients = append(out.Recipients, recipientJSON{Address: r.Address, Kind: r.Kind, Status: r.Status})
		}
		return writeJSONOut(w, out)
	}
	fmt.Fprintf(w, "Sent: transfer %s, available until %s.\n", t.ID, t.ExpiresAt.Local().Format("2006-01-02 15:04"))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range t.Recipients {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.Kind, r.Address, r.Status)
	}
	tw.Flush()
	fmt.Fprintf(w, "The recipients get the link by e-mail. See who opened it with: kluis status %s\n", t.ID)
	return nil
}
