-- Recipient verification by SMS code after the password (issue 15; see
-- docs/security.md, "Second factor for recipients"). auth_method is how a
-- recipient proves who they are: 'password' or 'password+sms' (later
-- 'password+login'). phone_sealed is the mobile number for the code,
-- sealed under the master key (purpose recipient.phone, row id the
-- recipient id); it is erased with the other sealed values at the purge.
-- verified_at is the last time the second factor was passed.
ALTER TABLE recipients ADD COLUMN auth_method TEXT NOT NULL DEFAULT 'password';
ALTER TABLE recipients ADD COLUMN phone_sealed BLOB;
ALTER TABLE recipients ADD COLUMN verified_at INTEGER;
-- A session made by the right password of a 'password+sms' recipient is
-- pending until the code is given: it opens nothing. code_hash is an HMAC
-- (key from the master key) of the session id and the code, so a code
-- works only in the session that asked for it; code_expires and
-- code_sent_at bound its life and the resend cooldown.
ALTER TABLE sessions ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN code_hash BLOB;
ALTER TABLE sessions ADD COLUMN code_expires INTEGER;
ALTER TABLE sessions ADD COLUMN code_sent_at INTEGER;
-- One row per SMS sent, for the caps per recipient per day and per
-- organisation per hour; rows older than a day are deleted.
CREATE TABLE sms_sends (
	id           INTEGER PRIMARY KEY,
	recipient_id INTEGER NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
	sent_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX sms_sends_recipient ON sms_sends (recipient_id, sent_at);
CREATE INDEX sms_sends_at ON sms_sends (sent_at);
