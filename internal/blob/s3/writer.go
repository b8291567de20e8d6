package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"
)

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
