-- Segment entries one row each (issue 11, item 6): a file's manifest used to
-- be one sealed value, resealed whole on every segment commit, so a commit
-- cost grew with the segments before it. Now each entry is sealed on its own
-- (segments.entry_sealed, bound to the row id "FILE:INDEX") and the file row
-- keeps only the small sealed head (files.head_sealed: count, end offset,
-- hash state, last header hash). Files written before this migration keep
-- their files.manifest_sealed (head_sealed NULL) and are read as before; an
-- unfinished one moves to rows at its next segment commit.
CREATE TABLE segments (
	id           TEXT PRIMARY KEY,
	file_id      TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
	idx          INTEGER NOT NULL,
	entry_sealed BLOB NOT NULL,
	UNIQUE (file_id, idx)
) STRICT;
ALTER TABLE files ADD COLUMN head_sealed BLOB;

-- Quotas: a sender's open drafts and recent transfers are counted whatever
-- the case of the address, and a recipient's replies per transfer by
-- reply_to (until now only inside the options JSON).
ALTER TABLE transfers ADD COLUMN reply_to TEXT;
UPDATE transfers SET reply_to = json_extract(options, '$.reply_to')
	WHERE json_valid(options) AND json_extract(options, '$.reply_to') <> '';
CREATE INDEX transfers_sender_lower ON transfers (lower(sender_email), created_at);
CREATE INDEX transfers_reply_to ON transfers (reply_to);
