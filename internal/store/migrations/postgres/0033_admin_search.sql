-- PostgreSQL twin of migrations/sqlite/0033_admin_search.sql.
CREATE INDEX audit_actor ON audit (actor, id);
CREATE INDEX audit_object ON audit (object, id);
CREATE INDEX recipients_address ON recipients (lower(address));
CREATE INDEX transfers_created ON transfers (created_at, id);
