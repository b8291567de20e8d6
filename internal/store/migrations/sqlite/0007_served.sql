-- Download accounting (docs/security.md, "What counts as a download"):
-- which bytes of each file have been served to each recipient, as merged
-- inclusive ranges ("0-99999,200000-300000"). A file counts as downloaded
-- for a recipient once these cover it. Numbers only, no content; deleted
-- at the purge.
CREATE TABLE served (
	recipient_id INTEGER NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
	file_idx     INTEGER NOT NULL,
	spans        TEXT NOT NULL,
	PRIMARY KEY (recipient_id, file_idx)
) STRICT;

-- One downloads row per recipient and file: the first time it counted as
-- downloaded. Earlier versions added a row for every whole download; keep
-- the first of each.
DELETE FROM downloads WHERE id NOT IN (SELECT min(id) FROM downloads GROUP BY recipient_id, file_idx);
CREATE UNIQUE INDEX downloads_once ON downloads (recipient_id, file_idx);
