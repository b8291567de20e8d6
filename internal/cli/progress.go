package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/internal/locale"
)

// progress draws one status line on a terminal: the current file's bar,
// the total bar, the speed and the time left. It draws nothing when on is
// false (Err is not a terminal).
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	p        *locale.Printer
	on       bool
	total    int64
	done     int64 // bytes of all files done, including the current file's
	name     string
	fileSize int64
	fileDone int64
	start    time.Time
	base     int64 // bytes done before this run (not counted for speed)
	last     time.Time
	drawn    bool
}

func (a *app) newProgress(total int64) *progress {
	return &progress{w: a.io.Err, p: a.p, on: a.io.Progress, total: total, start: time.Now()}
}

// file starts a file of which already bytes are done (resumed).
func (p *progress) file(name string, size, already int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.name, p.fileSize, p.fileDone = name, size, already
	p.done += already
	p.base += already
	p.draw(true)
}

// add counts n bytes of the current file.
func (p *progress) add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fileDone += n
	p.done += n
	p.draw(false)
}

// reset moves the current file's count back to off (after a retry).
func (p *progress) reset(off int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done -= p.fileDone - off
	p.fileDone = off
	p.draw(true)
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.on && p.drawn {
		p.draw(true)
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

func bar(done, total int64, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat("=", width) + "]"
	}
	n := int(float64(width) * float64(done) / float64(total))
	n = max(0, min(width, n))
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "]"
}

func pct(done, total int64) int {
	if total <= 0 {
		return 100
	}
	return int(100 * done / total)
}

func (p *progress) draw(force bool) {
	if !p.on {
		return
	}
	now := time.Now()
	if !force && now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	el := now.Sub(p.start).Seconds()
	speed := 0.0
	if el > 0 {
		speed = float64(p.done-p.base) / el
	}
	left := "--:--"
	if speed > 0 {
		secs := int(float64(p.total-p.done) / speed)
		left = fmt.Sprintf("%d:%02d", secs/60, secs%60)
	}
	name := p.name
	if r := []rune(name); len(r) > 24 {
		name = string(r[:23]) + "…"
	}
	fmt.Fprint(p.w, "\r"+p.p.T("cli.progress", name, bar(p.fileDone, p.fileSize, 20), pct(p.fileDone, p.fileSize),
		bar(p.done, p.total, 20), pct(p.done, p.total), p.p.Size(int64(speed)), left)+" \x1b[K")
	p.drawn = true
}

// countingReader reports what passes through it to a progress.
type countingReader struct {
	r io.Reader
	p *progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.p.add(int64(n))
	}
	return n, err
}

// countingWriter reports what passes through it to a progress.
type countingWriter struct {
	w io.Writer
	p *progress
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	if n > 0 {
		c.p.add(int64(n))
	}
	return n, err
}
