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
//     and a sequential reader costs one request per blob. A read that
//     continues the previous one after a seek starts a new stream from
//     there; any other read (age reads a segment's final chunk before its
//     payload) is one ranged GET of a window and leaves the stream alone.
//     A Reader holds at most six windows (6 MiB); Close stops the
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
	"io"
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
		s.windows = 2
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
		_, err := s.core.PutObject(ctx, s.bucket, obj, bytes.NewReader(nil), 0, "", "", opts)
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

// Writer.

type writerState int

const (
	stateOpen writerState = iota
	stateCommitted
	stateAborted
	stateFailed
)

// writer buffers up to one part; a full part is uploaded when more bytes
// arrive, so a blob of exactly one part is still a single PUT. Not safe
// for concurrent use.
type writer struct {
	s        *Store
	ctx      context.Context
	key, obj string
	buf      []byte // at most s.partSize
	uploadID string // "" until the first part goes out
	parts    []minio.CompletePart
	state    writerState
	err      error
}

func (w *writer) Write(p []byte) (int, error) {
	switch w.state {
	case stateCommitted:
		return 0, errors.New("s3: write after commit")
	case stateAborted:
		return 0, errors.New("s3: write after abort")
	case stateFailed:
		return 0, fmt.Errorf("s3: write after failure: %w", w.err)
	}
	n := 0
	for len(p) > 0 {
		if int64(len(w.buf)) == w.s.partSize {
			if err := w.flush(); err != nil {
				return n, w.fail(err)
			}
		}
		m := min(len(p), int(w.s.partSize)-len(w.buf))
		w.grow(m)
		w.buf = append(w.buf, p[:m]...)
		p = p[m:]
		n += m
	}
	return n, nil
}

// grow makes room for m more bytes, so a small blob does not cost a whole
// part of memory: doubling up to 1 MiB, then the whole part at once (old
// and new buffer together stay near one part).
func (w *writer) grow(m int) {
	need := len(w.buf) + m
	if need <= cap(w.buf) {
		return
	}
	c := max(2*cap(w.buf), need, 64<<10)
	if c > 1<<20 {
		c = int(w.s.partSize)
	}
	nb := make([]byte, len(w.buf), c)
	copy(nb, w.buf)
	w.buf = nb
}

// flush uploads the buffer as the next part, starting the multipart
// upload first if needed.
func (w *writer) flush() error {
	if err := w.ctx.Err(); err != nil {
		return fmt.Errorf("s3: write %s: %w", w.key, err)
	}
	if w.uploadID == "" {
		id, err := w.s.core.NewMultipartUpload(w.ctx, w.s.bucket, w.obj, minio.PutObjectOptions{})
		if err != nil {
			return fmt.Errorf("s3: write %s: start multipart upload: %w", w.key, mapNoSpace(err))
		}
		w.uploadID = id
	}
	num := len(w.parts) + 1
	if num > maxParts {
		return fmt.Errorf("s3: write %s: more than %d parts", w.key, maxParts)
	}
	part, err := w.s.core.PutObjectPart(w.ctx, w.s.bucket, w.obj, w.uploadID, num,
		bytes.NewReader(w.buf), int64(len(w.buf)), minio.PutObjectPartOptions{})
	if err != nil {
		if isNoSuchUpload(err) {
			err = fmt.Errorf("the unfinished upload was collected (CollectTemp): %w", err)
		}
		return fmt.Errorf("s3: write %s: part %d: %w", w.key, num, mapNoSpace(err))
	}
	w.parts = append(w.parts, minio.CompletePart{
		PartNumber:        num,
		ETag:              part.ETag,
		ChecksumCRC32:     part.ChecksumCRC32,
		ChecksumCRC32C:    part.ChecksumCRC32C,
		ChecksumSHA1:      part.ChecksumSHA1,
		ChecksumSHA256:    part.ChecksumSHA256,
		ChecksumCRC64NVME: part.ChecksumCRC64NVME,
	})
	w.buf = w.buf[:0]
	return nil
}

func (w *writer) Commit() error {
	switch w.state {
	case stateCommitted:
		return errors.New("s3: already committed")
	case stateAborted:
		return errors.New("s3: commit after abort")
	case stateFailed:
		return fmt.Errorf("s3: commit after failure: %w", w.err)
	}
	if err := w.ctx.Err(); err != nil {
		return w.fail(fmt.Errorf("s3: commit %s: %w", w.key, err))
	}
	var opts minio.PutObjectOptions
	opts.SetMatchETagExcept("*") // If-None-Match: *
	if w.s.noCond {
		// Racy fallback (see the package doc).
		_, err := w.s.core.StatObject(w.ctx, w.s.bucket, w.obj, minio.StatObjectOptions{})
		if err == nil {
			return w.fail(fmt.Errorf("s3: commit %s: blob exists, blobs are never overwritten", w.key))
		}
		if !isNotFound(err) {
			return w.fail(fmt.Errorf("s3: commit %s: %w", w.key, err))
		}
	}
	var err error
	if w.uploadID == "" {
		_, err = w.s.core.PutObject(w.ctx, w.s.bucket, w.obj, bytes.NewReader(w.buf), int64(len(w.buf)), "", "", opts)
	} else {
		// The buffer is never empty here: a full part is only flushed
		// when more bytes arrive.
		if err = w.flush(); err != nil {
			return w.fail(err)
		}
		_, err = w.s.core.CompleteMultipartUpload(w.ctx, w.s.bucket, w.obj, w.uploadID, w.parts, opts)
		if isNoSuchUpload(err) {
			err = fmt.Errorf("the unfinished upload was collected (CollectTemp): %w", err)
		}
	}
	if err != nil {
		if isExists(err) {
			err = fmt.Errorf("blob exists, blobs are never overwritten: %w", err)
		}
		return w.fail(fmt.Errorf("s3: commit %s: %w", w.key, mapNoSpace(err)))
	}
	w.state = stateCommitted
	w.buf = nil
	w.uploadID = ""
	return nil
}

func (w *writer) Abort() error {
	if w.state != stateOpen {
		return nil
	}
	w.state = stateAborted
	return w.cleanup()
}

func (w *writer) fail(err error) error {
	w.state = stateFailed
	w.err = err
	if cerr := w.cleanup(); cerr != nil {
		return errors.Join(err, cerr)
	}
	return err
}

// cleanup drops the buffer and aborts the multipart upload, if any; it
// runs even when the writer's context has ended.
func (w *writer) cleanup() error {
	w.buf = nil
	if w.uploadID == "" {
		return nil
	}
	id := w.uploadID
	w.uploadID = ""
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), time.Minute)
	defer cancel()
	err := w.s.core.AbortMultipartUpload(ctx, w.s.bucket, w.obj, id)
	if err != nil && !isNoSuchUpload(err) {
		// CollectTemp will find it later.
		return fmt.Errorf("s3: abort upload of %s: %w", w.key, err)
	}
	return nil
}

// Reader.

// defaultPrefetch is Config.Prefetch's default: a sequential Reader's
// stream runs up to this many ReadAhead windows ahead of the reads.
const defaultPrefetch = 2

// window is a range of the blob held in memory; never changed once made.
type window struct {
	off  int64
	data []byte
}

func (w *window) covers(off int64) bool { return off >= w.off && off < w.off+int64(len(w.data)) }

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
// reads fail.
func (r *reader) Close() error {
	r.mu.Lock()
	r.closed = true
	r.cache = nil
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return nil
}

// ReadAt implements io.ReaderAt; safe for concurrent use. Reads are served
// from the windows kept in memory; a miss is served by:
//
//   - the running stream, if the read is at or a little ahead of where it
//     is (a sequential reader costs one GET per blob);
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
	ahead := r.s.readAhead * int64(r.s.prefetch)
	st := r.st
	if st == nil || off < st.next || off >= st.next+ahead {
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
		w := &window{off: off, data: make([]byte, min(r.s.readAhead, r.size-off))}
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
		if c.w.covers(off) {
			r.keep(c.w)
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
			buf := make([]byte, min(r.s.readAhead, r.size-pos))
			if _, err := io.ReadFull(body, buf); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				send(chunk{err: fmt.Errorf("s3: read %s at %d: %w", r.key, pos, err)})
				return
			}
			if !send(chunk{w: &window{off: pos, data: buf}}) {
				return
			}
			pos += int64(len(buf))
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
