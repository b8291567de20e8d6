-- PostgreSQL twin of migrations/sqlite/0009_segments.sql.
CREATE TABLE segments (
	id           TEXT PRIMARY KEY,
	file_id      TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
	idx          INTEGER NOT NULL,
	entry_sealed BYTEA NOT NULL,
	UNIQUE (file_id, idx)
);
ALTER TABLE files ADD COLUMN head_sealed BYTEA;

ALTER TABLE transfers ADD COLUMN reply_to TEXT;
UPDATE transfers SET reply_to = options::jsonb ->> 'reply_to'
	WHERE options::jsonb ->> 'reply_to' <> '';
CREATE INDEX transfers_sender_lower ON transfers (lower(sender_email), created_at);
CREATE INDEX transfers_reply_to ON transfers (reply_to);
