package e2e

import (
	"fmt"
	"io"
	"testing"
	"time"
)

// cutUpload runs upload (which starts a page's tus upload of size bytes
// and waits until the page says it was sent) through px, armed to cut the
// connection that carries the client→server byte at offset at from now,
// with a reset after a second's stall (the server has read what reached
// it by then, as in TestBrowserSend: a reset also drops what sits unread
// in the server's receive queue). Browsers reuse connections, so a byte
// position, not "the next connection", picks the upload.
//
// It checks that the upload was cut and that the server received less
// than 1.5 times the file (the page resumed where the server stopped, it
// did not start over), logs the ratio to the test log and results, and
// returns it.
func cutUpload(t *testing.T, px *proxy, results io.Writer, name string, size, at int64, upload func()) float64 {
	t.Helper()
	base, cutsBefore := px.forwarded.Load(), px.cuts.Load()
	px.cutTotalStall.Store(int64(time.Second))
	px.cutTotal.Store(base + at)
	upload()
	px.cutTotal.Store(0)
	sent, cuts := px.forwarded.Load()-base, px.cuts.Load()-cutsBefore
	ratio := float64(sent) / float64(size)
	t.Logf("%s: %d bytes of file, %d bytes forwarded client→server (ratio %.4f), %d cut(s)", name, size, sent, ratio, cuts)
	fmt.Fprintf(results, "%s ratio %.4f (%d of %d bytes), cuts %d\n", name, ratio, sent, size, cuts)
	if cuts < 1 {
		t.Errorf("%s: the upload was never cut", name)
	}
	if sent > size*3/2 {
		t.Errorf("%s: the server received %d bytes for a file of %d (%.3f×): the upload started over", name, sent, size, ratio)
	}
	return ratio
}
