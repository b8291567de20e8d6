-- Drop-off points and team inbox keys (issue 17, part 1). A drop-off point
-- of the policy names a team; the team's members are kept here (managed by
-- an administrator with kluis admin team). A team has one age identity per
-- generation: a new generation is made when a member is removed, so what
-- arrives afterwards is encrypted to a key the removed member never held.
-- recipient_sealed is the generation's public recipient sealed under the
-- master key (a database writer without the key cannot make uploads go to
-- a recipient of their own); retired_at is set when a newer generation
-- took over. The identity is never stored in plain: team_wraps holds it
-- per member, age-encrypted to the member's personal inbox recipient and
-- sealed under the master key. id is "team/generation" and
-- "team/generation/email", the row ids of the seals.
CREATE TABLE team_members (
	team_id  TEXT NOT NULL,
	email    TEXT NOT NULL,
	added_at INTEGER NOT NULL,
	PRIMARY KEY (team_id, email)
) STRICT;
CREATE INDEX team_members_email ON team_members (email);

CREATE TABLE team_keys (
	id               TEXT PRIMARY KEY,
	team_id          TEXT NOT NULL,
	generation       INTEGER NOT NULL,
	recipient_sealed BLOB NOT NULL,
	created_at       INTEGER NOT NULL,
	retired_at       INTEGER,
	UNIQUE (team_id, generation)
) STRICT;

CREATE TABLE team_wraps (
	id          TEXT PRIMARY KEY,
	team_id     TEXT NOT NULL,
	generation  INTEGER NOT NULL,
	email       TEXT NOT NULL,
	wrap_sealed BLOB NOT NULL,
	created_at  INTEGER NOT NULL,
	UNIQUE (team_id, generation, email)
) STRICT;
CREATE INDEX team_wraps_email ON team_wraps (email, team_id);

-- What a citizen sent to a drop-off point: the transfer (PasswordInbox,
-- its identity wrapped to the team key of generation) and who sent it.
-- The row goes with its transfer's rows.
CREATE TABLE dropoff_uploads (
	transfer_id  TEXT PRIMARY KEY,
	slug         TEXT NOT NULL,
	team_id      TEXT NOT NULL,
	generation   INTEGER NOT NULL,
	sender_email TEXT NOT NULL,
	created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX dropoff_uploads_team ON dropoff_uploads (team_id, created_at);
CREATE INDEX dropoff_uploads_sender ON dropoff_uploads (sender_email, slug);
