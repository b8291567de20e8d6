package segment

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"

	"filippo.io/age"
)

// ErrSegmentFull is returned by Writer.Write when the segment has reached
// MaxSize; the bytes it did not accept belong in the next segment.
var ErrSegmentFull = errors.New("segment: segment is full")

var errWriterClosed = errors.New("segment: writer is closed")

// Writer encrypts one segment. Its memory is age's chunk buffer plus a few
// hash states, whatever the segment size.
type Writer struct {
	cw      *countingWriter
	enc     io.WriteCloser
	hash    hash.Hash // running hash of the whole file
	offset  int64
	written int64

	headerLen  int64
	headerHash []byte

	err    error // sticky: after a failed write the segment is unusable
	closed bool
}

// countingWriter measures what age writes to dst and, while head is set,
// hashes it: that is how the header and nonce are captured without
// re-parsing the output.
type countingWriter struct {
	dst  io.Writer
	n    int64
	head hash.Hash
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.dst.Write(p)
	if c.head != nil {
		c.head.Write(p[:n])
	}
	c.n += int64(n)
	return n, err
}

// NewWriter starts a segment at plaintext offset, encrypted to r and written
// to dst. hashState is the running hash state of the file so far (from
// Manifest.HashState); nil starts a new file, which must be at offset 0.
func NewWriter(dst io.Writer, r age.Recipient, offset int64, hashState []byte) (*Writer, error) {
	return NewWriterTo(dst, []age.Recipient{r}, offset, hashState)
}

// NewWriterTo is NewWriter for a segment that each of rs can decrypt (one
// age header stanza per recipient): Kluis adds a file's scan recipient to
// the transfer's until the file has been scanned.
func NewWriterTo(dst io.Writer, rs []age.Recipient, offset int64, hashState []byte) (*Writer, error) {
	if len(rs) == 0 || slices.Contains(rs, nil) {
		return nil, errors.New("segment: no recipient")
	}
	if offset < 0 || (hashState == nil && offset != 0) {
		return nil, fmt.Errorf("segment: offset %d without a matching hash state", offset)
	}
	h, err := restoreHash(hashState)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	if n, ok := hashedLen(hashState); ok && hashState != nil && n != offset {
		return nil, fmt.Errorf("segment: hash state covers %d bytes, segment starts at %d", n, offset)
	}
	cw := &countingWriter{dst: dst, head: sha256.New()}
	// age.Encrypt writes exactly the header and the payload nonce before it
	// returns; the payload only follows on Write and Close.
	enc, err := age.Encrypt(cw, rs...)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	w := &Writer{
		cw: cw, enc: enc, hash: h, offset: offset,
		headerLen: cw.n, headerHash: cw.head.Sum(nil),
	}
	cw.head = nil
	return w, nil
}

// Write encrypts plaintext. When the segment is full it accepts what fits
// and returns ErrSegmentFull; the caller closes this segment and writes the
// rest, p[n:], to the next one.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errWriterClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	full := false
	if rem := w.Remaining(); int64(len(p)) > rem {
		p, full = p[:rem], true
	}
	n, err := w.enc.Write(p)
	w.hash.Write(p[:n])
	w.written += int64(n)
	if err != nil {
		w.err = fmt.Errorf("segment: write: %w", err)
		return n, w.err
	}
	if full {
		return n, ErrSegmentFull
	}
	return n, nil
}

// Remaining is how many more plaintext bytes the segment accepts.
func (w *Writer) Remaining() int64 { return maxSize - w.written }

// Written is how many plaintext bytes the segment holds so far.
func (w *Writer) Written() int64 { return w.written }

// Close writes the final chunk and returns the segment's entry, complete
// but for Key. A segment closed without any data yields an entry of Size 0,
// which Manifest.Append refuses: the caller should discard that blob.
func (w *Writer) Close() (Entry, error) {
	if w.closed {
		return Entry{}, errWriterClosed
	}
	w.closed = true
	if w.err != nil {
		return Entry{}, w.err
	}
	if err := w.enc.Close(); err != nil {
		w.err = fmt.Errorf("segment: close: %w", err)
		return Entry{}, w.err
	}
	return Entry{
		Offset:     w.offset,
		Size:       w.written,
		CipherSize: w.cw.n,
		HeaderHash: w.headerHash,
		HeaderLen:  w.headerLen,
		HashState:  marshalHash(w.hash),
	}, nil
}
