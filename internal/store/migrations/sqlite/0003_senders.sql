-- Sender verification: a code mailed to the address, tied to the browser
-- (or CLI) that asked for it through a pre-session token. Only hashes of
-- tokens and codes are stored; name and phone are sealed.
CREATE TABLE verifications (
	id_hash        BLOB PRIMARY KEY,
	email          TEXT NOT NULL,
	details_sealed BLOB NOT NULL,
	code_hash      BLOB,
	created_at     INTEGER NOT NULL,
	sent_at        INTEGER NOT NULL,
	expires_at     INTEGER NOT NULL,
	attempts       INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX verifications_expiry ON verifications (expires_at);

-- A verified sender's session: a browser cookie or a CLI token.
CREATE TABLE sender_sessions (
	id_hash        BLOB PRIMARY KEY,
	email          TEXT NOT NULL,
	details_sealed BLOB NOT NULL,
	kind           TEXT NOT NULL,
	created_at     INTEGER NOT NULL,
	last_seen_at   INTEGER NOT NULL,
	expires_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX sender_sessions_expiry ON sender_sessions (expires_at);

-- API keys issued by an administrator, each bound to one sender address.
CREATE TABLE api_keys (
	id         TEXT PRIMARY KEY,
	key_hash   BLOB NOT NULL UNIQUE,
	email      TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER
) STRICT;
