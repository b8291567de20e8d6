package segment

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"sync"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/internal/blob"
)

// OpenFunc opens a committed blob.
type OpenFunc func(ctx context.Context, key string) (blob.Reader, error)

// sourceError marks a failure of the blob store itself (a network or disk
// error) as it travels through age, so it is not reported as tampering.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// pinnedSource serves the header bytes that were verified against the
// manifest from memory and only the payload from the blob. Otherwise a store
// could show one header to the check and another one to age.
type pinnedSource struct {
	head []byte
	src  io.ReaderAt
}

func (s *pinnedSource) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	if off < int64(len(s.head)) {
		n = copy(p, s.head[off:])
		if n == len(p) {
			return n, nil
		}
		p, off = p[n:], off+int64(n)
	}
	m, err := s.src.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = &sourceError{err}
	}
	return n + m, err
}

// classify turns an error met while reading segment i into the error the
// caller sees: store failures and cancellation stay what they are; anything
// else (an age error, a short blob) means the data is not what was written.
func classify(ctx context.Context, i int, err error) error {
	if se := (*sourceError)(nil); errors.As(err, &se) {
		return fmt.Errorf("segment %d: reading blob: %w", i, se.err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("segment %d: %w", i, ctx.Err())
	}
	if errors.Is(err, ErrIntegrity) {
		return err
	}
	return fmt.Errorf("%w: segment %d: %w", ErrIntegrity, i, err)
}

// openVerified opens the blob of entry i and checks its size and pinned
// header. It returns the blob and the verified first HeaderLen bytes.
func openVerified(ctx context.Context, open OpenFunc, e *Entry, i int) (blob.Reader, []byte, error) {
	if e.HeaderLen <= nonceSize || e.HeaderLen > maxHeaderLen || e.HeaderLen > e.CipherSize {
		return nil, nil, fmt.Errorf("%w: segment %d: bad header length %d", ErrIntegrity, i, e.HeaderLen)
	}
	br, err := open(ctx, e.Key)
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			// The manifest lists it, so it was committed: it has been removed.
			return nil, nil, fmt.Errorf("%w: segment %d: %w", ErrIntegrity, i, err)
		}
		return nil, nil, fmt.Errorf("segment %d: open: %w", i, err)
	}
	if br.Size() != e.CipherSize {
		br.Close()
		return nil, nil, fmt.Errorf("%w: segment %d: blob is %d bytes, expected %d", ErrIntegrity, i, br.Size(), e.CipherSize)
	}
	head := make([]byte, e.HeaderLen)
	if n, err := br.ReadAt(head, 0); n < len(head) {
		br.Close()
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
			return nil, nil, fmt.Errorf("%w: segment %d: header: %w", ErrIntegrity, i, err)
		}
		return nil, nil, fmt.Errorf("segment %d: reading blob: %w", i, err)
	}
	if sum := sha256.Sum256(head); !bytes.Equal(sum[:], e.HeaderHash) {
		br.Close()
		return nil, nil, fmt.Errorf("%w: segment %d: header does not match the manifest", ErrIntegrity, i)
	}
	return br, head, nil
}

// FileReader reads the plaintext of a file across its segments. No byte of a
// segment is released before its blob size and pinned header are checked and
// age has authenticated its final chunk (which fixes its length); every
// other chunk is authenticated by age before it is copied out.
//
// ReadAt may be called from several goroutines at once, and reads of
// different chunks then decrypt in parallel (see ReadAhead): a segment is
// opened and verified once, by the first read that needs it, and the
// others wait for that.
type FileReader struct {
	ctx  context.Context
	m    *Manifest
	open OpenFunc
	id   age.Identity

	mu     sync.Mutex
	cache  [2]*openSegment // most recently used first
	closed bool
}

// openSegment is a verified segment kept open between calls, so sequential
// reads pay for the header check and the final-chunk decryption once.
type openSegment struct {
	index int
	ready chan struct{} // closed when the open below has ended
	err   error         // why it failed to open; set before ready closes
	br    blob.Reader
	ra    io.ReaderAt

	// Under FileReader.mu: reads using the segment, and whether it has
	// left the cache (then the last read out closes its blob).
	refs    int
	evicted bool
}

// NewFileReader reads the file described by m, opening blobs with open and
// decrypting with id. ctx bounds every blob operation.
func NewFileReader(ctx context.Context, m *Manifest, open OpenFunc, id age.Identity) *FileReader {
	return &FileReader{ctx: ctx, m: m, open: open, id: id}
}

// Size is the plaintext size of the file.
func (r *FileReader) Size() int64 { return r.m.Size() }

// ReadAt reads plaintext at off, following io.ReaderAt: n < len(p) only with
// an error, io.EOF when the file ends first. On an error, p[:n] holds only
// verified plaintext.
func (r *FileReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("segment: negative offset %d", off)
	}
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	size := r.m.Size()
	if off >= size {
		if len(p) == 0 && off == size {
			return 0, nil
		}
		if r.isClosed() {
			return 0, fmt.Errorf("segment: read: %w", fs.ErrClosed)
		}
		return 0, io.EOF
	}
	entries := r.m.Entries
	i := sort.Search(len(entries), func(i int) bool { return entries[i].end() > off })
	n := 0
	for n < len(p) && i < len(entries) {
		e := &entries[i]
		seg, err := r.acquire(i)
		if err != nil {
			return n, err
		}
		segOff := off - e.Offset
		want := min(int64(len(p)-n), e.Size-segOff)
		got, err := seg.ra.ReadAt(p[n:n+int(want)], segOff)
		n += got
		off += int64(got)
		failed := int64(got) < want
		r.release(seg, failed)
		if failed {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, classify(r.ctx, i, err)
		}
		i++
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (r *FileReader) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// acquire returns the verified, open segment i, from the cache or fresh,
// for one read; release gives it back. The first read that needs a
// segment opens it without holding r.mu, so reads of other segments go
// on meanwhile; reads of the same one wait for it.
func (r *FileReader) acquire(i int) (*openSegment, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("segment: read: %w", fs.ErrClosed)
	}
	for k, s := range r.cache {
		if s != nil && s.index == i {
			if k != 0 {
				r.cache[0], r.cache[k] = s, r.cache[0]
			}
			s.refs++
			r.mu.Unlock()
			<-s.ready
			if s.err != nil {
				r.release(s, true)
				return nil, s.err
			}
			return s, nil
		}
	}
	s := &openSegment{index: i, ready: make(chan struct{}), refs: 1}
	if last := r.cache[len(r.cache)-1]; last != nil {
		r.evict(last)
	}
	copy(r.cache[1:], r.cache[:len(r.cache)-1])
	r.cache[0] = s
	r.mu.Unlock()

	s.br, s.ra, s.err = r.openSegment(i)
	close(s.ready)
	if s.err != nil {
		r.release(s, true)
		return nil, s.err
	}
	return s, nil
}

// openSegment opens and verifies segment i.
func (r *FileReader) openSegment(i int) (blob.Reader, io.ReaderAt, error) {
	e := &r.m.Entries[i]
	br, head, err := openVerified(r.ctx, r.open, e, i)
	if err != nil {
		return nil, nil, err
	}
	ra, size, err := age.DecryptReaderAt(&pinnedSource{head: head, src: br}, e.CipherSize, r.id)
	if err != nil {
		br.Close()
		return nil, nil, classify(r.ctx, i, err)
	}
	if size != e.Size {
		br.Close()
		return nil, nil, fmt.Errorf("%w: segment %d: holds %d bytes, expected %d", ErrIntegrity, i, size, e.Size)
	}
	return br, ra, nil
}

// release ends one read of s. After a failure s leaves the cache, so the
// next read checks the segment afresh.
func (r *FileReader) release(s *openSegment, failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.refs--
	if failed {
		for k, c := range r.cache {
			if c == s {
				copy(r.cache[k:], r.cache[k+1:])
				r.cache[len(r.cache)-1] = nil
				r.evict(s)
			}
		}
	}
	if s.evicted && s.refs == 0 && s.br != nil {
		s.br.Close()
		s.br = nil
	}
}

// evict takes s out of use: its blob is closed now, or by the last read
// still using it. r.mu is held.
func (r *FileReader) evict(s *openSegment) {
	s.evicted = true
	if s.refs == 0 && s.br != nil {
		s.br.Close()
		s.br = nil
	}
}

// Close releases the open blobs; reads still running close theirs when
// they end.
func (r *FileReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	var errs []error
	for k, s := range r.cache {
		if s == nil {
			continue
		}
		s.evicted = true
		if s.refs == 0 && s.br != nil {
			errs = append(errs, s.br.Close())
			s.br = nil
		}
		r.cache[k] = nil
	}
	return errors.Join(errs...)
}

// ctxReader stops a long streaming read when ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Verify decrypts every segment of m in order and returns the SHA-256 of
// the whole file, after checking it against each entry's hash state and
// m.Sum(). It reads all the data; it is meant for audits and tests.
func Verify(ctx context.Context, m *Manifest, open OpenFunc, id age.Identity) ([]byte, error) {
	h := sha256.New()
	buf := make([]byte, chunkSize)
	for i := range m.Entries {
		e := &m.Entries[i]
		if err := verifySegment(ctx, open, id, e, i, h, buf); err != nil {
			return nil, err
		}
		want, err := restoreHash(e.HashState)
		if err != nil {
			return nil, fmt.Errorf("%w: segment %d: %w", ErrIntegrity, i, err)
		}
		if !bytes.Equal(want.Sum(nil), h.Sum(nil)) {
			return nil, fmt.Errorf("%w: segment %d: content does not match the recorded hash", ErrIntegrity, i)
		}
	}
	want, err := m.Sum()
	if err != nil {
		return nil, err
	}
	sum := h.Sum(nil)
	if !bytes.Equal(sum, want) {
		return nil, fmt.Errorf("%w: file hash does not match the manifest", ErrIntegrity)
	}
	return sum, nil
}

func verifySegment(ctx context.Context, open OpenFunc, id age.Identity, e *Entry, i int, h io.Writer, buf []byte) error {
	br, head, err := openVerified(ctx, open, e, i)
	if err != nil {
		return err
	}
	defer br.Close()
	src := &pinnedSource{head: head, src: br}
	pr, err := age.Decrypt(ctxReader{ctx, io.NewSectionReader(src, 0, e.CipherSize)}, id)
	if err != nil {
		return classify(ctx, i, err)
	}
	n, err := io.CopyBuffer(h, pr, buf)
	if err != nil {
		return classify(ctx, i, err)
	}
	if n != e.Size {
		return fmt.Errorf("%w: segment %d: holds %d bytes, expected %d", ErrIntegrity, i, n, e.Size)
	}
	return nil
}
