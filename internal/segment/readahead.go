package segment

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"
)

// ReadAhead reads one range of a file in order while the windows after the
// one being read are decrypted in parallel, each in a goroutine of its own,
// so a download uses every core: age's chunks are independent once a
// segment's header is verified, and FileReader.ReadAt may run concurrently.
//
// Memory is bounded per ReadAhead: at most Depth windows of WindowSize
// bytes are held or being filled at any time (the one being read out
// included), plus age's own buffer of one chunk per window being
// decrypted.
//
// Integrity is that of the reader below: a window holds only bytes that
// age authenticated. When a window fails (tampering, a blob store error,
// a panic below it), its verified bytes before the failure are handed out
// first and then the error, and nothing after it: later windows, even if
// they decrypted cleanly, are never released, and no new window is
// started. A reader therefore gets the bytes of a damaged file exactly as
// far as a sequential read would have gone.
//
// A ReadAhead is for one goroutine; Close waits for the windows in flight,
// so the reader below may be closed after it.
type ReadAhead struct {
	r     io.ReaderAt
	plan  func(off, limit int64) int64 // end of the window that starts at off
	start int64                        // the range is [start, end) of r
	end   int64
	pos   int64          // the next byte to hand out
	next  int64          // where the next window to start begins
	queue []*aheadWindow // started windows, in order
	depth int            // most windows in the queue
	wg    sync.WaitGroup // the fill goroutines
}

// WindowSize is the size of one read-ahead window (1 MiB): a multiple of
// age's 64 KiB chunk, so windows of a segment start on a chunk boundary
// and no chunk is decrypted twice. On the two-core machine of issue 21 a
// download cost 10% less CPU with 1 MiB windows than with 512 KiB ones
// (fewer goroutines, socket writes and age buffers); 2 MiB gained nothing.
const WindowSize = 16 * chunkSize

// maxDepth bounds the windows of one ReadAhead on machines with many
// cores: 6 MiB.
const maxDepth = 6

// Depth is how many windows a ReadAhead keeps at most: one being read out
// and one being decrypted per core, and at least two, so that decryption
// always overlaps the reader's writes.
func Depth() int { return min(max(runtime.GOMAXPROCS(0)+1, 2), maxDepth) }

var windowPool = sync.Pool{New: func() any { b := make([]byte, WindowSize); return &b }}

// aheadWindow is bytes [off, off+len(buf)) of the reader, or the error
// that stopped the read after buf; done is closed once it is filled.
type aheadWindow struct {
	off  int64
	want int64
	buf  []byte
	err  error
	mem  *[]byte
	done chan struct{}
}

// NewReadAhead returns a ReadAhead of bytes [off, off+n) of r. With a
// *FileReader, windows follow its segments (a window never spans two) and
// age's chunks; other readers are cut into windows at multiples of
// WindowSize.
func NewReadAhead(r io.ReaderAt, off, n int64) *ReadAhead {
	p := &ReadAhead{r: r, start: off, end: off + max(n, 0), pos: off, next: off, depth: Depth(), plan: fixedWindows}
	if fr, ok := r.(*FileReader); ok {
		p.plan = fr.windowEnd
	}
	return p
}

// fixedWindows ends the window at off at the next multiple of WindowSize.
func fixedWindows(off, limit int64) int64 { return min((off/WindowSize+1)*WindowSize, limit) }

// windowEnd ends the window at off at the next multiple of WindowSize
// from the start of off's segment, or where the segment ends.
func (r *FileReader) windowEnd(off, limit int64) int64 {
	entries := r.m.Entries
	i := sort.Search(len(entries), func(i int) bool { return entries[i].end() > off })
	if i == len(entries) {
		return limit
	}
	e := &entries[i]
	end := e.Offset + ((off-e.Offset)/WindowSize+1)*WindowSize
	return min(end, e.end(), limit)
}

// Read implements io.Reader.
func (p *ReadAhead) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	avail, err := p.peek()
	if len(avail) == 0 {
		return 0, err
	}
	n := copy(b, avail)
	p.pos += int64(n)
	return n, nil
}

// WriteTo implements io.WriterTo: each window goes to w as it is, without
// a copy. It returns the bytes w took, and either w's error or the read
// error that stopped it.
func (p *ReadAhead) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		avail, err := p.peek()
		if len(avail) == 0 {
			if err == io.EOF {
				err = nil
			}
			return total, err
		}
		n, werr := w.Write(avail)
		p.pos += int64(n)
		total += int64(n)
		if werr == nil && n < len(avail) {
			werr = io.ErrShortWrite
		}
		if werr != nil {
			return total, werr
		}
	}
}

// Seek implements io.Seeker, relative to the start of the range as for an
// io.SectionReader. Windows that hold the new position are kept; the
// others are dropped once their reads end.
func (p *ReadAhead) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		offset += p.start
	case io.SeekCurrent:
		offset += p.pos
	case io.SeekEnd:
		offset += p.end
	default:
		return 0, errors.New("segment: read-ahead seek: invalid whence")
	}
	if offset < p.start {
		return 0, errors.New("segment: read-ahead seek: negative position")
	}
	p.pos = offset
	return offset - p.start, nil
}

// peek returns the bytes available at pos without moving it (the rest of
// the window that holds pos), or, when there are none, the error that
// ends the read: io.EOF at the end of the range.
func (p *ReadAhead) peek() ([]byte, error) {
	for {
		if p.pos >= p.end {
			return nil, io.EOF
		}
		// Drop windows before pos, and all of them when pos lies before
		// the first one (a seek back).
		for len(p.queue) > 0 {
			w := p.queue[0]
			if p.pos >= w.off && p.pos < w.off+w.want {
				break
			}
			if p.pos < w.off {
				p.drain()
				break
			}
			p.pop()
		}
		if len(p.queue) == 0 {
			p.next = p.pos
		}
		p.fill()
		w := p.queue[0]
		<-w.done
		if rel := p.pos - w.off; rel < int64(len(w.buf)) {
			return w.buf[rel:], nil
		}
		if w.err != nil {
			// Nothing past a failed window is released: the error stays
			// until the reader seeks elsewhere.
			return nil, w.err
		}
		p.pop()
	}
}

// fill starts windows from next until the queue holds depth of them or
// the range is covered; after a failed window, none.
func (p *ReadAhead) fill() {
	for len(p.queue) < p.depth && p.next < p.end {
		if len(p.queue) > 0 && p.failed() {
			return
		}
		end := min(p.plan(p.next, p.end), p.next+WindowSize)
		if end <= p.next {
			end = min(p.next+WindowSize, p.end)
		}
		mem := windowPool.Get().(*[]byte)
		w := &aheadWindow{off: p.next, want: end - p.next, mem: mem, done: make(chan struct{})}
		p.queue = append(p.queue, w)
		p.next = end
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer close(w.done)
			w.buf, w.err = read(p.r, (*mem)[:w.want], w.off)
		}()
	}
}

// failed reports whether a window in the queue has ended with an error.
func (p *ReadAhead) failed() bool {
	for _, w := range p.queue {
		select {
		case <-w.done:
			if w.err != nil {
				return true
			}
		default:
		}
	}
	return false
}

// read fills buf from r at off. A short read is an error (io.EOF inside
// the range means the reader below ended early). A panic below it (in
// decryption or a blob store) becomes the window's error: it runs in a
// goroutine of its own, where a panic would end the process; as an error
// it ends only this read, in the reader's goroutine.
func read(r io.ReaderAt, buf []byte, off int64) (got []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			got, err = buf[:0], fmt.Errorf("segment: read at %d: panic: %v", off, v)
		}
	}()
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return buf, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return buf[:n], err
}

// pop drops the first window; it has been waited for.
func (p *ReadAhead) pop() {
	w := p.queue[0]
	<-w.done
	windowPool.Put(w.mem)
	p.queue[0] = nil
	p.queue = p.queue[1:]
}

// drain drops every window once its read has ended.
func (p *ReadAhead) drain() {
	for len(p.queue) > 0 {
		p.pop()
	}
}

// Close waits for the windows being read and releases their memory. The
// reader below is not closed.
func (p *ReadAhead) Close() error {
	p.drain()
	p.wg.Wait()
	p.pos = p.end
	return nil
}
