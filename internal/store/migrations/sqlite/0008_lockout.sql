-- Escalating lock-out of a recipient's access (see docs/security.md,
-- "Online guessing and flooding"). failures still counts the wrong
-- attempts towards the next lock; fail_total counts every wrong attempt
-- (password, and later SMS code or login) since the last success or the
-- sender's unlock, and lockouts the locks since then, which picks the next
-- lock's length. held_at is set when the access stays locked until the
-- sender lifts it; unlock_hash is the SHA-256 of the one-time unlock link
-- in the latest lock-out mail.
ALTER TABLE recipients ADD COLUMN fail_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recipients ADD COLUMN lockouts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recipients ADD COLUMN held_at INTEGER;
ALTER TABLE recipients ADD COLUMN unlock_hash BLOB;
CREATE INDEX recipients_unlock ON recipients (unlock_hash);
