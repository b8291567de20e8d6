package s3

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/minio/minio-go/v7"

	"github.com/kluis-nl/kluis/internal/blob"
)

// defaultPrefetch is Config.Prefetch's default: a sequential Reader's
// stream runs up to this many ReadAhead windows ahead of the reads.
const defaultPrefetch = 2

// window is a range of the blob held in memory; never changed once made.
type window struct {
	off  int64
	data []byte
}

func (w *window) covers(off int64) bool { return off >= w.off && off < w.off+int64(len(w.data)) }

// stream is one GET of the blob from off to its end, read by a goroutine
// into ReadAhead-sized chunks that wait in ch, at most Prefetch of them
// (then the goroutine blocks, and TCP flow control stops the server).
type stream struct {
	next   int64 // the offset of the next chunk to come out of ch
	ch     chan chunk
	cancel context.CancelFunc
}

// chunk is a piece of a stream, or the error that ended it.
type chunk struct {
	w   *window
	err error
}

type reader struct {
	s         *Store
	key, obj  string
	size      int64
	etag      string
	versionID string

	// ctx ends at Close and cancels the requests still running; wg counts
	// the stream goroutines, so Close returns only when none is left.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// fetchMu serializes what a cache miss does: reading from the stream,
	// replacing it, or a ranged GET. It is held while waiting on the
	// network; mu is not.
	fetchMu sync.Mutex
	st      *stream // nil when no stream runs; under fetchMu

	mu     sync.Mutex
	cache  []*window // most recently used last
	next   int64     // where the last read ended: a read there is sequential
	closed bool
}

func (r *reader) Size() int64 { return r.size }

// Close stops the stream, if any, and waits for its goroutine; later
// reads fail.
func (r *reader) Close() error {
	r.mu.Lock()
	r.closed = true
	r.cache = nil
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return nil
}

// ReadAt implements io.ReaderAt; safe for concurrent use. Reads are served
// from the windows kept in memory; a miss is served by:
//
//   - the running stream, if the read is at or a little ahead of where it
//     is (a sequential reader costs one GET per blob);
//   - a new stream from the read's offset, if the read continues the
//     previous one (a sequential reader after a seek);
//   - otherwise one ranged GET of a ReadAhead window (or, for a read of at
//     least ReadAhead bytes, of the read itself, straight into p), which
//     leaves the stream alone: age reads a segment's final chunk before
//     its payload.
func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("s3: read %s: negative offset", r.key)
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= r.size {
			return n, io.EOF
		}
		k, seq, err := r.fromCache(p[n:], pos)
		if err == nil && k == 0 {
			k, err = r.miss(p[n:], pos, seq)
		}
		if err != nil {
			if r.ctx.Err() != nil {
				err = fmt.Errorf("s3: read %s: reader closed", r.key)
			}
			return n, err
		}
		n += k
		r.mu.Lock()
		r.next = pos + int64(k)
		r.mu.Unlock()
	}
	if off+int64(n) >= r.size {
		// Reached the end exactly: allowed to say so (io.ReaderAt).
		return n, io.EOF
	}
	return n, nil
}

// fromCache copies what a cached window holds at off into p. If none
// does, it reports whether the read continues the previous one.
func (r *reader) fromCache(p []byte, off int64) (n int, seq bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, false, fmt.Errorf("s3: read %s: reader closed", r.key)
	}
	for i := len(r.cache) - 1; i >= 0; i-- {
		w := r.cache[i]
		if w.covers(off) {
			if i != len(r.cache)-1 {
				r.cache = append(append(r.cache[:i:i], r.cache[i+1:]...), w)
			}
			return copy(p, w.data[off-w.off:]), false, nil
		}
	}
	return 0, off == r.next, nil
}

// keep adds w to the cache, dropping the least recently used window if
// the cache is full.
func (r *reader) keep(w *window) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if len(r.cache) >= r.s.windows+1 {
		r.cache = append(r.cache[:0], r.cache[1:]...)
	}
	r.cache = append(r.cache, w)
}

// miss serves a read at off that no cached window holds; see ReadAt.
func (r *reader) miss(p []byte, off int64, seq bool) (int, error) {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	// Another read may have brought the window in meanwhile.
	if k, _, err := r.fromCache(p, off); k > 0 || err != nil {
		return k, err
	}
	ahead := r.s.readAhead * int64(r.s.prefetch)
	st := r.st
	if st == nil || off < st.next || off >= st.next+ahead {
		st = nil
		if seq && r.size-off > r.s.readAhead {
			st = r.startStream(off, nil, nil, nil)
		}
	}
	if st == nil {
		rest := int64(len(p))
		if rest >= r.s.readAhead {
			k := int(min(rest, r.size-off))
			return k, r.fetch(r.ctx, p[:k], off)
		}
		w := &window{off: off, data: make([]byte, min(r.s.readAhead, r.size-off))}
		if err := r.fetch(r.ctx, w.data, off); err != nil {
			return 0, err
		}
		r.keep(w)
		return copy(p, w.data), nil
	}
	for {
		c, ok := <-st.ch
		if !ok {
			// Only Close ends a stream early without saying why.
			r.stopStream()
			return 0, fmt.Errorf("s3: read %s: reader closed", r.key)
		}
		if c.err != nil {
			r.stopStream()
			return 0, c.err
		}
		st.next = c.w.off + int64(len(c.w.data))
		if c.w.covers(off) {
			r.keep(c.w)
			return copy(p, c.w.data[off-c.w.off:]), nil
		}
	}
}

// startStream replaces the stream with one from off. If body is not nil,
// it is the response to that GET, made with ctx (a child of r.ctx that
// cancel ends). r.fetchMu is held.
func (r *reader) startStream(off int64, body io.ReadCloser, ctx context.Context, cancel context.CancelFunc) *stream {
	r.stopStream()
	if body == nil {
		ctx, cancel = context.WithCancel(r.ctx)
	}
	st := &stream{next: off, ch: make(chan chunk, r.s.prefetch), cancel: cancel}
	r.st = st
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(st.ch)
		send := func(c chunk) bool {
			select {
			case st.ch <- c:
				return true
			case <-ctx.Done():
				return false
			}
		}
		if body == nil {
			var err error
			if body, err = r.get(ctx, off, r.size-off); err != nil {
				send(chunk{err: err})
				return
			}
		}
		defer body.Close()
		for pos := off; pos < r.size; {
			buf := make([]byte, min(r.s.readAhead, r.size-pos))
			if _, err := io.ReadFull(body, buf); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				send(chunk{err: fmt.Errorf("s3: read %s at %d: %w", r.key, pos, err)})
				return
			}
			if !send(chunk{w: &window{off: pos, data: buf}}) {
				return
			}
			pos += int64(len(buf))
		}
	}()
	return st
}

// stopStream cancels the stream, if any; its goroutine ends on its own
// (Close waits for it). r.fetchMu is held.
func (r *reader) stopStream() {
	if r.st != nil {
		r.st.cancel()
		r.st = nil
	}
}

// fetch fills p with the bytes at off, in one ranged GET.
func (r *reader) fetch(ctx context.Context, p []byte, off int64) error {
	body, err := r.get(ctx, off, int64(len(p)))
	if err != nil {
		return err
	}
	defer body.Close()
	if _, err := io.ReadFull(body, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("s3: read %s at %d: %w", r.key, off, err)
	}
	return nil
}

// get starts a GET of n bytes at off of the version that Open saw.
func (r *reader) get(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	var opts minio.GetObjectOptions
	if err := opts.SetRange(off, off+n-1); err != nil {
		return nil, fmt.Errorf("s3: read %s: %w", r.key, err)
	}
	if r.versionID != "" && r.versionID != "null" {
		opts.VersionID = r.versionID
	} else if r.etag != "" {
		opts.SetMatchETag(r.etag)
	}
	body, _, _, err := r.s.core.GetObject(ctx, r.s.bucket, r.obj, opts)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("s3: read %s: %w", r.key, blob.ErrNotFound)
		}
		return nil, fmt.Errorf("s3: read %s at %d: %w", r.key, off, err)
	}
	return body, nil
}
