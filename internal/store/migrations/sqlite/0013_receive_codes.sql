-- Receive codes (issue 13, item 6): a recipient's short code for the
-- /receive form, a second name for the link. It has 80 bits, fewer than an
-- access id, so only a keyed hash is stored (HMAC under a key derived from
-- the master key); NULL for recipients notified before this migration,
-- whose mails show the access id as their code.
ALTER TABLE recipients ADD COLUMN code_hash BLOB;
CREATE UNIQUE INDEX recipients_code_hash ON recipients (code_hash);
