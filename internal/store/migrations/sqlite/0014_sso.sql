-- Staff sign-in with OpenID Connect (issue 14). A sender session made by
-- single sign-on says so (auth = 'sso'), carries the staff roles granted at
-- sign-in, and when the provider was last asked whether the account still
-- exists (checked_at; a CLI token re-checks through its refresh token,
-- which is sealed with the other details).
ALTER TABLE sender_sessions ADD COLUMN auth TEXT NOT NULL DEFAULT 'code';
ALTER TABLE sender_sessions ADD COLUMN roles TEXT NOT NULL DEFAULT '';
ALTER TABLE sender_sessions ADD COLUMN checked_at INTEGER;

-- A sign-in in progress: found by the hash of its state, bound to the
-- browser by the hash of a cookie, used once (deleted when the provider
-- answers). Nonce and PKCE verifier are sealed.
CREATE TABLE oidc_flows (
	state_hash   BLOB PRIMARY KEY,
	binding_hash BLOB NOT NULL,
	flow_sealed  BLOB NOT NULL,
	expires_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX oidc_flows_expiry ON oidc_flows (expires_at);
