package transfer

import (
	"context"
	"time"
)

// Metrics receives the engine's counts (package metrics implements it for
// Prometheus). Every method must be cheap and safe for concurrent use.
type Metrics interface {
	// FileUploaded: a file was completed; kind is "tus" or "plain".
	FileUploaded(kind string)
	// SegmentCommitted: one segment of n plaintext bytes was made durable
	// (blob and manifest) in d.
	SegmentCommitted(n int64, d time.Duration)
	// Downloaded: a file answer made a file downloaded by its recipient
	// for the first time ("file"), or a ZIP of all files was sent whole
	// ("zip").
	Downloaded(kind string)
	// Unlock: a password check ended "ok", "wrong_password" or "locked"
	// (refused without a check: the access was locked).
	Unlock(result string)
	// Lockout: a recipient's access was locked after too many wrong
	// passwords.
	Lockout()
	// Purged: n transfers were purged.
	Purged(n int)
	// Scanned: one file's malware scan ended with result "clean",
	// "infected", "too_large" or "unavailable" (scan.go).
	Scanned(result string)
	// PassedUnscanned: the policy let a file pass without a malware
	// verdict, because clamd could not be reached ("unavailable",
	// fail-open) or the file is larger than clamd takes ("too_large").
	PassedUnscanned(reason string)
}

// Values of Unlock's result.
const (
	UnlockOK            = "ok"
	UnlockWrongPassword = "wrong_password"
	UnlockLocked        = "locked"
)

// met returns the metrics sink, a no-op one when none is set.
func (s *Service) met() Metrics {
	if s.metrics == nil {
		return noMetrics{}
	}
	return s.metrics
}

type noMetrics struct{}

func (noMetrics) FileUploaded(string)                   {}
func (noMetrics) SegmentCommitted(int64, time.Duration) {}
func (noMetrics) Downloaded(string)                     {}
func (noMetrics) Unlock(string)                         {}
func (noMetrics) Lockout()                              {}
func (noMetrics) Purged(int)                            {}
func (noMetrics) Scanned(string)                        {}
func (noMetrics) PassedUnscanned(string)                {}

type uploadKindKey struct{}

// WithUploadKind tells the engine which protocol carries the upload in ctx
// ("tus" or "plain"), for the upload count. Without it: "plain".
func WithUploadKind(ctx context.Context, kind string) context.Context {
	return context.WithValue(ctx, uploadKindKey{}, kind)
}

func uploadKind(ctx context.Context) string {
	if k, ok := ctx.Value(uploadKindKey{}).(string); ok && k != "" {
		return k
	}
	return "plain"
}
