-- Upload leases: which instance may append segments to an unfinished file
-- right now (see docs/architecture.md, "Several instances"). A lease is
-- short and renewed by its holder; token is random per acquisition and is
-- checked in the same transaction as every manifest update (fencing), so a
-- holder whose lease expired or was taken over can never add a segment.
-- release_requested asks the holder to stop (another request waits). No
-- foreign key: tus locks an id before it knows the file exists; expired
-- rows are deleted by the purge round. Times are Unix ms (UTC).
CREATE TABLE upload_leases (
	file_id           TEXT PRIMARY KEY,
	token             TEXT NOT NULL,
	holder            TEXT NOT NULL,
	expires_at        INTEGER NOT NULL,
	release_requested INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX upload_leases_expires ON upload_leases (expires_at);

-- Shared rate-limit buckets (GCRA: one "theoretical arrival time" per key,
-- in Unix microseconds), so instances sharing a database enforce one limit.
-- key is "global" or "ip:" and the client address (an IPv6 /64). A row
-- whose tat has passed is a full bucket and is pruned.
CREATE TABLE rate_limits (
	key TEXT PRIMARY KEY,
	tat INTEGER NOT NULL
) STRICT;
CREATE INDEX rate_limits_tat ON rate_limits (tat);
