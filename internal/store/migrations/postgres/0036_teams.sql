-- PostgreSQL twin of migrations/sqlite/0036_teams.sql.
CREATE TABLE team_members (
	team_id  TEXT NOT NULL,
	email    TEXT NOT NULL,
	added_at BIGINT NOT NULL,
	PRIMARY KEY (team_id, email)
);
CREATE INDEX team_members_email ON team_members (email);

CREATE TABLE team_keys (
	id               TEXT PRIMARY KEY,
	team_id          TEXT NOT NULL,
	generation       BIGINT NOT NULL,
	recipient_sealed BYTEA NOT NULL,
	created_at       BIGINT NOT NULL,
	retired_at       BIGINT,
	UNIQUE (team_id, generation)
);

CREATE TABLE team_wraps (
	id          TEXT PRIMARY KEY,
	team_id     TEXT NOT NULL,
	generation  BIGINT NOT NULL,
	email       TEXT NOT NULL,
	wrap_sealed BYTEA NOT NULL,
	created_at  BIGINT NOT NULL,
	UNIQUE (team_id, generation, email)
);
CREATE INDEX team_wraps_email ON team_wraps (email, team_id);

CREATE TABLE dropoff_uploads (
	transfer_id  TEXT PRIMARY KEY,
	slug         TEXT NOT NULL,
	team_id      TEXT NOT NULL,
	generation   BIGINT NOT NULL,
	sender_email TEXT NOT NULL,
	created_at   BIGINT NOT NULL
);
CREATE INDEX dropoff_uploads_team ON dropoff_uploads (team_id, created_at);
CREATE INDEX dropoff_uploads_sender ON dropoff_uploads (sender_email, slug);
