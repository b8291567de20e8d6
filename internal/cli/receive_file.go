package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/client"
)

// copyBuffer is the size of the reads from the network and the writes to
// the part file: large enough that system calls cost little next to the
// bytes, small enough to stay in the CPU's cache for the hash.
const copyBuffer = 256 << 10

// receiveFile downloads f into dir/.NAME.kluis-part, continuing a partial
// file, checks its SHA-256 and only then gives it its name. The hash is
// taken of the bytes as they are written (issue 21: no second read of the
// whole file); a resumed download reads back only what the part file held
// when it started.
func (a *app) receiveFile(ctx context.Context, c *client.Client, session string, f client.File, dir, name string, force bool, prog *progress) error {
	part := filepath.Join(dir, "."+name+".kluis-part")
	final := filepath.Join(dir, name)
	osf, err := a.openPart(part, os.O_RDWR|os.O_CREATE)
	if err != nil {
		return err
	}
	var pf partFile = osf
	if a.wrapPart != nil {
		pf = a.wrapPart(osf)
	}
	defer pf.Close()
	w, err := resumePart(pf, f.Size)
	if err != nil {
		return a.fail(exitUsage, "", "cli.receive.part_error", a.fileText(err))
	}
	prog.file(name, f.Size, w.n)
	broken := func() error {
		pf.Close()
		os.Remove(part)
		return &client.IntegrityError{Msg: a.p.T("cli.receive.breaks_off", name, a.p.Size(w.n))}
	}
	buf := make([]byte, copyBuffer)
	var lastErr error
	stuck := 0
	for attempt := 0; attempt < maxDownloadAttempts && w.n < f.Size; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return &client.NetError{Op: "download", Err: ctx.Err()}
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		resp, partial, err := c.Download(ctx, session, f.ID, w.n)
		if err != nil {
			var ne *client.NetError
			if errors.As(err, &ne) && ctx.Err() == nil {
				lastErr = err
				// The server closed the connection without an answer: it
				// does so when the data it is about to send fails
				// verification. Twice at the same place is no accident.
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					if stuck++; stuck >= 2 {
						return broken()
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
		if !partial && w.n > 0 {
			// The server sent the whole file, not the rest.
			if err := w.restart(); err != nil {
				resp.Body.Close()
				return a.fail(exitUsage, "", "cli.receive.part_error", a.fileText(err))
			}
			prog.reset(0)
		}
		before := w.n
		_, err = io.CopyBuffer(&countingWriter{w: w, p: prog}, io.LimitReader(resp.Body, f.Size-w.n), buf)
		resp.Body.Close()
		if w.err != nil {
			return a.fail(exitUsage, "", "cli.receive.part_error", a.fileText(w.err))
		}
		if w.n >= f.Size {
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
		if w.n == before {
			if stuck++; stuck >= 2 {
				return broken()
			}
		} else {
			stuck = 0
		}
	}
	if w.n < f.Size {
		if lastErr == nil {
			lastErr = &client.NetError{Op: "download of " + name, Err: io.ErrUnexpectedEOF}
		}
		return lastErr
	}
	// On disk before it gets its name: a crash must not leave a final
	// name on data that never reached the disk.
	if err := pf.Sync(); err != nil {
		return a.fail(exitUsage, "", "cli.receive.part_error", a.fileText(err))
	}
	pf.Close()
	if f.SHA256 == "" || !strings.EqualFold(hex.EncodeToString(w.h.Sum(nil)), f.SHA256) {
		os.Remove(part)
		if f.SHA256 == "" {
			return &client.IntegrityError{Msg: a.p.T("cli.receive.no_sha", name)}
		}
		return &client.IntegrityError{Msg: a.p.T("cli.receive.sha_mismatch", name)}
	}
	return a.place(part, final, force)
}

// partFile is what a download does with its part file. Tests wrap the
// file (app.wrapPart) to see how much of it is read back.
type partFile interface {
	io.Writer
	io.Seeker
	io.ReaderAt
	Stat() (os.FileInfo, error)
	Truncate(size int64) error
	Sync() error
	Close() error
}

// partWriter writes a download to its part file, counts the bytes that
// reached it and hashes them: h is always the SHA-256 state of the first n
// bytes of the part file.
type partWriter struct {
	f   partFile
	h   hash.Hash
	n   int64 // bytes in the part file
	err error // the first error of the file: the network's are io.Copy's
}

// resumePart starts the writer on a part file, continuing what an earlier
// run left (up to size bytes; a longer part file starts afresh). What is
// there is hashed once, so the hash state is that of the whole file when
// the rest has been written; if those bytes are wrong, the final check
// fails and the part file is removed.
func resumePart(f partFile, size int64) (*partWriter, error) {
	w := &partWriter{f: f, h: sha256.New()}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > size {
		return w, w.restart()
	}
	n, err := io.Copy(w.h, io.NewSectionReader(f, 0, fi.Size()))
	if err != nil {
		return nil, err
	}
	if n != fi.Size() {
		return nil, io.ErrUnexpectedEOF // the file shrank while we read it
	}
	w.n = n
	_, err = f.Seek(w.n, io.SeekStart)
	return w, err
}

// Write writes p to the file and hashes what the file took. A short or
// failed write leaves n and the hash at what reached the file, so the two
// never disagree.
func (w *partWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// restart empties the part file.
func (w *partWriter) restart() error {
	w.n = 0
	w.h.Reset()
	if err := w.f.Truncate(0); err != nil {
		return err
	}
	_, err := w.f.Seek(0, io.SeekStart)
	return err
}

// place gives the checked part file its final name; without force it never
// replaces an existing file (a hard link fails if the name exists).
func (a *app) place(part, final string, force bool) error {
	if force {
		return os.Rename(part, final)
	}
	if err := os.Link(part, final); err == nil {
		return os.Remove(part)
	} else if errors.Is(err, os.ErrExist) {
		return a.fail(exitUsage, a.p.T("cli.hint.exists_kept", part), "cli.receive.exists", final)
	}
	// No hard links here (some file systems): check, then rename.
	if _, err := os.Lstat(final); err == nil {
		return a.fail(exitUsage, a.p.T("cli.hint.exists"), "cli.receive.exists", final)
	}
	return os.Rename(part, final)
}

// openPart opens a part file without following a symbolic link (O_NOFOLLOW
// where the system has it, and a check either way): whoever can write in
// the download folder could otherwise point .NAME.kluis-part at any file
// of the user's and have kluis overwrite it.
func (a *app) openPart(path string, flag int) (*os.File, error) {
	isLink := func() bool {
		fi, err := os.Lstat(path)
		return err == nil && fi.Mode()&os.ModeSymlink != 0
	}
	linkErr := func() error {
		return a.fail(exitUsage, a.p.T("cli.hint.symlink"), "cli.receive.symlink", path)
	}
	if isLink() {
		return nil, linkErr()
	}
	f, err := os.OpenFile(path, flag|oNoFollow, 0o600)
	if err != nil {
		if isLink() {
			return nil, linkErr()
		}
		return nil, a.fail(exitUsage, a.p.T("cli.hint.writable_dir"), "cli.receive.part_error", a.fileText(err))
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, a.fail(exitUsage, a.p.T("cli.hint.not_regular"), "cli.receive.not_regular", path)
	}
	return f, nil
}
