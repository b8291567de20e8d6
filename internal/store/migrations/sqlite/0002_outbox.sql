-- The mail outbox. A row is written in the same transaction as the change
-- that causes the mail, holds the rendered mail sealed under the master key
-- ("outbox.mail", id) and is deleted once the relay accepted it. The id is
-- random and is also the local part of the mail's Message-ID, which stays
-- the same across retries. last_error never holds mail content. A row that
-- failed for good keeps only its id, kind, dates and error: sealed is
-- erased.
CREATE TABLE outbox (
	id            TEXT PRIMARY KEY,
	kind          TEXT NOT NULL,
	created_at    INTEGER NOT NULL,
	not_before    INTEGER NOT NULL,
	attempts      INTEGER NOT NULL DEFAULT 0,
	claimed_until INTEGER,
	failed_at     INTEGER,
	last_error    TEXT,
	sealed        BLOB
) STRICT;
CREATE INDEX outbox_due ON outbox (failed_at, not_before);
