package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/client"
)

const maxDownloadAttempts = 6 // the first try and 5 retries

type receivedFile struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
}

type receiveJSON struct {
	Transfer  string         `json:"transfer"`
	ExpiresAt string         `json:"expires_at"`
	Message   string         `json:"message"`
	Files     []receivedFile `json:"files"`
}

// receive is kluis receive: open a link, download its files (each checked
// against its SHA-256 before it gets its name) and print the message.
func (a *app) receive(ctx context.Context, args []string) error {
	f := a.flags("receive", "cli.receive.usage")
	server := f.serverFlags()
	dir := f.StringDefault("o", ".", "cli.ph.dir", "cli.flag.o")
	secret := f.secretFlags()
	asZip := f.Bool("zip", "cli.flag.zip")
	force := f.Bool("force", "cli.flag.force")
	asJSON := f.Bool("json", "cli.flag.receive_json")
	request := f.String("request", "cli.ph.id", "cli.flag.request_id")
	passphrase := f.passphraseFlags()
	apiKey := f.apiKeyFlag()
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if *request != "" || len(pos) == 1 && isRequestLink(pos[0]) {
		if *request != "" && len(pos) > 0 {
			return f.usageError("cli.receive.one_link")
		}
		return a.receiveRequest(ctx, f, server, *apiKey, *request, pos, passphrase, receiveTo{dir: *dir, zip: *asZip, force: *force, json: *asJSON})
	}
	if len(pos) != 1 {
		return f.usageError("cli.receive.one_link")
	}
	if *secret.file != "" && *secret.stdin {
		return f.usageError("cli.password.both")
	}
	base, access, fragment, err := a.parseLink(pos[0], *server.url)
	if err != nil {
		return f.usageError("cli.receive.bad_link", err.Error())
	}
	c, err := a.newClient(base, server)
	if err != nil {
		return err
	}
	link, err := c.Lookup(ctx, access)
	if err != nil {
		return a.explain(err, "recipient")
	}
	var sec string
	if link.PasswordRequired {
		sec, err = a.readSecret(f, secret, a.p.T("cli.receive.password_prompt"))
		if errors.Is(err, errNoSecret) {
			return f.usageError("cli.receive.needs_password")
		}
		if err != nil {
			return err
		}
	} else {
		if fragment == "" {
			return a.fail(exitUsage, a.p.T("cli.hint.whole_link"), "cli.receive.no_fragment")
		}
		sec = fragment
	}
	sess, err := c.Unlock(ctx, access, sec)
	if err != nil {
		return a.explain(err, "recipient")
	}
	return a.receiveSession(ctx, c, sess.Session, link.ExpiresAt, receiveTo{dir: *dir, zip: *asZip, force: *force, json: *asJSON})
}

// receiveTo is where and how kluis receive saves.
type receiveTo struct {
	dir              string
	zip, force, json bool
}

// receiveSession downloads what a download session opens: every file
// (each checked against its SHA-256) or the ZIP, then prints the message.
func (a *app) receiveSession(ctx context.Context, c *client.Client, session string, expiresAt time.Time, to receiveTo) error {
	contents, err := c.Contents(ctx, session)
	if err != nil {
		return a.explain(err, "recipient")
	}
	if err := os.MkdirAll(to.dir, 0o700); err != nil {
		return a.fail(exitUsage, "", "cli.receive.mkdir", to.dir, a.fileText(err))
	}
	out := receiveJSON{Transfer: contents.Transfer.ID, Message: contents.Message, Files: []receivedFile{}, ExpiresAt: expiresAt.UTC().Format(time.RFC3339)}
	if to.zip {
		rf, err := a.receiveZip(ctx, c, session, contents, to.dir, to.force)
		if err != nil {
			return a.explain(err, "recipient")
		}
		out.Files = append(out.Files, rf)
	} else if out.Files, err = a.receiveFiles(ctx, c, session, contents, to.dir, to.force); err != nil {
		return a.explain(err, "recipient")
	}
	if to.json {
		return writeJSON(a.io.Out, out)
	}
	check := a.p.T("cli.receive.checked_sha")
	if to.zip {
		check = a.p.T("cli.receive.checked_zip")
	}
	for _, f := range out.Files {
		fmt.Fprintln(a.io.Out, a.p.T("cli.receive.saved", f.Path, a.p.Size(f.Size), check))
	}
	if contents.Message != "" {
		// The sender wrote it: shown, never obeyed, by the terminal.
		fmt.Fprintf(a.io.Out, "\n%s\n%s\n", a.p.T("cli.receive.message"), strings.TrimRight(visible(contents.Message), "\n"))
	}
	return nil
}

// receiveFiles downloads every file of contents into dir. It decides every
// final name first, and refuses before downloading anything if one exists
// (without force).
func (a *app) receiveFiles(ctx context.Context, c *client.Client, session string, contents *client.Contents, dir string, force bool) ([]receivedFile, error) {
	names := make([]string, len(contents.Files))
	used := map[string]bool{}
	var total int64
	for i, f := range contents.Files {
		names[i] = uniqueName(safeName(f.Name, i), used)
		if _, err := os.Lstat(filepath.Join(dir, names[i])); err == nil && !force {
			return nil, a.fail(exitUsage, a.p.T("cli.hint.exists"), "cli.receive.exists", filepath.Join(dir, names[i]))
		}
		total += f.Size
	}
	prog := a.newProgress(total)
	defer prog.finish()
	out := []receivedFile{}
	for i, f := range contents.Files {
		if err := a.receiveFile(ctx, c, session, f, dir, names[i], force, prog); err != nil {
			return nil, err
		}
		out = append(out, receivedFile{Name: names[i], Path: filepath.Join(dir, names[i]), Size: f.Size, SHA256: f.SHA256})
	}
	return out, nil
}

// parseLink reads http(s)://HOST/r/ACCESS[#SECRET], or a bare access code
// (grouped or not) for the server given.
func (a *app) parseLink(s, server string) (base, access, fragment string, err error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", "", "", errors.New(a.p.T("cli.link.invalid"))
		}
		p := strings.TrimRight(u.Path, "/")
		i := strings.LastIndex(p, "/r/")
		if i < 0 || p[i+3:] == "" || strings.Contains(p[i+3:], "/") {
			return "", "", "", errors.New(a.p.T("cli.link.not_kluis"))
		}
		base := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: p[:i]}).String()
		return base, p[i+3:], u.Fragment, nil
	}
	code, frag, _ := strings.Cut(s, "#")
	code = client.NormalizeAccess(code)
	if code == "" || strings.ContainsFunc(code, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) {
		return "", "", "", errors.New(a.p.T("cli.link.give_whole"))
	}
	return server, code, frag, nil
}
