package api

import (
	"context"
	"errors"
	"net/http"
	"sync"

	tusd "github.com/tus/tusd/v2/pkg/handler"

	"github.com/kluis-nl/kluis/internal/transfer"
)

// tusLocker is tusd's Locker over the engine's upload leases (a row in the
// database, see transfer.LeaseUpload), so a tus upload is locked across
// every instance that shares the database, not only in this process as
// with tusd's memorylocker. The semantics are memorylocker's: Lock waits
// until the lock is free or ctx ends (tusd's AcquireLockTimeout, 20 s,
// longer than a lease, so a lease left by a crashed instance expires while
// the request waits), and a held lock's requestRelease callback is called
// when another request wants it, which makes tusd end the holder's PATCH
// (it commits what arrived) and unlock.
type tusLocker struct {
	svc *transfer.Service

	mu   sync.Mutex
	held map[string]*transfer.UploadLease // upload id → the lease of the request holding it here
}

func newTusLocker(svc *transfer.Service) *tusLocker {
	return &tusLocker{svc: svc, held: map[string]*transfer.UploadLease{}}
}

// UseIn registers the locker with a tusd store composer.
func (l *tusLocker) UseIn(c *tusd.StoreComposer) { c.UseLocker(l) }

func (l *tusLocker) NewLock(id string) (tusd.Lock, error) {
	return &tusLock{locker: l, id: id}, nil
}

// lease returns the lease the request holding upload id in this process
// took, for WriteChunk to commit under (transfer.WithLease). tusd calls
// WriteChunk only between Lock and Unlock of the same request, and only
// one request per upload holds the lease at a time.
func (l *tusLocker) lease(id string) *transfer.UploadLease {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[id]
}

type tusLock struct {
	locker *tusLocker
	id     string
	lease  *transfer.UploadLease
}

func (k *tusLock) Lock(ctx context.Context, requestRelease func()) error {
	lease, err := k.locker.svc.LeaseUpload(ctx, k.id, requestRelease)
	if errors.Is(err, transfer.ErrLeaseTimeout) {
		// tusd's own ErrLockTimeout is a 500; this is a busy upload, not
		// our fault: 503 tells tus clients to retry (tus-js-client and the
		// CLI do) and says why.
		return errUploadBusy
	}
	if err != nil {
		return err
	}
	k.lease = lease
	k.locker.mu.Lock()
	k.locker.held[k.id] = lease
	k.locker.mu.Unlock()
	return nil
}

func (k *tusLock) Unlock() error {
	if k.lease == nil {
		return nil
	}
	k.locker.mu.Lock()
	if k.locker.held[k.id] == k.lease {
		delete(k.locker.held, k.id)
	}
	k.locker.mu.Unlock()
	return k.lease.Release()
}

// errUploadBusy answers a request that waited in vain for an upload's lease
// (another request, perhaps on another instance, still writes it).
var errUploadBusy = tusd.NewError("ERR_UPLOAD_BUSY", "This upload is still being written by another request (perhaps on another server); try again in a few seconds.", http.StatusServiceUnavailable)
