// Package blob defines the contract of Kluis's blob stores: where the
// encrypted segments live. Implementations: blob/local (a folder, the
// embedded default) and, later, an S3-compatible store. blobtest holds the
// conformance suite that every implementation runs.
//
// A blob store only ever sees age ciphertext; it never needs a key.
package blob

import (
	"context"
	"errors"
	"io"
	"regexp"
	"time"
)

// ErrNotFound is returned by Open when no blob exists under the key.
var ErrNotFound = errors.New("blob: not found")

// ErrNoSpace is returned (wrapped) by Writer.Write and Writer.Commit when the
// storage is full. Nothing of the blob is left behind.
var ErrNoSpace = errors.New("blob: no space left on storage")

// keyPattern is the only shape of key a store accepts. Keys are built from
// server-made ids only, never from user input, but stores check anyway.
var keyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}(/[a-z0-9][a-z0-9_-]{0,63}){0,7}$`)

// ValidKey reports whether key may be used with a Store.
func ValidKey(key string) bool { return keyPattern.MatchString(key) }

// Store holds immutable blobs under keys.
type Store interface {
	// Create starts a new blob. Nothing is visible under key until Commit
	// returns nil; after Commit the blob survives a crash (it is durable).
	// Returns an error for an invalid key.
	Create(ctx context.Context, key string) (Writer, error)

	// Open returns a reader for a committed blob. Returns ErrNotFound if
	// no blob exists under key.
	Open(ctx context.Context, key string) (Reader, error)

	// Delete removes the blob under key (every version of it, where the
	// store keeps versions). Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error

	// List calls fn for every committed blob whose key starts with prefix,
	// in no particular order. A prefix of "" lists everything.
	List(ctx context.Context, prefix string, fn func(Info) error) error

	// CollectTemp removes unfinished writes (temporary files, unfinished
	// multipart uploads) started before the given time, and returns how
	// many it removed. Writes still in progress are younger than that.
	CollectTemp(ctx context.Context, before time.Time) (int, error)
}

// Info describes a committed blob.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Writer receives the bytes of a new blob.
type Writer interface {
	io.Writer
	// Commit makes the blob durable and visible under its key.
	Commit() error
	// Abort discards everything written. Safe to call after Commit (then
	// it does nothing) and more than once.
	Abort() error
}

// Reader reads a committed blob.
type Reader interface {
	io.ReaderAt
	io.Closer
	Size() int64
}
