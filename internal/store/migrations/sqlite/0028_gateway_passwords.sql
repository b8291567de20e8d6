-- The SMTP gateway (issue 18): the generated password of a transfer made
-- from a mail waits here, sealed under the master key, until its sender
-- opens the one-time link of the confirmation mail (signed in as that
-- sender) or the link expires (at most 24 hours). The row is deleted when
-- the password is shown, so it is shown once. Found by the hash of the
-- link's token; the token itself is only in the (sealed) mail.
CREATE TABLE gateway_passwords (
	token_hash   BLOB PRIMARY KEY,
	transfer_id  TEXT NOT NULL REFERENCES transfers (id) ON DELETE CASCADE,
	sender_email TEXT NOT NULL,
	sealed       BLOB NOT NULL,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX gateway_passwords_expiry ON gateway_passwords (expires_at);
CREATE INDEX gateway_passwords_transfer ON gateway_passwords (transfer_id);
