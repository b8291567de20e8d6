package api

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

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

// TestPrefetchPanicIsAnError: a panic below the read-ahead, also in its
// own goroutine, comes back as a read error of that download (which the
// handler turns into an aborted answer) instead of ending the process; the
// bytes before it are served.
func TestPrefetchPanicIsAnError(t *testing.T) {
	t.Parallel()
	const size = 4 * prefetchWindow
	data := bytes.Repeat([]byte("kluis"), size/5+1)[:size]
	at := int64(2*prefetchWindow + 1000)
	pf := readAhead(&panicReader{data: data, at: at}, size).(*prefetcher)
	defer pf.wait()
	got, err := io.ReadAll(io.NewSectionReader(pf, 0, size))
	if err == nil || !strings.Contains(err.Error(), "panic: boom") {
		t.Fatalf("read error %v, want the panic as an error", err)
	}
	if len(got) > int(at) || !bytes.Equal(got, data[:len(got)]) || len(got) < prefetchWindow {
		t.Errorf("got %d bytes before the error (panic at %d); want the intact ones", len(got), at)
	}
}
