-- PostgreSQL twin of migrations/sqlite/0007_served.sql.
CREATE TABLE served (
	recipient_id BIGINT NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
	file_idx     INTEGER NOT NULL,
	spans        TEXT NOT NULL,
	PRIMARY KEY (recipient_id, file_idx)
);

DELETE FROM downloads WHERE id NOT IN (SELECT min(id) FROM downloads GROUP BY recipient_id, file_idx);
CREATE UNIQUE INDEX downloads_once ON downloads (recipient_id, file_idx);
