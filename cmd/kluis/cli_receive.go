package main

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/client"
)

const receiveUsage = `Usage: kluis receive LINK [-o DIR] [--password-file FILE | --password-stdin] [--zip] [--force] [--json] [--insecure-http]

Downloads the files of a link from a Kluis e-mail into DIR (default: the
current folder), checks each file's SHA-256, and prints the confidential
message. LINK is the whole link (put it in quotes: the part after # is
needed for links without a password), or the code from the e-mail together
with --server. Without --password-file or --password-stdin the password is
asked for on the terminal.

Each file is first written as DIR/.NAME.kluis-part and gets its name only
when it is complete and checked; an existing file is never overwritten
without --force. A download that breaks off continues where it stopped, also
when you run the command again.
`

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

func runReceive(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("kluis receive", receiveUsage, stderr)
	server := serverFlag(fs, getenv)
	dir := fs.String("o", ".", "save the files in `DIR`")
	pwFile := fs.String("password-file", "", "read the password from `FILE`")
	pwStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	asZip := fs.Bool("zip", false, "download everything as one ZIP file")
	force := fs.Bool("force", false, "overwrite existing files")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagErr(err)
	}
	usage := func(format string, a ...any) error {
		return &cliError{code: exitUsage, err: fmt.Errorf(format, a...), hint: "See `kluis receive --help`."}
	}
	if len(pos) != 1 {
		return usage("give one link")
	}
	if *pwFile != "" && *pwStdin {
		return usage("give --password-file or --password-stdin, not both")
	}
	base, access, fragment, err := parseLink(pos[0], *server.url)
	if err != nil {
		return usage("%v", err)
	}
	c, err := newClient(base, server)
	if err != nil {
		return err
	}
	link, err := c.Lookup(ctx, access)
	if err != nil {
		return explain(err, "recipient")
	}
	var secret string
	switch {
	case !link.PasswordRequired:
		if fragment == "" {
			return fail(exitUsage, "Copy the whole link from the e-mail, including the part after #, and put it in quotes.", "this link needs its part after # (the link secret), which is missing")
		}
		secret = fragment
	case *pwFile != "":
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return usage("reading the password file: %v", err)
		}
		secret = trimOneNewline(string(b))
	case *pwStdin:
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
		if err != nil {
			return usage("reading the password from standard input: %v", err)
		}
		secret = trimOneNewline(string(b))
	case isTerminal(os.Stdin):
		fmt.Fprint(stderr, "Password: ")
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return usage("reading the password: %v", err)
		}
		secret = string(b)
	default:
		return usage("this link needs a password: give it with --password-file FILE or --password-stdin")
	}
	if secret == "" {
		return usage("the password is empty")
	}
	sess, err := c.Unlock(ctx, access, secret)
	if err != nil {
		return explain(err, "recipient")
	}
	contents, err := c.Contents(ctx, sess.Session)
	if err != nil {
		return explain(err, "recipient")
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return usage("cannot make the folder %s: %v", *dir, err)
	}
	out := receiveJSON{Transfer: contents.Transfer.ID, Message: contents.Message, Files: []receivedFile{}, ExpiresAt: link.ExpiresAt.UTC().Format(time.RFC3339)}
	if *asZip {
		rf, err := receiveZip(ctx, c, sess.Session, contents, *dir, *force, stderr)
		if err != nil {
			return explain(err, "recipient")
		}
		out.Files = append(out.Files, rf)
	} else {
		// Decide every final name first, and refuse before downloading
		// anything if one exists.
		names := make([]string, len(contents.Files))
		used := map[string]bool{}
		for i, f := range contents.Files {
			name := uniqueName(safeName(f.Name, i), used)
			names[i] = name
			if !*force {
				if _, err := os.Lstat(filepath.Join(*dir, name)); err == nil {
					return fail(exitUsage, "Choose another folder with -o DIR, or overwrite with --force.", "%s already exists", filepath.Join(*dir, name))
				}
			}
		}
		var total int64
		for _, f := range contents.Files {
			total += f.Size
		}
		prog := newProgress(stderr, isTerminal(stderr), total)
		for i, f := range contents.Files {
			final := filepath.Join(*dir, names[i])
			if err := receiveFile(ctx, c, sess.Session, f, *dir, names[i], *force, prog); err != nil {
				prog.finish()
				return explain(err, "recipient")
			}
			out.Files = append(out.Files, receivedFile{Name: names[i], Path: final, Size: f.Size, SHA256: f.SHA256})
		}
		prog.finish()
	}
	if *asJSON {
		return writeJSONOut(stdout, out)
	}
	for _, f := range out.Files {
		check := "SHA-256 checked"
		if *asZip {
			check = "ZIP checked"
		}
		fmt.Fprintf(stdout, "Saved %s (%s, %s)\n", f.Path, humanBytes(f.Size), check)
	}
	if contents.Message != "" {
		fmt.Fprintf(stdout, "\nConfidential message:\n%s\n", strings.TrimRight(contents.Message, "\n"))
	}
	return nil
}

// parseLink reads http(s)://HOST/r/ACCESS[#SECRET], or a bare access code
// (grouped or not) for the server given.
func parseLink(s, server string) (base, access, fragment string, err error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", "", "", fmt.Errorf("the link is not valid: %v", err)
		}
		p := strings.TrimRight(u.Path, "/")
		i := strings.LastIndex(p, "/r/")
		if i < 0 || p[i+3:] == "" || strings.Contains(p[i+3:], "/") {
			return "", "", "", errors.New("this is not a Kluis link (…/r/CODE)")
		}
		base := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: p[:i]}).String()
		return base, p[i+3:], u.Fragment, nil
	}
	code, frag, _ := strings.Cut(s, "#")
	code = client.NormalizeAccess(code)
	if code == "" || strings.ContainsFunc(code, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) {
		return "", "", "", errors.New("give the whole link from the e-mail (https://…/r/…), or the code with --server")
	}
	return server, code, frag, nil
}

// maxLocalName bounds a local file name in bytes, leaving room for the
// part file's ".NAME.kluis-part" within the usual 255.
const maxLocalName = 200

// safeName is the local file name for a name from the server. It starts
// from kluis.CleanFileName, as everywhere in Kluis (the last path element,
// no control, invisible or bidirectional characters; the server's own
// cleaning is not relied on: it may be older, or not Kluis), then makes the
// name safe to create on any system: characters Windows refuses become
// "_", leading dots (a hidden file) and trailing dots and spaces (which
// Windows drops) go, a reserved device name (CON, NUL, COM1, …, also with
// an extension) gets a "_" in front, and it is cut to maxLocalName bytes
// with its extension kept. Nothing left gives "file-N".
func safeName(name string, i int) string {
	name = strings.Map(func(r rune) rune {
		if strings.ContainsRune(`<>:"|?*`, r) {
			return '_'
		}
		return r
	}, kluis.CleanFileName(name))
	name = strings.TrimRight(strings.TrimLeft(name, "."), ". ")
	if len(name) > maxLocalName {
		ext := filepath.Ext(name)
		if len(ext) > 16 {
			ext = ""
		}
		stem := name[:len(name)-len(ext)]
		for len(stem)+len(ext) > maxLocalName {
			_, size := utf8.DecodeLastRuneInString(stem)
			stem = stem[:len(stem)-size]
		}
		name = strings.TrimRight(stem, ". ") + ext
	}
	if windowsReserved(name) {
		name = "_" + name
	}
	if name == "" {
		name = fmt.Sprintf("file-%d", i+1)
	}
	return name
}

// windowsReserved reports whether Windows takes name for a device: the part
// before the first dot, without trailing spaces, is CON, PRN, AUX, NUL,
// COM0–COM9, LPT0–LPT9 (also with ¹, ² or ³), CONIN$ or CONOUT$, in any
// case. Writing "nul.txt" there writes to the device, not to a file.
func windowsReserved(name string) bool {
	stem, _, _ := strings.Cut(name, ".")
	stem = strings.ToUpper(strings.TrimRight(stem, " "))
	switch stem {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if rest, ok := strings.CutPrefix(stem, "COM"); ok {
		return isPortDigit(rest)
	}
	if rest, ok := strings.CutPrefix(stem, "LPT"); ok {
		return isPortDigit(rest)
	}
	return false
}

func isPortDigit(s string) bool {
	return len(s) == 1 && s[0] >= '0' && s[0] <= '9' || s == "¹" || s == "²" || s == "³"
}

// openPart opens a part file without following a symbolic link (O_NOFOLLOW
// where the system has it, and a check either way): whoever can write in
// the download folder could otherwise point .NAME.kluis-part at any file
// of the user's and have kluis overwrite it.
func openPart(path string, flag int) (*os.File, error) {
	isLink := func() bool {
		fi, err := os.Lstat(path)
		return err == nil && fi.Mode()&os.ModeSymlink != 0
	}
	linkErr := func() error {
		return fail(exitUsage, "Remove it (someone may be trying to make kluis overwrite another file), or choose another folder with -o DIR.",
			"%s is a symbolic link; kluis does not write through it", path)
	}
	if isLink() {
		return nil, linkErr()
	}
	f, err := os.OpenFile(path, flag|oNoFollow, 0o600)
	if err != nil {
		if isLink() {
			return nil, linkErr()
		}
		return nil, fail(exitUsage, "Choose a folder you can write to with -o DIR.", "%v", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fail(exitUsage, "Remove it, or choose another folder with -o DIR.", "%s is not a regular file", path)
	}
	return f, nil
}

func uniqueName(name string, used map[string]bool) string {
	cand := name
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	for n := 2; used[strings.ToLower(cand)]; n++ {
		cand = fmt.Sprintf("%s (%d)%s", stem, n, ext)
	}
	used[strings.ToLower(cand)] = true
	return cand
}

// receiveFile downloads f into dir/.NAME.kluis-part, continuing a partial
// file, checks its SHA-256 and only then gives it its name.
func receiveFile(ctx context.Context, c *client.Client, session string, f client.File, dir, name string, force bool, prog *progress) error {
	part := filepath.Join(dir, "."+name+".kluis-part")
	final := filepath.Join(dir, name)
	pf, err := openPart(part, os.O_RDWR|os.O_CREATE)
	if err != nil {
		return err
	}
	defer pf.Close()
	fi, err := pf.Stat()
	if err != nil {
		return err
	}
	off := fi.Size()
	if off > f.Size {
		off = 0
	}
	if err := pf.Truncate(off); err != nil {
		return err
	}
	prog.file(name, f.Size, off)
	var lastErr error
	stuck := 0
	for attempt := 0; attempt < maxDownloadAttempts && off < f.Size; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return &client.NetError{Op: "download", Err: ctx.Err()}
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		resp, partial, err := c.Download(ctx, session, f.ID, off)
		if err != nil {
			var ne *client.NetError
			if errors.As(err, &ne) && ctx.Err() == nil {
				lastErr = err
				// The server closed the connection without an answer: it
				// does so when the data it is about to send fails
				// verification. Twice at the same place is no accident.
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					if stuck++; stuck >= 2 {
						pf.Close()
						os.Remove(part)
						return &client.IntegrityError{Msg: fmt.Sprintf("the download of %s breaks off at the same place every time (after %s): the server found damaged data", name, humanBytes(off))}
					}
				}
				continue
			}
			if client.Code(err) == "integrity" {
				pf.Close()
				os.Remove(part)
			}
			return err
		}
		if !partial && off > 0 {
			off = 0
			prog.reset(0)
		}
		if _, err := pf.Seek(off, io.SeekStart); err != nil {
			resp.Body.Close()
			return err
		}
		if err := pf.Truncate(off); err != nil {
			resp.Body.Close()
			return err
		}
		n, err := io.Copy(&countingWriter{w: pf, p: prog}, io.LimitReader(resp.Body, f.Size-off))
		resp.Body.Close()
		off += n
		if off >= f.Size {
			break
		}
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		if ctx.Err() != nil {
			return &client.NetError{Op: "download", Err: ctx.Err()}
		}
		lastErr = &client.NetError{Op: "download of " + name, Err: err}
		// The server answered but broke off at once, twice: it aborts
		// a file that fails verification in the middle.
		if n == 0 {
			stuck++
			if stuck >= 2 {
				pf.Close()
				os.Remove(part)
				return &client.IntegrityError{Msg: fmt.Sprintf("the download of %s breaks off at the same place every time (after %s): the server found damaged data", name, humanBytes(off))}
			}
		} else {
			stuck = 0
		}
	}
	if off < f.Size {
		if lastErr == nil {
			lastErr = &client.NetError{Op: "download of " + name, Err: io.ErrUnexpectedEOF}
		}
		return lastErr
	}
	if err := pf.Sync(); err != nil {
		return err
	}
	// Check the whole file as it is on disk.
	if _, err := pf.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, pf); err != nil {
		return err
	}
	pf.Close()
	sum := hex.EncodeToString(h.Sum(nil))
	if f.SHA256 == "" || !strings.EqualFold(sum, f.SHA256) {
		os.Remove(part)
		if f.SHA256 == "" {
			return &client.IntegrityError{Msg: fmt.Sprintf("the server gave no SHA-256 for %s, so it cannot be checked", name)}
		}
		return &client.IntegrityError{Msg: fmt.Sprintf("%s is damaged: its SHA-256 does not match", name)}
	}
	return place(part, final, force)
}

// place gives the checked part file its final name; without force it never
// replaces an existing file (a hard link fails if the name exists).
func place(part, final string, force bool) error {
	if force {
		return os.Rename(part, final)
	}
	if err := os.Link(part, final); err == nil {
		return os.Remove(part)
	} else if errors.Is(err, os.ErrExist) {
		return fail(exitUsage, "Choose another folder with -o DIR, or overwrite with --force. The download is kept as "+part+".", "%s already exists", final)
	}
	// No hard links here (some file systems): check, then rename.
	if _, err := os.Lstat(final); err == nil {
		return fail(exitUsage, "Choose another folder with -o DIR, or overwrite with --force.", "%s already exists", final)
	}
	return os.Rename(part, final)
}

// receiveZip downloads everything as one ZIP, checks that it reads back
// completely (every entry's CRC-32), and only then gives it its name.
func receiveZip(ctx context.Context, c *client.Client, session string, contents *client.Contents, dir string, force bool, stderr io.Writer) (receivedFile, error) {
	var total int64
	for _, f := range contents.Files {
		total += f.Size
	}
	prog := newProgress(stderr, isTerminal(stderr), total)
	defer prog.finish()
	var lastErr error
	brokeAt, same := int64(-1), 0
	for attempt := 0; attempt < maxDownloadAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return receivedFile{}, &client.NetError{Op: "download", Err: ctx.Err()}
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		resp, err := c.DownloadZip(ctx, session)
		if err != nil {
			var ne *client.NetError
			if errors.As(err, &ne) && ctx.Err() == nil {
				lastErr = err
				continue
			}
			return receivedFile{}, err
		}
		name := "kluis-" + contents.Transfer.ID[:min(8, len(contents.Transfer.ID))] + ".zip"
		if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
			name = safeName(params["filename"], 0)
		}
		final := filepath.Join(dir, name)
		if !force {
			if _, err := os.Lstat(final); err == nil {
				resp.Body.Close()
				return receivedFile{}, fail(exitUsage, "Choose another folder with -o DIR, or overwrite with --force.", "%s already exists", final)
			}
		}
		part := filepath.Join(dir, "."+name+".kluis-part")
		pf, err := openPart(part, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			resp.Body.Close()
			return receivedFile{}, err
		}
		prog.file(name, total, 0)
		prog.reset(0)
		n, err := io.Copy(&countingWriter{w: pf, p: prog}, resp.Body)
		resp.Body.Close()
		if err != nil {
			pf.Close()
			os.Remove(part)
			if ctx.Err() != nil {
				return receivedFile{}, &client.NetError{Op: "download", Err: ctx.Err()}
			}
			lastErr = &client.NetError{Op: "download of " + name, Err: err}
			// The server breaks a ZIP off where a file fails
			// verification: the same place every time.
			if n == brokeAt {
				if same++; same >= 1 {
					return receivedFile{}, &client.IntegrityError{Msg: fmt.Sprintf("the download of %s breaks off at the same place every time (after %s): the server found damaged data", name, humanBytes(n))}
				}
			}
			brokeAt = n
			continue
		}
		zr, zerr := zip.NewReader(pf, n)
		if zerr == nil {
			zerr = checkZip(zr)
		}
		pf.Close()
		if zerr != nil {
			os.Remove(part)
			return receivedFile{}, &client.IntegrityError{Msg: fmt.Sprintf("the ZIP file is damaged or incomplete (%v)", zerr)}
		}
		if err := place(part, final, force); err != nil {
			return receivedFile{}, err
		}
		return receivedFile{Name: name, Path: final, Size: n}, nil
	}
	return receivedFile{}, lastErr
}

func checkZip(zr *zip.Reader) error {
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	return nil
}
