-- Malware scan waiting (issue 16): a transfer whose sender finished it while
-- clamd could not be reached (fail-closed) waits in state 'scanning'. Its
-- scan keys stay in files.scan_sealed; scan_since is when the sender
-- finished it (finished_at is set only once it is sent), scan_until when it
-- gives up (then
-- it fails and the sender is told), scan_next_at the next retry,
-- scan_attempts the retries so far (for the backoff), and
-- scan_claimed_until the lease of the instance that retries it now.
ALTER TABLE transfers ADD COLUMN scan_since INTEGER;
ALTER TABLE transfers ADD COLUMN scan_until INTEGER;
ALTER TABLE transfers ADD COLUMN scan_next_at INTEGER;
ALTER TABLE transfers ADD COLUMN scan_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN scan_claimed_until INTEGER;
CREATE INDEX transfers_scanning ON transfers (scan_next_at) WHERE state = 'scanning';
-- The notifications of a waiting transfer are rendered and queued at
-- finish (so a no-password link secret lives only in its sealed mail, as
-- always) but held: held_for names the transfer, and not_before is far in
-- the future until the scan passes (then they are due) or fails (then
-- they are deleted).
ALTER TABLE outbox ADD COLUMN held_for TEXT;
CREATE INDEX outbox_held ON outbox (held_for) WHERE held_for IS NOT NULL;
