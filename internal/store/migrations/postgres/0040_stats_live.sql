-- PostgreSQL twin of migrations/sqlite/0040_stats_live.sql.
CREATE TABLE stats_live (
	day    BIGINT NOT NULL,
	metric TEXT NOT NULL,
	value  BIGINT NOT NULL,
	PRIMARY KEY (day, metric)
);
INSERT INTO stats_live (day, metric, value) VALUES (-1, 'recount', 1);
