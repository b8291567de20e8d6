package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kluis-nl/kluis/internal/blob/s3"
)

// TestS3Storage runs `kluis serve --storage s3://...` against versitygw: a
// tus upload in three requests, a verified download, and after a revoke
// the purge leaves no object (of any version) under the transfer's prefix.
func TestS3Storage(t *testing.T) {
	t.Parallel()
	mc, bucket, prefix, storage := s3Storage(t, "e2e-")
	ctx := context.Background()

	srv := startServer(t, t.TempDir(), "--storage", storage)
	c := srv.create(t, password{Mode: "generate"}, "via S3")
	src := newSource(42, 12<<20+7, "")
	tc := newTus(c.UploadToken, http.DefaultClient)
	tc.upload(t, srv.base+"/api/v1/uploads/", "s3.bin", src, 3<<20, 9<<20)
	access, _ := srv.finish(t, c)

	objects := func() int {
		n := 0
		for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix + "/", Recursive: true, WithVersions: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			n++
		}
		return n
	}
	if n := objects(); n < 3 {
		t.Fatalf("%d objects under %s, want at least one per upload request (3)", n, prefix)
	}
	sess := srv.unlock(t, access, c.Password)
	f := srv.contents(t, sess).file(t, "s3.bin")
	srv.download(t, sess, f, src)

	if st, code := call(t, "POST", srv.base+"/api/v1/transfers/"+c.ID+"/revoke", c.UploadToken, nil, nil); st != http.StatusOK {
		t.Fatalf("revoke: %d %s", st, code)
	}
	deadline := time.Now().Add(30 * time.Second)
	for objects() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d objects left under %s 30 s after the revoke", objects(), prefix)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// s3ForTest returns a client for KLUIS_TEST_S3_URL's server, its bucket
// (created if needed) and the URL's query (endpoint, region...). Without
// the variable it skips, or fails under CI=true.
func s3ForTest(t *testing.T) (*minio.Client, string, string) {
	t.Helper()
	raw := os.Getenv("KLUIS_TEST_S3_URL")
	if raw == "" {
		msg := "KLUIS_TEST_S3_URL is not set: no S3 server (CI starts versitygw in .ci/run)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " — required in CI")
		}
		t.Skip(msg)
	}
	cfg, err := s3.ParseURL(raw, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := url.Parse(u.Query().Get("endpoint"))
	if err != nil {
		t.Fatal(err)
	}
	mc, err := minio.New(ep.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), ""),
		Secure: ep.Scheme == "https", Region: cfg.Region,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ok, err := mc.BucketExists(ctx, cfg.Bucket); err != nil {
		t.Fatal(err)
	} else if !ok {
		if err := mc.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil && !strings.Contains(err.Error(), "already") {
			t.Fatal(err)
		}
	}
	return mc, cfg.Bucket, u.RawQuery
}

// s3Storage is s3ForTest with a fresh object name prefix: the client, the
// bucket, the prefix (kind and random hex, without "/") and the --storage
// URL of the bucket under that prefix.
func s3Storage(t *testing.T, kind string) (mc *minio.Client, bucket, prefix, storage string) {
	t.Helper()
	mc, bucket, query := s3ForTest(t)
	var rnd [6]byte
	rand.Read(rnd[:])
	prefix = kind + hex.EncodeToString(rnd[:])
	return mc, bucket, prefix, "s3://" + bucket + "/" + prefix + "?" + query
}
