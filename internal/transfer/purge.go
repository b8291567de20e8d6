package transfer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/store"
)

// Run does the background work until ctx ends: the purge of expired and
// revoked transfers (every PurgeInterval, and at once after a revoke), and
// about hourly the collector of unfinished and unlisted blobs and the end of
// retention. Failures are logged and retried on the next round, so deletion
// is journaled by the transfer rows themselves: a transfer is due until its
// purged_at is set, which happens only after its blobs are gone.
func (s *Service) Run(ctx context.Context) {
	tick := time.NewTicker(s.cfg.PurgeInterval)
	defer tick.Stop()
	lastCollect := time.Time{}
	for {
		if _, err := s.Purge(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("purge failed; will retry", "err", err)
		}
		if err := s.remind(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("expiry reminders failed; will retry", "err", err)
		}
		if time.Since(lastCollect) > time.Hour {
			if _, err := s.Collect(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("collector failed; will retry", "err", err)
			}
			lastCollect = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.wake:
		}
	}
}

// Purge erases the content of every transfer that is expired or revoked:
// first its blobs, then its encrypted fields, then it marks the transfer
// purged and truncates the WAL. It also deletes minimal records past the
// retention and sessions past their end. Returns how many transfers it
// purged.
func (s *Service) Purge(ctx context.Context) (int, error) {
	now := s.now()
	ids, err := s.db.DueForPurge(ctx, now, 100)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if err := s.deletePrefix(ctx, "t/"+id+"/"); err != nil {
			return n, fmt.Errorf("purge blobs of %s: %w", id, err)
		}
		tx, err := s.db.BeginTx(ctx)
		if err != nil {
			return n, err
		}
		// Another instance may have purged it since DueForPurge: write
		// transactions run one at a time, so this read sees its commit.
		if t, err := tx.Transfer(ctx, id); err != nil || t.PurgedAt != nil {
			tx.Rollback()
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return n, err
			}
			continue
		}
		if err := tx.PurgeTransfer(ctx, id, now); err != nil {
			tx.Rollback()
			return n, err
		}
		if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: audit.System, Action: audit.TransferPurge, Object: id}); err != nil {
			tx.Rollback()
			return n, err
		}
		if err := tx.Commit(); err != nil {
			return n, err
		}
		// A segment committed by a request still in flight when the purge
		// listed the blobs would outlive it; list once more.
		if err := s.deletePrefix(ctx, "t/"+id+"/"); err != nil {
			return n, fmt.Errorf("purge blobs of %s: %w", id, err)
		}
		s.log.Info("transfer purged", "transfer", id)
		s.met().Purged(1)
		n++
	}
	retired, err := s.db.DeleteRetired(ctx, now.Add(-s.cfg.Retention))
	if err != nil {
		return n, err
	}
	if retired > 0 {
		s.log.Info("minimal records deleted after retention", "count", retired)
		s.audit.Log(ctx, audit.Event{Actor: audit.System, Action: audit.TransferRetire, Detail: "count=" + strconv.FormatInt(retired, 10)})
	}
	if _, err := s.db.DeleteExpiredSessions(ctx, now); err != nil {
		return n, err
	}
	// Upload leases left by crashed instances (or tus requests for ids
	// that do not exist); an expired lease holds nothing.
	if _, err := s.db.DeleteExpiredLeases(ctx, now); err != nil {
		return n, err
	}
	pruned, err := s.audit.Prune(ctx, now)
	if err != nil {
		return n, err
	}
	if pruned > 0 {
		s.log.Info("audit entries deleted after retention", "count", pruned)
	}
	if n > 0 || retired > 0 || pruned > 0 {
		if err := s.db.Checkpoint(ctx); err != nil {
			return n, fmt.Errorf("checkpoint: %w", err)
		}
	}
	return n, nil
}

// CollectStats reports what the collector removed.
type CollectStats struct {
	Temp    int
	Orphans int
}

// Collect removes unfinished blob writes older than TempMaxAge and blobs
// that no manifest lists (no segment entry of any file) and that are older than OrphanGrace (left by a
// crash between the blob rename and the database commit).
func (s *Service) Collect(ctx context.Context) (CollectStats, error) {
	var st CollectStats
	now := s.now()
	n, err := s.blobs.CollectTemp(ctx, now.Add(-s.cfg.TempMaxAge))
	if err != nil {
		return st, err
	}
	st.Temp = n
	listed := map[string]bool{}
	if err := s.db.EachFile(ctx, func(f *store.FileRow) error {
		m, err := s.manifest(ctx, s.db.Q, f)
		if err != nil {
			// An unreadable manifest keeps its blobs: never delete what
			// might be referenced.
			listed["t/"+f.TransferID+"/"+f.ID+"/"] = true
			return nil
		}
		for _, e := range m.Entries {
			listed[e.Key] = true
		}
		return nil
	}); err != nil {
		return st, err
	}
	var orphans []string
	if err := s.blobs.List(ctx, "t/", func(i blob.Info) error {
		if listed[i.Key] || !i.ModTime.Before(now.Add(-s.cfg.OrphanGrace)) {
			return nil
		}
		parts := strings.Split(i.Key, "/")
		if len(parts) == 4 && listed["t/"+parts[1]+"/"+parts[2]+"/"] {
			return nil
		}
		orphans = append(orphans, i.Key)
		return nil
	}); err != nil {
		return st, err
	}
	for _, k := range orphans {
		if err := s.blobs.Delete(ctx, k); err != nil {
			return st, err
		}
		st.Orphans++
	}
	if st.Temp > 0 || st.Orphans > 0 {
		s.log.Info("collector removed leftovers", "temp", st.Temp, "orphans", st.Orphans)
	}
	return st, nil
}
