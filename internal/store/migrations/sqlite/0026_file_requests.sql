-- File requests (issue 17, part 2): a signed-in staff member asks someone
-- for files. The link's secret is only in the (sealed) mail; the row keeps
-- its SHA-256. inbox_sealed is the requester's inbox recipient at the time
-- of the request, sealed under the master key, so a database writer
-- without the key cannot make uploads go to a recipient of their own.
-- details_sealed (the request's message, sealed under the master key) and
-- access_hash are emptied when the request expires or is revoked; the row
-- stays for the retention, as a transfer's minimal record does.
-- transfer_id is the draft or finished transfer that holds the upload,
-- encrypted to a fresh identity that only the requester's inbox key opens.
CREATE TABLE file_requests (
	id              TEXT PRIMARY KEY,
	requester_email TEXT NOT NULL,
	address         TEXT NOT NULL,
	lang            TEXT NOT NULL,
	access_hash     BLOB UNIQUE,
	inbox_sealed    BLOB,
	details_sealed  BLOB,
	max_size        INTEGER NOT NULL,
	max_files       INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	expires_at      INTEGER NOT NULL,
	done_at         INTEGER,
	revoked_at      INTEGER,
	purged_at       INTEGER,
	transfer_id     TEXT
) STRICT;
CREATE INDEX file_requests_requester ON file_requests (requester_email, created_at);
CREATE INDEX file_requests_expiry ON file_requests (expires_at);
CREATE INDEX file_requests_transfer ON file_requests (transfer_id);
