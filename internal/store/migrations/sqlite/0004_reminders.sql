-- When the optional expiry reminder went to the sender (once per transfer).
ALTER TABLE transfers ADD COLUMN reminded_at INTEGER;
