-- The admin console's searches (issue 19): audit entries by actor and by
-- object (a transfer id), newest first, and transfers by a recipient's
-- address, stay index reads with millions of rows.
CREATE INDEX audit_actor ON audit (actor, id);
CREATE INDEX audit_object ON audit (object, id);
CREATE INDEX recipients_address ON recipients (lower(address));
CREATE INDEX transfers_created ON transfers (created_at, id);
