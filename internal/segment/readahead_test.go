package segment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// aheadFile is a file of several segments of uneven sizes, so windows meet
// segment ends in the middle of a window and of a chunk.
func aheadFile(t *testing.T) (*memStore, *Manifest, *FileReader, []byte) {
	t.Helper()
	id := newIdentity(t)
	sizes := []int{100_000, 2*WindowSize + 3*chunkSize + 17, 1, WindowSize, 700_001}
	total := 0
	for _, n := range sizes {
		total += n
	}
	data := randBytes(total, 21)
	s := newStore()
	m := writeFile(t, s, id.Recipient(), data, sizes...)
	r := NewFileReader(context.Background(), m, s.open, id)
	t.Cleanup(func() { r.Close() })
	return s, m, r, data
}

// TestReadAheadRanges: any range, read with Read or WriteTo, is exactly
// the file's bytes, whatever window and segment edges it starts and ends
// at.
func TestReadAheadRanges(t *testing.T) {
	t.Parallel()
	_, m, r, data := aheadFile(t)
	size := int64(len(data))
	seg1 := m.Entries[1].Offset
	cases := []struct {
		name     string
		off, end int64
	}{
		{"whole file", 0, size},
		{"empty", 5, 5},
		{"one byte", 99_999, 100_000},
		{"across the first segment end", 99_000, 101_000},
		{"mid chunk to mid window", seg1 + 1000, seg1 + WindowSize + 70_000},
		{"a window exactly", seg1 + WindowSize, seg1 + 2*WindowSize},
		{"the one-byte segment", m.Entries[2].Offset, m.Entries[2].Offset + 1},
		{"to the end", size - 3*WindowSize - 5, size},
		{"last byte", size - 1, size},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := data[tc.off:tc.end]
			p := NewReadAhead(r, tc.off, tc.end-tc.off)
			got, err := io.ReadAll(iotestOneByteThenMore{p})
			p.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("Read: %d bytes, %v; want %d bytes", len(got), err, len(want))
			}
			p = NewReadAhead(r, tc.off, tc.end-tc.off)
			var buf bytes.Buffer
			n, err := p.WriteTo(&buf)
			p.Close()
			if err != nil || n != int64(len(want)) || !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("WriteTo: %d bytes, %v; want %d bytes", n, err, len(want))
			}
		})
	}
}

// iotestOneByteThenMore reads with changing buffer sizes, so reads end
// inside windows as well as on their edges.
type iotestOneByteThenMore struct{ r io.Reader }

func (o iotestOneByteThenMore) Read(p []byte) (int, error) {
	sizes := []int{1, 70_000, 4096, 600_000}
	return o.r.Read(p[:min(len(p), sizes[len(p)%len(sizes)])])
}

// TestReadAheadSeek: a seek forward into a window already read ahead, past
// all of them, back to the start, and relative to the current position
// and the end, each followed by the right bytes.
func TestReadAheadSeek(t *testing.T) {
	t.Parallel()
	_, _, r, data := aheadFile(t)
	const start = 50_000
	n := int64(len(data)) - start
	p := NewReadAhead(r, start, n)
	p.depth = 2 // so that the seek below lands past every window read ahead
	defer p.Close()
	read := func(k int, at int64) {
		t.Helper()
		got := make([]byte, k)
		if _, err := io.ReadFull(p, got); err != nil {
			t.Fatalf("read %d at %d: %v", k, at, err)
		}
		if !bytes.Equal(got, data[start+at:start+at+int64(k)]) {
			t.Fatalf("read %d at %d: wrong bytes", k, at)
		}
	}
	seek := func(off int64, whence int, want int64) {
		t.Helper()
		got, err := p.Seek(off, whence)
		if err != nil || got != want {
			t.Fatalf("Seek(%d, %d) = %d, %v; want %d", off, whence, got, err, want)
		}
	}
	read(10, 0)
	seek(WindowSize+5, io.SeekStart, WindowSize+5) // into a window read ahead
	read(1000, WindowSize+5)
	seek(2*WindowSize, io.SeekCurrent, 3*WindowSize+1005) // past them all
	read(70_000, 3*WindowSize+1005)
	seek(0, io.SeekStart, 0) // back
	read(3*WindowSize, 0)
	seek(-7, io.SeekEnd, n-7)
	read(7, n-7)
	if k, err := p.Read(make([]byte, 1)); k != 0 || err != io.EOF {
		t.Fatalf("read at the end: %d, %v; want io.EOF", k, err)
	}
	seek(10, io.SeekEnd, n+10) // past the end: allowed, reads see EOF
	if k, err := p.Read(make([]byte, 1)); k != 0 || err != io.EOF {
		t.Fatalf("read past the end: %d, %v; want io.EOF", k, err)
	}
	if _, err := p.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("seek before the start accepted")
	}
	if _, err := p.Seek(0, 7); err == nil {
		t.Fatal("invalid whence accepted")
	}
}

// TestReadAheadEndOfFile: a range that ends with the file ends with
// io.EOF (and WriteTo with nil); one that claims more than the file has
// ends with io.ErrUnexpectedEOF after every byte there is.
func TestReadAheadEndOfFile(t *testing.T) {
	t.Parallel()
	_, _, r, data := aheadFile(t)
	size := int64(len(data))
	p := NewReadAhead(r, size-WindowSize-10, WindowSize+10)
	got, err := io.ReadAll(p)
	if err != nil || !bytes.Equal(got, data[size-WindowSize-10:]) {
		t.Fatalf("to the end: %d bytes, %v", len(got), err)
	}
	if k, err := p.Read(make([]byte, 10)); k != 0 || err != io.EOF {
		t.Fatalf("after the end: %d, %v", k, err)
	}
	p.Close()

	p = NewReadAhead(r, size-100, 3*WindowSize)
	defer p.Close()
	var buf bytes.Buffer
	n, err := p.WriteTo(&buf)
	if !errors.Is(err, io.ErrUnexpectedEOF) || n != 100 || !bytes.Equal(buf.Bytes(), data[size-100:]) {
		t.Fatalf("past the end: %d bytes, %v; want the last 100 and io.ErrUnexpectedEOF", n, err)
	}
}

// TestReadAheadErrorMidWindow: a bad chunk in the middle of a window.
// Every byte before it comes out, then the integrity error, and nothing of
// that chunk or after it, also from windows decrypted meanwhile; reading
// on gives the same error again.
func TestReadAheadErrorMidWindow(t *testing.T) {
	t.Parallel()
	s, m, r, data := aheadFile(t)
	e := &m.Entries[1]
	const badChunk = WindowSize/chunkSize + 5 // in the segment's second window, mid-window
	b := bytes.Clone(s.blobs[e.Key])
	b[e.HeaderLen+badChunk*(chunkSize+chunkOverhead)+500] ^= 1
	s.blobs[e.Key] = b
	bad := e.Offset + badChunk*chunkSize

	p := NewReadAhead(r, 0, int64(len(data)))
	defer p.Close()
	var buf bytes.Buffer
	n, err := p.WriteTo(&buf)
	if !errors.Is(err, ErrIntegrity) {
		t.Fatalf("error %v, want ErrIntegrity", err)
	}
	if n != bad || !bytes.Equal(buf.Bytes(), data[:bad]) {
		t.Fatalf("%d bytes before the error, want exactly the %d before the bad chunk", n, bad)
	}
	if k, err := p.Read(make([]byte, 100)); k != 0 || !errors.Is(err, ErrIntegrity) {
		t.Fatalf("read after the error: %d, %v", k, err)
	}
}

// gateReader tells when its read at off has returned.
type gateReader struct {
	r    io.ReaderAt
	off  int64
	done chan struct{}
	once sync.Once
}

func (g *gateReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := g.r.ReadAt(p, off)
	if off == g.off {
		g.once.Do(func() { close(g.done) })
	}
	return n, err
}

// stallWriter holds its first Write until release is closed.
type stallWriter struct {
	bytes.Buffer
	release <-chan struct{}
	waited  bool
	timeout bool
}

func (w *stallWriter) Write(p []byte) (int, error) {
	if !w.waited {
		w.waited = true
		select {
		case <-w.release:
		case <-time.After(10 * time.Second):
			w.timeout = true
		}
	}
	return w.Buffer.Write(p)
}

// TestReadAheadParallelBadThirdWindow is the parallel path of security.md
// item 6: a bad chunk in the third window, found while windows 1 and 2
// are still being sent. Windows 1 and 2 go out, then the verified bytes of
// window 3 before the bad chunk, then the error; nothing of the bad chunk
// or of the windows after it, although they were decrypted meanwhile.
func TestReadAheadParallelBadThirdWindow(t *testing.T) {
	t.Parallel()
	id := newIdentity(t)
	data := randBytes(6*WindowSize, 22)
	s := newStore()
	m := writeFile(t, s, id.Recipient(), data, len(data))
	e := &m.Entries[0]
	badChunk := int64(2*WindowSize/chunkSize + 3)
	b := s.blobs[e.Key]
	b[e.HeaderLen+badChunk*(chunkSize+chunkOverhead)+9] ^= 0x40
	r := NewFileReader(context.Background(), m, s.open, id)
	defer r.Close()

	g := &gateReader{r: r, off: 2 * WindowSize, done: make(chan struct{})}
	p := NewReadAhead(g, 0, int64(len(data)))
	p.depth = 4 // windows 1 to 4 in flight at once, whatever the cores
	defer p.Close()
	w := &stallWriter{release: g.done}
	n, err := p.WriteTo(w)
	if w.timeout {
		t.Fatal("window 3 was not read while window 1 was being sent")
	}
	if !errors.Is(err, ErrIntegrity) {
		t.Fatalf("error %v, want ErrIntegrity", err)
	}
	if want := badChunk * chunkSize; n != want || !bytes.Equal(w.Bytes(), data[:want]) {
		t.Fatalf("%d bytes sent, want exactly the %d before the bad chunk", n, want)
	}
}

// overlapReader records how many reads run at once; each read waits (up to
// a few seconds) for a second one to start, so reads that could overlap do.
type overlapReader struct {
	data   []byte
	active atomic.Int32
	most   atomic.Int32
	two    chan struct{}
	once   sync.Once
}

func (o *overlapReader) ReadAt(p []byte, off int64) (int, error) {
	n := o.active.Add(1)
	defer o.active.Add(-1)
	raise(&o.most, n)
	if n >= 2 {
		o.once.Do(func() { close(o.two) })
	}
	select {
	case <-o.two:
	case <-time.After(2 * time.Second):
	}
	k := copy(p, o.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

// TestReadAheadDecryptsInParallel: windows are read concurrently, not one
// after the other (the read-ahead before issue 21 read one window at a
// time in the background).
func TestReadAheadDecryptsInParallel(t *testing.T) {
	t.Parallel()
	o := &overlapReader{data: randBytes(4*WindowSize, 23), two: make(chan struct{})}
	p := NewReadAhead(o, 0, int64(len(o.data)))
	defer p.Close()
	got, err := io.ReadAll(p)
	if err != nil || !bytes.Equal(got, o.data) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if m := o.most.Load(); m < 2 {
		t.Fatalf("at most %d window read at a time, want them in parallel", m)
	}
}

// panicReader panics on any read at or past at, as a bug in decryption or
// a blob store might.
type panicReader struct {
	data []byte
	at   int64
}

func (p *panicReader) ReadAt(b []byte, off int64) (int, error) {
	if off+int64(len(b)) > p.at {
		panic("boom")
	}
	return copy(b, p.data[off:]), nil
}

// TestReadAheadPanicIsAnError: a panic below the read-ahead, in a window's
// own goroutine, comes back as a read error (which the download handler
// turns into an aborted answer) instead of ending the process; the bytes
// of the windows before it are served.
func TestReadAheadPanicIsAnError(t *testing.T) {
	t.Parallel()
	const size = 4 * WindowSize
	data := bytes.Repeat([]byte("kluis"), size/5+1)[:size]
	at := int64(2*WindowSize + 1000)
	p := NewReadAhead(&panicReader{data: data, at: at}, 0, size)
	defer p.Close()
	got, err := io.ReadAll(p)
	if err == nil || !strings.Contains(err.Error(), "panic: boom") {
		t.Fatalf("read error %v, want the panic as an error", err)
	}
	if len(got) != 2*WindowSize || !bytes.Equal(got, data[:len(got)]) {
		t.Errorf("got %d bytes before the error (panic at %d); want the %d of the intact windows", len(got), at, 2*WindowSize)
	}
}

// TestReadAheadMemory: the windows of a ReadAhead never exceed its depth,
// however far the reader is from the end.
func TestReadAheadMemory(t *testing.T) {
	t.Parallel()
	o := &countingReader{data: randBytes(20*WindowSize, 24)}
	p := NewReadAhead(o, 0, int64(len(o.data)))
	defer p.Close()
	buf := make([]byte, 1000)
	for {
		_, err := p.Read(buf)
		if len(p.queue) > p.depth {
			t.Fatalf("%d windows held, depth %d", len(p.queue), p.depth)
		}
		if m := o.most.Load(); m > int32(p.depth) {
			t.Fatalf("%d reads at once, depth %d", m, p.depth)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if o.bytes.Load() != int64(len(o.data)) {
		t.Fatalf("read %d bytes below for %d: a window was read twice or skipped", o.bytes.Load(), len(o.data))
	}
}

type countingReader struct {
	data   []byte
	active atomic.Int32
	most   atomic.Int32
	bytes  atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n := c.active.Add(1)
	defer c.active.Add(-1)
	raise(&c.most, n)
	k := copy(p, c.data[off:])
	c.bytes.Add(int64(k))
	if k < len(p) {
		return k, fmt.Errorf("short: %w", io.EOF)
	}
	return k, nil
}

// raise sets most to n if n is larger.
func raise(most *atomic.Int32, n int32) {
	for {
		m := most.Load()
		if n <= m || most.CompareAndSwap(m, n) {
			return
		}
	}
}

// blockWriter holds every Write until release is closed.
type blockWriter struct {
	bytes.Buffer
	release chan struct{}
}

func (w *blockWriter) Write(p []byte) (int, error) {
	<-w.release
	return w.Buffer.Write(p)
}

// TestReadAheadStalledWriter: a writer that stops taking bytes (a client
// that stops reading) stops the reads below after depth windows: the
// read-ahead never holds more, however much of the range is left.
func TestReadAheadStalledWriter(t *testing.T) {
	t.Parallel()
	o := &countingReader{data: randBytes(20*WindowSize, 25)}
	p := NewReadAhead(o, 0, int64(len(o.data)))
	defer p.Close()
	limit := int64(p.depth) * WindowSize
	w := &blockWriter{release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := p.WriteTo(w)
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); o.bytes.Load() < limit; {
		if time.Now().After(deadline) {
			close(w.release)
			t.Fatalf("only %d bytes read ahead of a stalled writer, want %d", o.bytes.Load(), limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // room for a read that should not come
	read := o.bytes.Load()
	close(w.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if read != limit {
		t.Errorf("%d bytes read while the writer had taken none; want the %d of depth %d windows", read, limit, p.depth)
	}
	if !bytes.Equal(w.Bytes(), o.data) {
		t.Error("wrong bytes after the writer went on")
	}
}
