-- Recipient login with an OpenID provider after the password (issue 15
-- item 3; see docs/security.md, "Login as a second factor").
-- login_provider names a provider of the policy file; login_sealed is the
-- claim value its ID token must show (a subject, a pseudonym, an Entra
-- oid, an e-mail address), sealed under the master key (purpose
-- recipient.login, row id the recipient id) and erased at the purge with
-- the mobile number.
ALTER TABLE recipients ADD COLUMN login_provider TEXT;
ALTER TABLE recipients ADD COLUMN login_sealed BLOB;
-- A login in progress of a pending download session: found by the hash of
-- its state, bound to that session (a callback in another browser, or
-- with another session, is refused), used once (deleted when the provider
-- answers). Nonce and PKCE verifier are sealed.
CREATE TABLE login_flows (
	state_hash   BLOB PRIMARY KEY,
	session_hash BLOB NOT NULL REFERENCES sessions (id_hash) ON DELETE CASCADE,
	flow_sealed  BLOB NOT NULL,
	expires_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX login_flows_expiry ON login_flows (expires_at);
CREATE INDEX login_flows_session ON login_flows (session_hash);
