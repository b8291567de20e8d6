-- The SMTP gateway (issue 18): the mails it is taking or took, found by
-- their sender and the SHA-256 of their Message-ID, so that a mail the
-- organisation's mail server hands over again (its 250 was lost, or Kluis
-- stopped in the middle of the mail) makes one transfer, not two.
--
-- claimant and claimed_until: the gateway taking the mail renews its claim
-- while the mail streams in; a claim that ran out belongs to a gateway that
-- stopped, and the next delivery of the same mail takes it over (and erases
-- the unfinished draft in transfer_id). taken_at is set once the transfer
-- is finished: from then on the same mail is answered 250 and not taken
-- again. Rows are removed after the dedupe window (7 days). No foreign key
-- to transfers: the transfer may be erased while the row still guards its
-- mail against being taken twice.
CREATE TABLE gateway_messages (
	sender_email  TEXT NOT NULL,
	message_hash  BLOB NOT NULL,
	claimant      TEXT NOT NULL,
	claimed_until INTEGER NOT NULL,
	transfer_id   TEXT,
	taken_at      INTEGER,
	created_at    INTEGER NOT NULL,
	PRIMARY KEY (sender_email, message_hash)
) STRICT;
CREATE INDEX gateway_messages_created ON gateway_messages (created_at);
