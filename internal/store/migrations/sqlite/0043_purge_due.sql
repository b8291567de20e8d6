-- Twin of migrations/postgres/0043_purge_due.sql: the partial index in
-- expiry order of the transfers not yet purged, which the purge's batches
-- read (qDueExpired). SQLite could already read transfers_due for it (it
-- treats "purged_at IS NULL" as fixing that column); the same index on
-- both keeps the two plans alike.
CREATE INDEX transfers_expiry_due ON transfers (expires_at) WHERE purged_at IS NULL;
