package transfer

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/store"
)

// Upload leases: one request at a time, on any instance, may append to an
// unfinished file. A lease is a row in the database (store.AcquireLease)
// with a random token, valid for Config.UploadLease (10 s) and renewed by
// its holder every third of that; every segment commit is fenced by the
// token (store.AppendSegmentFenced). A request that finds the lease held
// asks the holder to let go (a flag in the row, or at once when the holder
// is in this process) and polls until the lease is free or has expired, so
// an upload held by a crashed instance is resumed elsewhere within one lease
// duration.

// DefaultUploadLease is the default Config.UploadLease. It must stay well
// below tusd's lock wait (20 s), so that a lease left by a crashed instance
// expires while a resuming request still waits.
const DefaultUploadLease = 10 * time.Second

// ErrLeaseTimeout is returned by LeaseUpload when ctx ended before the
// lease could be taken.
var ErrLeaseTimeout = errors.New("transfer: timed out waiting for the upload lock")

// UploadLease is this process's hold on one file's upload. Release it when
// the request is done.
type UploadLease struct {
	s         *Service
	fileID    string
	token     string
	onRelease func()

	requested atomic.Bool // onRelease has been started
	stop      chan struct{}
	done      chan struct{}
	releaseMu sync.Mutex
	released  bool
}

// leaseRegistry holds this process's leases, so a second request in the
// same process asks the holder to let go without a database round trip.
type leaseRegistry struct {
	mu   sync.Mutex
	held map[string]*UploadLease
}

// newHolderID names this process in lease rows (for operators: which
// instance holds an upload).
func newHolderID() string {
	host, _ := os.Hostname()
	var b [6]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), base64.RawURLEncoding.EncodeToString(b[:]))
}

func newLeaseToken() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Service) leaseTTL() time.Duration {
	if s.cfg.UploadLease > 0 {
		return s.cfg.UploadLease
	}
	return DefaultUploadLease
}

// Holder returns the id this process writes into the lease rows it holds.
func (s *Service) Holder() string { return s.holder }

// LeaseUpload takes the upload lease on fileID, waiting while another
// request (here or on another instance) holds it; that holder is asked to
// release it. onRelease (may be nil) is called once, in a goroutine of
// its own, when some other request asks for this lease or the lease is
// lost; the holder should then stop reading, let its commits finish and
// Release. Returns ErrLeaseTimeout when ctx ends first.
func (s *Service) LeaseUpload(ctx context.Context, fileID string, onRelease func()) (*UploadLease, error) {
	ttl := s.leaseTTL()
	token := newLeaseToken()
	poll := min(250*time.Millisecond, ttl/8)
	for {
		_, err := s.db.AcquireLease(ctx, fileID, s.holder, token, s.now(), ttl)
		if err == nil {
			l := &UploadLease{s: s, fileID: fileID, token: token, onRelease: onRelease,
				stop: make(chan struct{}), done: make(chan struct{})}
			s.leases.mu.Lock()
			s.leases.held[fileID] = l
			s.leases.mu.Unlock()
			go l.watch(ttl)
			return l, nil
		}
		if !errors.Is(err, store.ErrLeaseHeld) {
			if ctx.Err() != nil {
				return nil, ErrLeaseTimeout
			}
			return nil, err
		}
		// Held: the row now asks its holder to let go. If the holder is in
		// this process, tell it directly.
		s.leases.mu.Lock()
		local := s.leases.held[fileID]
		s.leases.mu.Unlock()
		if local != nil {
			local.requestRelease()
		}
		select {
		case <-ctx.Done():
			return nil, ErrLeaseTimeout
		case <-time.After(poll):
		}
	}
}

// ClearStaleLeases deletes the upload leases an earlier run left in a
// database that only this process uses (SQLite): after a crash, a client
// resuming its upload would otherwise wait for the dead process's lease to
// expire. On PostgreSQL other instances hold live leases, so it does
// nothing there; their leases expire on their own.
func (s *Service) ClearStaleLeases(ctx context.Context) error {
	if s.db.Dialect() != store.SQLite {
		return nil
	}
	n, err := s.db.DeleteAllLeases(ctx)
	if err != nil {
		return fmt.Errorf("clear upload leases: %w", err)
	}
	if n > 0 {
		s.log.Info("removed upload leases left by an earlier run", "count", n)
	}
	return nil
}

// Token is the lease's fencing token.
func (l *UploadLease) Token() string { return l.token }

// FileID is the file the lease is for.
func (l *UploadLease) FileID() string { return l.fileID }

// requestRelease starts onRelease once, in its own goroutine, so a
// callback that releases the lease at once can never deadlock with the
// watcher or with the request that asked.
func (l *UploadLease) requestRelease() {
	if l.onRelease != nil && l.requested.CompareAndSwap(false, true) {
		go l.onRelease()
	}
}

// watch renews the lease every third of its duration and checks about
// every second whether another request asked for it, until Release.
func (l *UploadLease) watch(ttl time.Duration) {
	defer close(l.done)
	s := l.s
	tick := time.NewTicker(min(time.Second, ttl/5))
	defer tick.Stop()
	lastRenew := time.Now()
	validUntil := time.Now().Add(ttl)
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
		var requested bool
		var err error
		if time.Since(lastRenew) >= ttl/3 {
			requested, err = s.db.RenewLease(ctx, l.fileID, l.token, s.now(), ttl)
			if err == nil {
				lastRenew, validUntil = time.Now(), time.Now().Add(ttl)
			}
		} else {
			requested, err = s.db.LeaseReleaseRequested(ctx, l.fileID, l.token, s.now())
		}
		cancel()
		switch {
		case errors.Is(err, store.ErrLeaseLost):
			// Expired (this process was too slow) or taken over: the next
			// commit would fail; stop the request now.
			s.log.Warn("upload lease lost; the request stops", "file", l.fileID)
			l.requestRelease()
			return
		case err != nil:
			s.log.Error("upload lease: renewal failed; will retry", "file", l.fileID, "err", err)
			if time.Now().After(validUntil) {
				l.requestRelease()
				return
			}
		case requested:
			l.requestRelease()
		}
	}
}

// Release gives the lease up (deleting the row if it is still ours). It is
// safe to call more than once.
func (l *UploadLease) Release() error {
	l.releaseMu.Lock()
	defer l.releaseMu.Unlock()
	if l.released {
		return nil
	}
	l.released = true
	close(l.stop)
	<-l.done
	s := l.s
	s.leases.mu.Lock()
	if s.leases.held[l.fileID] == l {
		delete(s.leases.held, l.fileID)
	}
	s.leases.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.db.ReleaseLease(ctx, l.fileID, l.token); err != nil && !errors.Is(err, store.ErrLeaseLost) {
		return err
	}
	return nil
}

type leaseKey struct{}

// WithLease returns ctx carrying l, so WriteFile commits under it instead
// of taking a lease of its own (tus: the lock tusd took for the request).
func WithLease(ctx context.Context, l *UploadLease) context.Context {
	return context.WithValue(ctx, leaseKey{}, l)
}

func leaseFrom(ctx context.Context, fileID string) *UploadLease {
	l, _ := ctx.Value(leaseKey{}).(*UploadLease)
	if l == nil || l.fileID != fileID {
		return nil
	}
	return l
}

// errLeaseLost is what a request that lost its lease mid-write answers.
func errLeaseLost(err error) error {
	return &kluis.Error{Code: kluis.ECONFLICT, Err: err,
		Message: "This upload was taken over by another request. Ask the server for the current offset and resume."}
}
