-- A sender's personal inbox key (issue 17): an age X25519 identity that
-- only the sender's inbox passphrase unwraps. recipient is the public key
-- in plain, so uploads to the inbox need no secret; identity_sealed is the
-- age scrypt wrap of the identity (with the recipient, which a reader
-- compares with the plain column) sealed under the master key.
CREATE TABLE inbox_keys (
	email           TEXT PRIMARY KEY,
	recipient       TEXT NOT NULL,
	identity_sealed BLOB NOT NULL,
	created_at      INTEGER NOT NULL
) STRICT;

-- The inbox identity of a session that unlocked it, sealed under a key
-- derived from the session token, which only the client holds. Deleting
-- the session (logout, expiry) locks the inbox again.
ALTER TABLE sender_sessions ADD COLUMN inbox_sealed BLOB;
