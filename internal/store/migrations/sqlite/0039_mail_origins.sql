-- The SMTP gateway (issue 18): a transfer made from a mail keeps the mail's
-- subject here, sealed under the master key, only while the transfer can
-- still be refused after the gateway accepted the mail (a draft, or a
-- transfer waiting for its malware scan): if it is refused, the sender's
-- non-delivery report quotes the subject so they know which mail. Deleted
-- when the report is written, and by the gateway's cleanup once the
-- transfer is sent or gone.
CREATE TABLE mail_origins (
	transfer_id    TEXT PRIMARY KEY REFERENCES transfers (id) ON DELETE CASCADE,
	subject_sealed BLOB NOT NULL,
	received_at    INTEGER NOT NULL
) STRICT;
