-- The newest clock reading a shared rate bucket has seen (Unix
-- microseconds). A request that read the time earlier (and then waited
-- for the row) is counted at this time, so a late request is not refused
-- with tokens to spare; it also keeps the buckets monotone when the
-- instances' clocks differ a little.
ALTER TABLE rate_limits ADD COLUMN seen INTEGER NOT NULL DEFAULT 0;
