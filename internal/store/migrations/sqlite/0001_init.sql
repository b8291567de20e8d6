-- Transfers keep only what the server needs in plain: ids, dates, state,
-- the sender's address (to find their transfers) and recipient addresses.
-- Everything else is sealed: *_sealed columns are encrypted under the master
-- key; private values (file names, the message) are first encrypted to the
-- transfer's own age recipient, so only the transfer secret opens them.
CREATE TABLE transfers (
	id                TEXT PRIMARY KEY,
	state             TEXT NOT NULL,
	created_at        INTEGER NOT NULL,
	expires_at        INTEGER NOT NULL,
	finished_at       INTEGER,
	revoked_at        INTEGER,
	purged_at         INTEGER,
	sender_email      TEXT NOT NULL,
	lang              TEXT NOT NULL,
	password_mode     TEXT NOT NULL,
	options           TEXT NOT NULL,
	upload_token_hash BLOB NOT NULL,
	recipient_sealed  BLOB,
	identity_sealed   BLOB,
	details_sealed    BLOB,
	private_sealed    BLOB
) STRICT;
CREATE INDEX transfers_due ON transfers (purged_at, expires_at);
CREATE INDEX transfers_sender ON transfers (sender_email, created_at);
CREATE INDEX transfers_upload_token ON transfers (upload_token_hash);

CREATE TABLE recipients (
	id           INTEGER PRIMARY KEY,
	transfer_id  TEXT NOT NULL REFERENCES transfers (id) ON DELETE CASCADE,
	kind         TEXT NOT NULL,
	address      TEXT NOT NULL,
	access_hash  BLOB UNIQUE,
	notified_at  INTEGER,
	opened_at    INTEGER,
	revoked_at   INTEGER,
	failures     INTEGER NOT NULL DEFAULT 0,
	locked_until INTEGER
) STRICT;
CREATE INDEX recipients_transfer ON recipients (transfer_id);

CREATE TABLE files (
	id              TEXT PRIMARY KEY,
	transfer_id     TEXT NOT NULL REFERENCES transfers (id) ON DELETE CASCADE,
	idx             INTEGER NOT NULL,
	complete        INTEGER NOT NULL DEFAULT 0,
	rev             INTEGER NOT NULL DEFAULT 0,
	updated_at      INTEGER NOT NULL,
	meta_sealed     BLOB,
	private_sealed  BLOB,
	sum_sealed      BLOB,
	manifest_sealed BLOB,
	UNIQUE (transfer_id, idx)
) STRICT;

CREATE TABLE downloads (
	id           INTEGER PRIMARY KEY,
	recipient_id INTEGER NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
	file_idx     INTEGER,
	at           INTEGER NOT NULL
) STRICT;
CREATE INDEX downloads_recipient ON downloads (recipient_id);

CREATE TABLE sessions (
	id_hash         BLOB PRIMARY KEY,
	recipient_id    INTEGER NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
	identity_sealed BLOB NOT NULL,
	expires_at      INTEGER NOT NULL
) STRICT;
