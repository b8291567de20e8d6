// Package local stores blobs in a folder: the embedded default.
//
// Layout: dir/blobs/<key> holds committed blobs (a key's '/' separators
// become subfolders) and dir/tmp/<random>.tmp holds writes in progress.
// Both live on the same file system, so a commit is a rename. The order of
// a commit (write temp, fsync, rename, fsync the folder) is what makes a
// committed blob survive a crash; the caller commits its database only
// after Commit returns (security.md item 25).
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kluis-nl/kluis/internal/blob"
)

const (
	dirMode  = 0o700
	fileMode = 0o600
	tmpExt   = ".tmp"
)

// errInvalidKey is returned for a key that does not match blob.ValidKey.
// Checked before any path is built, so "../" can never leave the folder.
var errInvalidKey = errors.New("local: invalid blob key")

// TempFile is what a Writer writes a blob's bytes through: the temporary
// file itself, unless Options.WrapTemp puts something in between.
type TempFile interface {
	io.Writer
	Sync() error
}

// Options tune a Store. The zero value is what production uses.
type Options struct {
	// WrapTemp, if set, wraps each temporary file; every Write and the
	// fsync in Commit go through the result. It exists so tests (here and
	// in the packages above) can inject ENOSPC and other I/O failures
	// without filling a disk (security.md item 28).
	WrapTemp func(TempFile) TempFile
}

// Store is a blob.Store in a folder on the local file system.
type Store struct {
	blobs string // dir/blobs
	tmp   string // dir/tmp
	opts  Options
}

var _ blob.Store = (*Store)(nil)

// New opens the store in dir, creating dir, dir/blobs and dir/tmp (mode
// 0700) as needed.
func New(dir string) (*Store, error) { return NewWithOptions(dir, Options{}) }

// NewWithOptions is New with options; see Options.
func NewWithOptions(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("local: empty folder name")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	s := &Store{
		blobs: filepath.Join(abs, "blobs"),
		tmp:   filepath.Join(abs, "tmp"),
		opts:  opts,
	}
	if err := os.MkdirAll(abs, dirMode); err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	for _, d := range []string{s.blobs, s.tmp} {
		if err := os.Mkdir(d, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("local: %w", err)
		}
		fi, err := os.Stat(d)
		if err != nil {
			return nil, fmt.Errorf("local: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("local: %s is not a folder", d)
		}
	}
	// A fresh store must not lose its folders in a crash either.
	if err := syncDir(abs); err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	return s, nil
}

// path maps a valid key to its file. Callers check the key first.
func (s *Store) path(key string) string {
	return filepath.Join(s.blobs, filepath.FromSlash(key))
}

// Create implements blob.Store.
func (s *Store) Create(ctx context.Context, key string) (blob.Writer, error) {
	if !blob.ValidKey(key) {
		return nil, fmt.Errorf("%w: %q", errInvalidKey, key)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var rnd [16]byte
	rand.Read(rnd[:]) // never fails (crypto/rand, Go 1.24+)
	name := filepath.Join(s.tmp, hex.EncodeToString(rnd[:])+tmpExt)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return nil, fmt.Errorf("local: create %s: %w", key, mapNoSpace(err))
	}
	w := &writer{s: s, key: key, name: name, f: f, out: f}
	if s.opts.WrapTemp != nil {
		w.out = s.opts.WrapTemp(f)
	}
	return w, nil
}

// Open implements blob.Store.
func (s *Store) Open(ctx context.Context, key string) (blob.Reader, error) {
	if !blob.ValidKey(key) {
		return nil, fmt.Errorf("%w: %q", errInvalidKey, key)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		if isMissing(err) {
			return nil, fmt.Errorf("%w: %s", blob.ErrNotFound, key)
		}
		return nil, fmt.Errorf("local: open %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("local: open %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		// A folder: key "a" while blobs exist under "a/...".
		f.Close()
		return nil, fmt.Errorf("%w: %s", blob.ErrNotFound, key)
	}
	return &reader{f: f, size: fi.Size()}, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if !blob.ValidKey(key) {
		return fmt.Errorf("%w: %q", errInvalidKey, key)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := s.path(key)
	fi, err := os.Lstat(p)
	if err != nil {
		if isMissing(err) {
			return nil
		}
		return fmt.Errorf("local: delete %s: %w", key, err)
	}
	if fi.IsDir() {
		return nil // no blob under this key, only under longer ones
	}
	if err := os.Remove(p); err != nil {
		if isMissing(err) {
			return nil
		}
		return fmt.Errorf("local: delete %s: %w", key, err)
	}
	// Empty folders would pile up, one per transfer. Remove fails on a
	// folder that is not empty, which is exactly when to stop. A Commit
	// racing with this retries its mkdir (see commit).
	dir := filepath.Dir(p)
	for dir != s.blobs && strings.HasPrefix(dir, s.blobs+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			break
		}
		dir = filepath.Dir(dir)
	}
	// dir is the deepest folder whose entries changed; without the fsync
	// a deleted blob could come back after a crash.
	if err := syncDir(dir); err != nil && !isMissing(err) {
		return fmt.Errorf("local: delete %s: %w", key, err)
	}
	return nil
}

// List implements blob.Store.
//
// The walk starts in the folder the prefix names up to its last "/" (for
// "t/ID/" the transfer's own folder), so listing one transfer does not
// read the folder of all transfers (the purge lists each transfer it
// purges).
func (s *Store) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	root := s.blobs
	if i := strings.LastIndex(prefix, "/"); i > 0 && blob.ValidKey(prefix[:i]) {
		root = s.path(prefix[:i])
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			if (p != s.blobs || root != s.blobs) && isMissing(err) {
				return nil // deleted while we walked, or no blob under the prefix's folder
			}
			return err
		}
		if p == s.blobs {
			return nil
		}
		rel, err := filepath.Rel(s.blobs, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Only descend where a matching key could be.
			dk := key + "/"
			if !strings.HasPrefix(dk, prefix) && !strings.HasPrefix(prefix, dk) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !blob.ValidKey(key) || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if isMissing(err) {
				return nil
			}
			return err
		}
		return fn(blob.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("local: list %q: %w", prefix, err)
	}
	return nil
}

// CollectTemp implements blob.Store. A writer in progress touches its
// temporary file with every write, so the modification time is the time of
// the last write: a stalled upload counts as unfinished from then on.
func (s *Store) CollectTemp(ctx context.Context, before time.Time) (int, error) {
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		return 0, fmt.Errorf("local: collect: %w", err)
	}
	n := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), tmpExt) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			if isMissing(err) {
				continue
			}
			return n, fmt.Errorf("local: collect: %w", err)
		}
		if !fi.ModTime().Before(before) {
			continue
		}
		if err := os.Remove(filepath.Join(s.tmp, e.Name())); err != nil {
			if isMissing(err) {
				continue // its writer finished or aborted meanwhile
			}
			return n, fmt.Errorf("local: collect: %w", err)
		}
		n++
	}
	return n, nil
}

type writerState int

const (
	stateOpen writerState = iota
	stateCommitted
	stateAborted
	stateFailed
)

// writer writes straight into its temporary file: memory stays bounded by
// what the caller passes to Write. Not safe for concurrent use.
type writer struct {
	s     *Store
	key   string
	name  string   // the temporary file
	f     *os.File // nil once closed
	out   TempFile // f, or f wrapped by Options.WrapTemp
	state writerState
	err   error // why the writer failed
}

func (w *writer) Write(p []byte) (int, error) {
	switch w.state {
	case stateCommitted:
		return 0, errors.New("local: write after commit")
	case stateAborted:
		return 0, errors.New("local: write after abort")
	case stateFailed:
		return 0, fmt.Errorf("local: write after failure: %w", w.err)
	}
	n, err := w.out.Write(p)
	if err != nil {
		// A half-written blob is of no use to anyone: drop it now, so a
		// full disk frees what this upload took (security.md item 28).
		return n, w.fail(fmt.Errorf("local: write %s: %w", w.key, mapNoSpace(err)))
	}
	return n, nil
}

func (w *writer) Commit() error {
	switch w.state {
	case stateCommitted:
		return errors.New("local: already committed")
	case stateAborted:
		return errors.New("local: commit after abort")
	case stateFailed:
		return fmt.Errorf("local: commit after failure: %w", w.err)
	}
	if err := w.out.Sync(); err != nil {
		return w.fail(fmt.Errorf("local: commit %s: fsync: %w", w.key, mapNoSpace(err)))
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return w.fail(fmt.Errorf("local: commit %s: close: %w", w.key, mapNoSpace(err)))
	}
	if err := w.s.commit(w.name, w.key); err != nil {
		return w.fail(fmt.Errorf("local: commit %s: %w", w.key, mapNoSpace(err)))
	}
	w.state = stateCommitted
	return nil
}

func (w *writer) Abort() error {
	if w.state != stateOpen {
		return nil
	}
	w.state = stateAborted
	return w.cleanup()
}

// fail ends the writer with err and removes everything it left behind.
func (w *writer) fail(err error) error {
	w.state = stateFailed
	w.err = err
	if cerr := w.cleanup(); cerr != nil {
		return errors.Join(err, cerr)
	}
	return err
}

func (w *writer) cleanup() error {
	var errs []error
	if w.f != nil {
		errs = append(errs, w.f.Close())
		w.f = nil
	}
	if err := os.Remove(w.name); err != nil && !isMissing(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// commit moves a synced, closed temporary file to its key. On error nothing
// is visible under key (the temporary file is the caller's to remove).
func (s *Store) commit(tmp, key string) error {
	final := s.path(key)
	dir := filepath.Dir(final)
	var err error
	// A Delete of the last blob in dir removes dir; if it does so between
	// our mkdir and our rename (or between two levels of mkdir), we get
	// ENOENT: try again.
	for range 5 {
		if err = s.mkdirs(dir); err == nil {
			err = renameNoReplace(tmp, final)
		}
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		if _, serr := os.Stat(tmp); serr != nil {
			// Our temporary file is gone: CollectTemp took it.
			return fmt.Errorf("temporary file was collected: %w", err)
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("blob exists, blobs are never overwritten: %w", err)
		}
		return err
	}
	if err := syncDir(dir); err != nil {
		// Not durable, so not committed: take it back, so that an error
		// means nothing is visible, as the caller will assume.
		os.Remove(final)
		return err
	}
	return nil
}

// mkdirs is os.MkdirAll below s.blobs that also fsyncs the parent of each
// folder it creates, so that a committed blob's path survives a crash.
func (s *Store) mkdirs(dir string) error {
	rel, err := filepath.Rel(s.blobs, dir)
	if err != nil {
		return err
	}
	if rel == "." {
		return nil
	}
	cur := s.blobs
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		parent := cur
		cur = filepath.Join(cur, part)
		err := os.Mkdir(cur, dirMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := syncDir(parent); err != nil {
			return err
		}
	}
	return nil
}

// reader is a committed blob opened for reading.
type reader struct {
	f    *os.File
	size int64
}

func (r *reader) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r *reader) Close() error                            { return r.f.Close() }
func (r *reader) Size() int64                             { return r.size }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// isMissing reports whether err means "no such file". ENOTDIR counts: for
// key "a/b" while "a" is a blob, there is no blob "a/b".
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// mapNoSpace wraps a full-disk error in blob.ErrNoSpace, keeping the
// original error reachable with errors.Is.
func mapNoSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", blob.ErrNoSpace, err)
	}
	return err
}
