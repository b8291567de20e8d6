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

// defaultCacheWindows is Config.CacheWindows's default: room for the
// windows between the reads of a download's parallel read-ahead (three or
// four windows apart on a small machine), and a segment's final chunk.
const defaultCacheWindows = 4

// window is a range of the blob held in memory; never changed once made.
type window struct {
	off  int64
	data []byte
}

func (w *window) covers(off int64) bool { return off >= w.off && off < w.off+int64(len(w.data)) }

// newWindow returns a window of n bytes (at most readAhead) at off, with a
// recycled buffer if there is one: a download streams a GiB through 1 MiB
// windows, and allocating and zeroing each anew cost about a tenth of the
// server's CPU (with the garbage collection it caused).
func (s *Store) newWindow(off, n int64) *window {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return &window{off: off, data: (*b)[:n]}
	}
	return &window{off: off, data: make([]byte, n, s.readAhead)}
}

// recycle gives w's buffer back for newWindow; w must not be used after.
func (s *Store) recycle(w *window) {
	if int64(cap(w.data)) == s.readAhead {
		b := w.data[:cap(w.data)]
		s.bufs.Put(&b)
	}
}

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
// reads fail. The windows it held go back for newWindow: a download opens
// a reader per segment, and dropping each one's last windows (a third of a
// 16 MiB segment) left about 320 MiB of garbage per GiB downloaded (heap
// profile of kluis serve on S3). Recycling them did not change the
// download's speed or CPU on the two-core machine, but spares the memory
// of many downloads at once.
func (r *reader) Close() error {
	r.mu.Lock()
	r.closed = true
	cached := r.cache
	r.cache = nil
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	// A miss may still be copying from a window it has just kept (it holds
	// fetchMu, not mu, while it does): wait for it. It cannot wait on the
	// stream any more, whose goroutine has ended and closed its channel.
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	for _, w := range cached {
		r.s.recycle(w)
	}
	if r.st != nil {
		// Windows the stream read ahead that no read took.
		for c := range r.st.ch {
			if c.w != nil {
				r.s.recycle(c.w)
			}
		}
		r.st = nil
	}
	return nil
}

// ReadAt implements io.ReaderAt; safe for concurrent use. Reads are served
// from the windows kept in memory; a miss is served by:
//
//   - the running stream, if the read is at or up to CacheWindows windows
//     ahead of where it is (a sequential reader costs one GET per blob,
//     and so do parallel readers a few windows apart: the windows the
//     stream passes are kept for the reads behind);
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
		// Nothing else holds a cached window: reads copy from it under
		// r.mu, or under r.fetchMu before the next keep. So its buffer
		// can serve again.
		r.s.recycle(r.cache[0])
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
	// A read up to reach ahead of the stream pulls it forward, and every
	// window it passes is kept for the reads behind: a download decrypts
	// several windows of a segment at once (segment.ReadAhead), so its
	// reads arrive a few windows apart and out of order.
	reach := r.s.readAhead * int64(max(r.s.windows, r.s.prefetch))
	st := r.st
	if st == nil || off < st.next || off >= st.next+reach {
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
		w := r.s.newWindow(off, min(r.s.readAhead, r.size-off))
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
		r.keep(c.w)
		if c.w.covers(off) {
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
			w := r.s.newWindow(pos, min(r.s.readAhead, r.size-pos))
			if _, err := io.ReadFull(body, w.data); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				send(chunk{err: fmt.Errorf("s3: read %s at %d: %w", r.key, pos, err)})
				return
			}
			if !send(chunk{w: w}) {
				return
			}
			pos += int64(len(w.data))
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
