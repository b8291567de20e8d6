package transfer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/store"
)

// Run does the background work until ctx ends: the purge of expired and
// revoked transfers (every PurgeInterval, and at once after a revoke), and
// about hourly the collector of unfinished and unlisted blobs and the
// statistics of the days that ended (store.RollupStats). Failures are logged and retried on the next round, so deletion
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
			// The statistics of the days that ended, before the audit
			// retention and the outbox cleanup remove what they count.
			if _, err := s.db.RollupStats(ctx, s.now()); err != nil && ctx.Err() == nil {
				s.log.Error("statistics rollup failed; will retry", "err", err)
			}
			if err := s.db.Optimize(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("database optimize failed; will retry", "err", err)
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

// purgeBatch is how many transfers one purge transaction handles: each
// commit costs a WAL fsync and (SQLite) a checkpoint of the pages the
// batch changed, many of them shared by the next batch, so larger batches
// write less; a batch holds SQLite's write lock for a second or two on a
// loaded machine (bench/README.md, "Scale").
const purgeBatch = 1000

// Purge first sends the uploads of file requests whose deadline passed
// (sendAtDeadline). It erases the content of every transfer that is expired or revoked:
// first its blobs, then its encrypted fields, then it marks the transfer
// purged and truncates the WAL. It also deletes minimal records past the
// retention and sessions past their end. Returns how many transfers it
// purged.
//
// It works in batches of purgeBatch transfers until none is due (a backlog
// of 100,000 takes well under a minute, bench/README.md): each batch
// deletes the blobs of its transfers, then purges them in one transaction
// (claimed with their rows locked, so two instances never purge one
// transfer twice), then lists their blobs once more.
func (s *Service) Purge(ctx context.Context) (int, error) {
	now := s.now()
	n := 0
	// What people asked for files uploaded but never sent goes to the
	// requester at the deadline, before the purge would erase it.
	if _, err := s.sendAtDeadline(ctx, now); err != nil {
		return n, err
	}
	for {
		ids, err := s.db.DueForPurge(ctx, now, purgeBatch)
		if err != nil {
			return n, err
		}
		if len(ids) == 0 {
			break
		}
		k, err := s.purgeBatch(ctx, ids, now)
		n += k
		if err != nil {
			return n, err
		}
		// k == 0: another instance purged all of them meanwhile; it goes
		// on with the rest.
		if len(ids) < purgeBatch || k == 0 {
			break
		}
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
	// File requests: the link, message and inbox recipient go at expiry
	// or revocation (their uploads are transfers, purged above); the
	// minimal record after the retention.
	if _, err := s.db.PurgeFileRequests(ctx, now); err != nil {
		return n, err
	}
	if _, err := s.db.DeleteRetiredFileRequests(ctx, now.Add(-s.cfg.Retention)); err != nil {
		return n, err
	}
	// The SMS caps look back a day at most.
	if _, err := s.db.DeleteSMSSends(ctx, now.Add(-24*time.Hour)); err != nil {
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

// purgeBatch purges the transfers ids (due at now) and returns how many it
// purged.
func (s *Service) purgeBatch(ctx context.Context, ids []string, now time.Time) (int, error) {
	if err := s.deletePrefixes(ctx, ids); err != nil {
		return 0, err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	// Another instance may have purged some since DueForPurge: the claim
	// locks the rows (waiting for a download being recorded, or that
	// instance's batch) and reads them again.
	claimed, err := tx.ClaimForPurge(ctx, ids, now)
	if err != nil {
		return 0, err
	}
	// The download summaries first: they still read the file names.
	// One query for the batch's options, so a transfer without a summary
	// costs no query of its own.
	options, err := tx.TransferOptions(ctx, claimed)
	if err != nil {
		return 0, err
	}
	summaries := 0
	for _, id := range claimed {
		if parseOptions(options[id]).NotifyMode() != kluis.NotifySummary {
			continue
		}
		queued, err := s.notifySummary(ctx, tx, id)
		if err != nil {
			return 0, err
		}
		if queued {
			summaries++
		}
	}
	if err := tx.PurgeTransfers(ctx, claimed, now); err != nil {
		return 0, err
	}
	events := make([]audit.Event, len(claimed))
	for i, id := range claimed {
		events[i] = audit.Event{Actor: audit.System, Action: audit.TransferPurge, Object: id}
	}
	if err := s.audit.RecordAll(ctx, tx.Q, events); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	if summaries > 0 {
		s.wakeMailer()
	}
	// A segment committed by a request still in flight when the purge
	// listed the blobs would outlive it; list once more.
	if err := s.deletePrefixes(ctx, claimed); err != nil {
		return len(claimed), err
	}
	for _, id := range claimed {
		s.log.Info("transfer purged", "transfer", id)
	}
	s.met().Purged(len(claimed))
	return len(claimed), nil
}

// deletePrefixes deletes the blobs of the transfers ids, a few transfers
// at a time (on S3 each is a listing and a delete per object version).
func (s *Service) deletePrefixes(ctx context.Context, ids []string) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	errs := make([]error, len(ids))
	for i, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.deletePrefix(ctx, "t/"+id+"/"); err != nil {
				errs[i] = fmt.Errorf("purge blobs of %s: %w", id, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
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
