// Package s3 stores blobs in an S3-compatible bucket (minio-go v7): the
// blob store of scaled deployments, where several instances share one
// bucket.
//
// Each blob is one object, named Config.Prefix + key.
//
//   - Writes stream: a Writer holds at most one part (5 MiB) in memory. A
//     blob that stays below one part is sent with a single PUT at Commit;
//     a larger one becomes a multipart upload whose parts go out as they
//     fill. Nothing is visible before Commit.
//   - Blobs are immutable: Commit sends "If-None-Match: *" (on PutObject
//     and CompleteMultipartUpload), so an existing key is never
//     overwritten, also by concurrent writers. Amazon S3 (since 2024-08),
//     MinIO and versitygw (v1.8.0, atomically under a per-key lock) honour
//     it. New probes the server once; if it ignores the condition, Commit
//     falls back to a StatObject check first. That fallback races: two
//     writers committing the same key at the same moment can both pass the
//     check and the later one wins. Kluis's keys end in a random suffix,
//     so this needs a bug elsewhere to matter; the log says so (Store.
//     ConditionalWrites reports it).
//   - Reads stream. Open is a GET of the whole object (its response gives
//     the size and version), whose body a goroutine reads ahead into
//     Config.ReadAhead (1 MiB) windows, at most Config.Prefetch (2) queued
//     before it blocks; so the network works while the caller decrypts,
//     and a sequential reader costs one request per blob. Reads a few
//     windows ahead of the stream (a download's parallel read-ahead) pull
//     it forward, and the windows it passes are kept for the reads
//     behind, so they share that one request. A read that continues the
//     previous one after a seek starts a new stream from there; any other
//     read (age reads a segment's final chunk before its payload) is one
//     ranged GET of a window and leaves the stream alone. A Reader holds
//     at most eight windows (8 MiB: Config.CacheWindows (4) and the one
//     read last, the Prefetch queue, one being filled); Close stops the
//     stream. With a server that closes every connection (versitygw
//     without --keep-alive), each request costs a new TCP connection,
//     which is why fewer, longer requests matter.
//   - Delete removes every version of the object, delete markers included
//     (security.md item 19: on a versioned bucket a plain DELETE only adds
//     a marker and keeps the ciphertext).
//   - CollectTemp aborts multipart uploads that were started, and last
//     received a part, before the cutoff.
package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kluis-nl/kluis/internal/blob"
)

var errInvalidKey = errors.New("s3: invalid blob key")

// Store is a blob.Store in an S3 bucket.
type Store struct {
	core      *minio.Core
	noCond    bool // the server ignores If-None-Match: see the package doc
	bucket    string
	prefix    string
	partSize  int64
	readAhead int64
	windows   int
	prefetch  int
	bufs      sync.Pool // window buffers of readAhead bytes, see newWindow
}

var _ blob.Store = (*Store)(nil)

// New connects to the bucket described by cfg and checks that it exists
// and that the credentials work.
func New(ctx context.Context, cfg *Config) (*Store, error) {
	if cfg == nil || cfg.Bucket == "" || cfg.Endpoint == "" {
		return nil, errors.New("s3: no bucket or endpoint configured")
	}
	if !cfg.Secure && !isLoopback(hostOnly(cfg.Endpoint)) {
		return nil, fmt.Errorf("s3: endpoint http://%s is not loopback: use https", cfg.Endpoint)
	}
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("s3: prefix %q must end in '/'", cfg.Prefix)
	}
	s := &Store{
		bucket:    cfg.Bucket,
		prefix:    cfg.Prefix,
		partSize:  cfg.PartSize,
		readAhead: cfg.ReadAhead,
		windows:   cfg.CacheWindows,
		prefetch:  cfg.Prefetch,
	}
	if s.partSize == 0 {
		s.partSize = DefaultPartSize
	}
	if s.partSize < 5<<20 || s.partSize > 5<<30 {
		return nil, fmt.Errorf("s3: part size %d: S3 needs 5 MiB to 5 GiB", s.partSize)
	}
	if s.readAhead <= 0 {
		s.readAhead = DefaultReadAhead
	}
	if s.windows <= 0 {
		s.windows = defaultCacheWindows
	}
	if s.prefetch <= 0 {
		s.prefetch = defaultPrefetch
	}
	core, err := newCore(cfg)
	if err != nil {
		return nil, err
	}
	s.core = core
	ok, err := core.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3: cannot reach bucket %q at %s (check the endpoint, region and credentials): %w", cfg.Bucket, cfg.Endpoint, err)
	}
	if !ok {
		return nil, fmt.Errorf("s3: bucket %q does not exist at %s: create it first", cfg.Bucket, cfg.Endpoint)
	}
	if err := s.probeConditional(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// ConditionalWrites reports whether the server honours "If-None-Match: *"
// (false: Commit's no-overwrite check is racy, see the package doc).
func (s *Store) ConditionalWrites() bool { return !s.noCond }

// probeConditional writes a probe object twice with If-None-Match: * and
// records whether the second write was refused. The probe's name is not a
// valid key, so List never reports it; it is deleted (every version).
func (s *Store) probeConditional(ctx context.Context) error {
	var rnd [8]byte
	rand.Read(rnd[:])
	obj := s.prefix + ".kluis-probe-" + hex.EncodeToString(rnd[:])
	var opts minio.PutObjectOptions
	opts.SetMatchETagExcept("*")
	put := func() error {
		// A PUT is not retried by net/http when the kept-alive connection
		// it went out on turns out closed by the server ("connection
		// broken: broken pipe"); try again then, at most three times. An
		// answer of the store (412 and the like) is never retried.
		var err error
		for range 3 {
			_, err = s.core.PutObject(ctx, s.bucket, obj, bytes.NewReader(nil), 0, "", "", opts)
			if err == nil || minio.ToErrorResponse(err).StatusCode != 0 || ctx.Err() != nil {
				return err
			}
		}
		return err
	}
	if err := put(); err != nil {
		return fmt.Errorf("s3: cannot write to bucket %q (check the credentials' permissions): %w", s.bucket, mapNoSpace(err))
	}
	err := put()
	s.noCond = err == nil
	if derr := s.deleteAll(ctx, obj); derr != nil {
		return fmt.Errorf("s3: cannot delete from bucket %q (check the credentials' permissions): %w", s.bucket, derr)
	}
	if err != nil && !isExists(err) {
		return fmt.Errorf("s3: probing conditional writes in bucket %q: %w", s.bucket, err)
	}
	return nil
}

// newCore makes the client for cfg.
func newCore(cfg *Config) (*minio.Core, error) {
	lookup := minio.BucketLookupDNS
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	core, err := minio.NewCore(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		Secure:       cfg.Secure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    cfg.Transport, // nil: minio's default, which verifies certificates
		MaxRetries:   3,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: endpoint %s: %v", cfg.Endpoint, err)
	}
	return core, nil
}

func hostOnly(hostport string) string {
	if i := strings.LastIndex(hostport, ":"); i >= 0 && !strings.HasSuffix(hostport, "]") {
		hostport = hostport[:i]
	}
	return strings.Trim(hostport, "[]")
}

// Client returns the underlying minio client (tests make buckets with it).
func (s *Store) Client() *minio.Client { return s.core.Client }

func (s *Store) object(key string) string { return s.prefix + key }

// Create implements blob.Store. All requests of the Writer use ctx; the
// caller passes a context that outlives the request if Commit must (see
// transfer.WriteFile). Abort always runs, even after ctx ends.
func (s *Store) Create(ctx context.Context, key string) (blob.Writer, error) {
	if !blob.ValidKey(key) {
		return nil, fmt.Errorf("%w: %q", errInvalidKey, key)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &writer{s: s, ctx: ctx, key: key, obj: s.object(key)}, nil
}

// Open implements blob.Store.
func (s *Store) Open(ctx context.Context, key string) (blob.Reader, error) {
	if !blob.ValidKey(key) {
		return nil, fmt.Errorf("%w: %q", errInvalidKey, key)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Open starts reading the whole object at once: the response gives its
	// size and version, and its body becomes the reader's first stream
	// (readers are read from the start; see reader). The reader is not
	// tied to ctx (a blob.Reader outlives the call that opened it): its
	// requests end at Close, like a file's.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	sctx, scancel := context.WithCancel(rctx)
	stop := context.AfterFunc(ctx, scancel) // only while Open waits
	body, info, _, err := s.core.GetObject(sctx, s.bucket, s.object(key), minio.GetObjectOptions{})
	stopped := stop()
	if err == nil && (!stopped || info.Size < 0 || info.IsDeleteMarker) {
		body.Close()
		switch {
		case !stopped:
			err = ctx.Err()
		case info.IsDeleteMarker:
			err = minio.ErrorResponse{Code: "NoSuchKey", StatusCode: http.StatusNotFound}
		default:
			err = fmt.Errorf("no Content-Length in the response")
		}
	}
	if err != nil {
		scancel()
		cancel()
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: %s", blob.ErrNotFound, key)
		}
		return nil, fmt.Errorf("s3: open %s: %w", key, err)
	}
	r := &reader{s: s, key: key, obj: s.object(key), size: info.Size, etag: info.ETag, versionID: info.VersionID,
		ctx: rctx, cancel: cancel}
	if r.size == 0 {
		body.Close()
		scancel()
		return r, nil
	}
	r.fetchMu.Lock()
	r.startStream(0, body, sctx, scancel)
	r.fetchMu.Unlock()
	return r, nil
}

// Delete implements blob.Store: every version of the object goes, delete
// markers included. It lists the versions of the exact key (ListObject-
// Versions) and deletes each by version id; on a bucket that never had
// versioning the one version has id "null" (or none).
func (s *Store) Delete(ctx context.Context, key string) error {
	if !blob.ValidKey(key) {
		return fmt.Errorf("%w: %q", errInvalidKey, key)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.deleteAll(ctx, s.object(key)); err != nil {
		return fmt.Errorf("s3: delete %s: %w", key, err)
	}
	return nil
}

// deleteAll removes every version of obj.
func (s *Store) deleteAll(ctx context.Context, obj string) error {
	// Twice at most: a version that a racing writer added while the first
	// pass ran is caught by the second.
	for range 2 {
		var versions []string
		for info := range s.core.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{
			Prefix:       obj,
			Recursive:    true,
			WithVersions: true,
		}) {
			if info.Err != nil {
				if isNotFound(info.Err) {
					break
				}
				return fmt.Errorf("list versions: %w", info.Err)
			}
			if info.Key == obj {
				versions = append(versions, info.VersionID)
			}
		}
		if len(versions) == 0 {
			return nil
		}
		for _, v := range versions {
			err := s.core.RemoveObject(ctx, s.bucket, obj, minio.RemoveObjectOptions{VersionID: v})
			if err != nil && !isNotFound(err) {
				return fmt.Errorf("version %q: %w", v, err)
			}
		}
	}
	return nil
}

// List implements blob.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: list %q: %w", prefix, err)
	}
	for info := range s.core.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{
		Prefix:    s.prefix + prefix,
		Recursive: true,
	}) {
		if info.Err != nil {
			return fmt.Errorf("s3: list %q: %w", prefix, info.Err)
		}
		key, ok := strings.CutPrefix(info.Key, s.prefix)
		if !ok || !blob.ValidKey(key) || !strings.HasPrefix(key, prefix) {
			continue // a folder marker, or an object Kluis did not write
		}
		if err := fn(blob.Info{Key: key, Size: info.Size, ModTime: info.LastModified}); err != nil {
			return err
		}
	}
	return nil
}

// CollectTemp implements blob.Store: it aborts the multipart uploads under
// the prefix that were initiated before the cutoff and whose last part (if
// any) also arrived before it, so a long upload still receiving parts is
// left alone, as blob/local leaves a temporary file that is still written.
// Blobs smaller than one part are never uploaded before Commit and leave
// nothing to collect.
func (s *Store) CollectTemp(ctx context.Context, before time.Time) (int, error) {
	n := 0
	keyMarker, idMarker := "", ""
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		res, err := s.core.ListMultipartUploads(ctx, s.bucket, s.prefix, keyMarker, idMarker, "", 1000)
		if err != nil {
			return n, fmt.Errorf("s3: collect: list uploads: %w", err)
		}
		for _, u := range res.Uploads {
			if !strings.HasPrefix(u.Key, s.prefix) || !u.Initiated.Before(before) {
				continue
			}
			last, err := s.lastPart(ctx, u.Key, u.UploadID)
			if err != nil {
				if isNoSuchUpload(err) {
					continue // finished or aborted meanwhile
				}
				return n, fmt.Errorf("s3: collect: %w", err)
			}
			if !last.Before(before) {
				continue
			}
			if err := s.core.AbortMultipartUpload(ctx, s.bucket, u.Key, u.UploadID); err != nil {
				if isNoSuchUpload(err) {
					continue
				}
				return n, fmt.Errorf("s3: collect: abort upload of %s: %w", u.Key, err)
			}
			n++
		}
		if !res.IsTruncated || (res.NextKeyMarker == "" && res.NextUploadIDMarker == "") {
			return n, nil
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
}

// lastPart returns when the upload last received a part (the zero time if
// it has none).
func (s *Store) lastPart(ctx context.Context, obj, uploadID string) (time.Time, error) {
	var last time.Time
	marker := 0
	for {
		res, err := s.core.ListObjectParts(ctx, s.bucket, obj, uploadID, marker, 1000)
		if err != nil {
			return last, err
		}
		for _, p := range res.ObjectParts {
			if p.LastModified.After(last) {
				last = p.LastModified
			}
		}
		if !res.IsTruncated || res.NextPartNumberMarker <= marker {
			return last, nil
		}
		marker = res.NextPartNumberMarker
	}
}

// Errors.

func errCode(err error) (string, int) {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code, er.StatusCode
	}
	return "", 0
}

func isNotFound(err error) bool {
	code, status := errCode(err)
	switch code {
	case "NoSuchKey", "NoSuchVersion", "NotFound":
		return true
	}
	return code == "" && status == http.StatusNotFound
}

func isNoSuchUpload(err error) bool {
	code, status := errCode(err)
	return code == "NoSuchUpload" || (code == "" && status == http.StatusNotFound)
}

// isExists reports a failed If-None-Match: the key is taken (412), or a
// concurrent conditional write to it is in progress (409).
func isExists(err error) bool {
	code, status := errCode(err)
	return code == "PreconditionFailed" || code == "ConditionalRequestConflict" ||
		status == http.StatusPreconditionFailed
}

// mapNoSpace wraps the errors by which S3-compatible servers say that the
// storage or a quota is full in blob.ErrNoSpace.
func mapNoSpace(err error) error {
	code, status := errCode(err)
	switch code {
	case "InsufficientStorage", // versitygw (ENOSPC), RFC 4918 507
		"QuotaExceeded",                  // versitygw (EDQUOT)
		"XMinioStorageFull",              // MinIO
		"XMinioAdminBucketQuotaExceeded", // MinIO bucket quota
		"StorageFull", "NoSpaceLeftOnDevice":
		return fmt.Errorf("%w: %w", blob.ErrNoSpace, err)
	}
	if status == http.StatusInsufficientStorage {
		return fmt.Errorf("%w: %w", blob.ErrNoSpace, err)
	}
	return err
}
