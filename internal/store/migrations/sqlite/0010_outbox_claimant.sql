-- Who claimed a mail (issue 20): on PostgreSQL the claiming instance's own
-- advisory lock key (store.DB.ClaimOutbox). A claim is live while its lease
-- lasts and that instance still holds the key; an instance that died lets go
-- of it at once, so the mail it was sending is due again without waiting
-- out the 3-minute lease. SQLite leaves it NULL: one process uses the
-- database, and kluis serve ends every claim at start.
ALTER TABLE outbox ADD COLUMN claimed_by INTEGER;
