-- The purge asks for the oldest expired transfers not yet purged, a batch
-- at a time (qDueExpired: purged_at IS NULL AND expires_at <= now ORDER BY
-- expires_at LIMIT n). PostgreSQL cannot read transfers_due (purged_at,
-- expires_at) in expires_at order for it, because it does not treat
-- "purged_at IS NULL" as fixing the first column; with a backlog of
-- 100,000 of a million transfers it read the whole table and sorted, once
-- per batch (bench/scale_test.go, issue 21). This partial index is in
-- expiry order and holds only the transfers not yet purged.
CREATE INDEX transfers_expiry_due ON transfers (expires_at) WHERE purged_at IS NULL;
