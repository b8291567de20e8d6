-- The admin console's mail queue (issue 19): each queued mail keeps its
-- recipient's address masked (first letter and domain, "b…@example.nl"),
-- so the page can say where a mail was going without opening the sealed
-- mail. NULL for mails queued before this migration.
ALTER TABLE outbox ADD COLUMN recipient_masked TEXT;
