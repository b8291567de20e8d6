package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/blob/blobtest"
)

// Integration tests need an S3-compatible server (versitygw in CI, see
// .ci/run and /work/shared/test-services.md):
//
//	KLUIS_TEST_S3_URL            s3://kluis-test?endpoint=http://127.0.0.1:7070&region=us-east-1
//	KLUIS_TEST_S3_VERSIONED_URL  the same, for a server that can version buckets
//	                             (versitygw posix --versioning-dir DIR)
//	AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
//
// Without them the tests skip, except under CI=true, where they fail.

const (
	envURL          = "KLUIS_TEST_S3_URL"
	envVersionedURL = "KLUIS_TEST_S3_VERSIONED_URL"
)

// testConfig returns the configuration from the environment variable, or
// skips (fails under CI).
func testConfig(t *testing.T, name string) *Config {
	t.Helper()
	raw := os.Getenv(name)
	if raw == "" {
		msg := name + " is not set: no S3 server to test against (start versitygw as .ci/run does, and set " +
			name + ", AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cfg, err := ParseURL(raw, os.Getenv)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return cfg
}

func randName(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func adminCore(t *testing.T, cfg *Config) *minio.Core {
	t.Helper()
	c, err := newCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ensureBucket creates the bucket if it is missing.
func ensureBucket(t *testing.T, c *minio.Core, bucket, region string) {
	t.Helper()
	ctx := t.Context()
	ok, err := c.BucketExists(ctx, bucket)
	if err != nil {
		t.Fatalf("BucketExists(%s): %v", bucket, err)
	}
	if ok {
		return
	}
	err = c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: region})
	if err != nil {
		if code, _ := errCode(err); code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
			t.Fatalf("MakeBucket(%s): %v", bucket, err)
		}
	}
}

// wipe removes every object version and unfinished upload under prefix.
func wipe(c *minio.Core, bucket, prefix string) error {
	ctx := context.Background()
	for info := range c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		if info.Err != nil {
			return info.Err
		}
		if err := c.RemoveObject(ctx, bucket, info.Key, minio.RemoveObjectOptions{VersionID: info.VersionID}); err != nil {
			return err
		}
	}
	res, err := c.ListMultipartUploads(ctx, bucket, prefix, "", "", "", 1000)
	if err != nil {
		return err
	}
	for _, u := range res.Uploads {
		c.AbortMultipartUpload(ctx, bucket, u.Key, u.UploadID)
	}
	return nil
}

// prefixStore returns a store under a fresh prefix of the test bucket.
func prefixStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	c := adminCore(t, &cfg)
	ensureBucket(t, c, cfg.Bucket, cfg.Region)
	cfg.Prefix = randName("test-") + "/"
	s, err := New(t.Context(), &cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := wipe(c, cfg.Bucket, cfg.Prefix); err != nil {
			t.Logf("cleanup of %s: %v", cfg.Prefix, err)
		}
	})
	return s
}

// versionedStore returns a store in a fresh bucket with versioning on.
func versionedStore(t *testing.T, cfg Config) (*Store, *minio.Core) {
	t.Helper()
	c := adminCore(t, &cfg)
	cfg.Bucket = randName("kluis-v-")
	cfg.Prefix = ""
	ensureBucket(t, c, cfg.Bucket, cfg.Region)
	if err := c.EnableVersioning(t.Context(), cfg.Bucket); err != nil {
		t.Fatalf("EnableVersioning(%s): %v", cfg.Bucket, err)
	}
	vc, err := c.GetBucketVersioning(t.Context(), cfg.Bucket)
	if err != nil || !vc.Enabled() {
		t.Fatalf("versioning of %s: %+v, %v (is the server started with --versioning-dir?)", cfg.Bucket, vc, err)
	}
	s, err := New(t.Context(), &cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := wipe(c, cfg.Bucket, ""); err != nil {
			t.Logf("cleanup of %s: %v", cfg.Bucket, err)
			return
		}
		if err := c.RemoveBucket(context.Background(), cfg.Bucket); err != nil {
			t.Logf("remove bucket %s: %v", cfg.Bucket, err)
		}
	})
	return s, c
}

func TestConformance(t *testing.T) {
	cfg := testConfig(t, envURL)
	blobtest.Run(t, func(t *testing.T) blob.Store { return prefixStore(t, *cfg) })
}

func TestConformanceVersioned(t *testing.T) {
	cfg := testConfig(t, envVersionedURL)
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, _ := versionedStore(t, *cfg)
		return s
	})
}

func TestConditionalWrites(t *testing.T) {
	s := prefixStore(t, *testConfig(t, envURL))
	if !s.ConditionalWrites() {
		t.Fatal("the server ignores If-None-Match: *; commits would fall back to a racy check")
	}
}

func TestNewMissingBucket(t *testing.T) {
	cfg := *testConfig(t, envURL)
	cfg.Bucket = randName("kluis-missing-")
	_, err := New(t.Context(), &cfg)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("New with a missing bucket: %v", err)
	}
	cfg = *testConfig(t, envURL)
	cfg.SecretKey = "wrong-secret"
	_, err = New(t.Context(), &cfg)
	if err == nil || strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("New with a wrong secret: %v", err)
	}
	t.Logf("wrong secret: %v", err)
}

// versions lists every version and delete marker of obj.
func versions(t *testing.T, c *minio.Core, bucket, obj string) []minio.ObjectInfo {
	t.Helper()
	var out []minio.ObjectInfo
	for info := range c.ListObjectsIter(t.Context(), bucket, minio.ListObjectsOptions{Prefix: obj, Recursive: true, WithVersions: true}) {
		if info.Err != nil {
			t.Fatalf("list versions: %v", info.Err)
		}
		if info.Key == obj {
			out = append(out, info)
		}
	}
	return out
}

// TestDeleteVersioned: on a versioned bucket Delete removes every version
// and every delete marker (security.md item 19).
func TestDeleteVersioned(t *testing.T) {
	s, c := versionedStore(t, *testConfig(t, envVersionedURL))
	ctx := t.Context()
	const key = "t/abc/seg-1"

	blobtest.Put(t, s, key, []byte("ciphertext one"))
	if vs := versions(t, c, s.bucket, key); len(vs) != 1 {
		t.Fatalf("after Put: %d versions, want 1", len(vs))
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if vs := versions(t, c, s.bucket, key); len(vs) != 0 {
		t.Fatalf("after Delete: %d versions remain: %+v", len(vs), vs)
	}

	// History made behind the store's back: an unconditional overwrite
	// (two versions) and a plain DELETE (a marker on top).
	blobtest.Put(t, s, key, []byte("ciphertext two"))
	if _, err := c.PutObject(ctx, s.bucket, key, strings.NewReader("three"), 5, "", "", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	vs := versions(t, c, s.bucket, key)
	markers := 0
	for _, v := range vs {
		if v.IsDeleteMarker {
			markers++
		}
	}
	t.Logf("before Delete: %d versions, %d of them delete markers", len(vs), markers)
	if len(vs) < 3 || markers < 1 {
		t.Fatalf("want ≥2 versions and a delete marker, got %+v", vs)
	}
	blobtest.Put(t, s, "t/abc/seg-2", []byte("sibling"))
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if vs := versions(t, c, s.bucket, key); len(vs) != 0 {
		t.Fatalf("after Delete: %d versions remain: %+v", len(vs), vs)
	}
	// Deleting a missing key on a versioned bucket adds no marker.
	if err := s.Delete(ctx, "never/was"); err != nil {
		t.Fatal(err)
	}
	if vs := versions(t, c, s.bucket, "never/was"); len(vs) != 0 {
		t.Fatalf("Delete of a missing key left %+v", vs)
	}
	if got := blobtest.Get(t, s, "t/abc/seg-2"); string(got) != "sibling" {
		t.Fatalf("sibling: %q", got)
	}
}

// uploads lists the unfinished multipart uploads under the store's prefix.

func TestCollectTempAbortsAbandonedUpload(t *testing.T) {
	s := prefixStore(t, *testConfig(t, envURL))
	ctx := t.Context()
	w, err := s.Create(ctx, "ab/seg")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	data := blobtest.Pattern(9, 6<<20) // one part goes out, 1 MiB stays buffered
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if ups := uploads(t, s); len(ups) != 1 {
		t.Fatalf("uploads: %+v, want the one in progress", ups)
	}
	if n, err := s.CollectTemp(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("CollectTemp(an hour ago) = %d, %v; want 0 (the upload is younger)", n, err)
	}
	// Abandoned: the writer goes away without Commit or Abort.
	n, err := s.CollectTemp(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("CollectTemp = %d, %v; want 1", n, err)
	}
	if ups := uploads(t, s); len(ups) != 0 {
		t.Fatalf("uploads after CollectTemp: %+v", ups)
	}
	if err := w.Commit(); err == nil {
		t.Fatal("Commit of a collected upload succeeded")
	} else {
		t.Logf("Commit after CollectTemp: %v", err)
	}
	if _, err := s.Open(ctx, "ab/seg"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open: %v, want ErrNotFound", err)
	}
}

// countingTransport counts GET requests for objects.
// TestFolderKeys: versitygw's posix back end keeps "a/b" as file b in
// folder a; the folder must not show up as a blob "a".
func TestFolderKeys(t *testing.T) {
	s := prefixStore(t, *testConfig(t, envURL))
	blobtest.Put(t, s, "a/b/c", []byte("x"))
	for _, k := range []string{"a", "a/b"} {
		if _, err := s.Open(t.Context(), k); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Open(%q): %v, want ErrNotFound", k, err)
		}
		if err := s.Delete(t.Context(), k); err != nil {
			t.Errorf("Delete(%q): %v", k, err)
		}
	}
	if got := blobtest.Keys(t, s, ""); len(got) != 1 {
		t.Fatalf("List: %v", got)
	}
	if got := blobtest.Get(t, s, "a/b/c"); string(got) != "x" {
		t.Fatalf("got %q", got)
	}
}

func TestMapNoSpace(t *testing.T) {
	for _, code := range []string{"InsufficientStorage", "QuotaExceeded", "XMinioStorageFull", "XMinioAdminBucketQuotaExceeded"} {
		err := mapNoSpace(minio.ErrorResponse{Code: code, StatusCode: 403})
		if !errors.Is(err, blob.ErrNoSpace) {
			t.Errorf("%s: not ErrNoSpace", code)
		}
	}
	if errors.Is(mapNoSpace(minio.ErrorResponse{Code: "AccessDenied", StatusCode: 403}), blob.ErrNoSpace) {
		t.Error("AccessDenied mapped to ErrNoSpace")
	}
	if !errors.Is(mapNoSpace(minio.ErrorResponse{StatusCode: 507}), blob.ErrNoSpace) {
		t.Error("507 not mapped to ErrNoSpace")
	}
}
