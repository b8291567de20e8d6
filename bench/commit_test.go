package bench

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/app"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// commitSegment is the segment bound of the commit benchmark's server: one
// tus PATCH of exactly this many bytes is exactly one full segment, and a
// file of N segments costs N × 64 KiB to set up.
const commitSegment = 64 << 10

// BenchmarkPatchCommit measures one tus PATCH that adds one segment to a
// file that already has 10, 100 or 1,500 segments: the request, the
// encryption of 64 KiB, the blob's fsync and rename, and the segment's
// database commit. The time per PATCH should not grow with the segments
// before it (issue 11, item 6: it grew from 19 ms to 64 ms at 1,500 when
// every commit resealed the whole manifest). The setup (one PATCH of
// N × 64 KiB, cut into N segments by the server's segment bound) is not
// timed; b.N PATCHes follow, so the file ends at N + b.N segments.
func BenchmarkPatchCommit(b *testing.B) {
	ce, err := newCommitEnv(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer ce.close()
	for _, segs := range []int{10, 100, 1500} {
		b.Run("segments="+strconv.Itoa(segs), func(b *testing.B) {
			c, err := ce.createTransfer()
			if err != nil {
				b.Fatal(err)
			}
			total := int64(segs+b.N) * commitSegment
			path, err := ce.tusCreate(c.UploadToken, total)
			if err != nil {
				b.Fatal(err)
			}
			if err := ce.patch(c.UploadToken, path, 0, int64(segs)*commitSegment); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(commitSegment)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				off := int64(segs+i) * commitSegment
				if err := ce.patch(c.UploadToken, path, off, commitSegment); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			ce.removeTransferBlobs(c.ID)
		})
	}
}

// newCommitEnv is an in-process server like newEnv's, with 64 KiB
// segments and its own data folder.
func newCommitEnv(dir string) (*env, error) {
	e, err := startEnv(dir, app.Options{Engine: func(c *transfer.Config) { c.SegmentSize = commitSegment }})
	if err != nil {
		return nil, err
	}
	e.client = &http.Client{Transport: &http.Transport{DisableCompression: true}}
	return e, nil
}

func (e *env) close() { e.stop() }

// tusCreate creates a tus upload of n bytes and returns its path.
func (e *env) tusCreate(token string, n int64) (string, error) {
	resp, err := e.do("POST", "/api/v1/uploads/", token, map[string]string{
		"Tus-Resumable": "1.0.0", "Upload-Length": strconv.FormatInt(n, 10),
	}, nil, http.StatusCreated, nil)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.Contains(u.Path, "/uploads/") {
		return "", fmt.Errorf("tus POST: bad Location %q", resp.Header.Get("Location"))
	}
	return u.Path, nil
}

// patch sends n bytes at off in one tus PATCH.
func (e *env) patch(token, path string, off, n int64) error {
	resp, err := e.do("PATCH", path, token, map[string]string{
		"Tus-Resumable": "1.0.0", "Upload-Offset": strconv.FormatInt(off, 10), "Content-Type": "application/offset+octet-stream",
	}, newPatternReader(n), http.StatusNoContent, nil)
	if err != nil {
		return err
	}
	if got := resp.Header.Get("Upload-Offset"); got != strconv.FormatInt(off+n, 10) {
		return fmt.Errorf("tus PATCH: Upload-Offset %s, want %d", got, off+n)
	}
	return nil
}
