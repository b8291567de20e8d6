-- File requests with a mobile number (issue 17): the person asked also
-- gets the personal upload link by SMS. phone_sealed is the number
-- (E.164), sealed under the master key; NULL without a number and after
-- the purge. sms_state is what became of the SMS: 'queued' (in the
-- outbox, also while it is retried), 'sent' (the gateway accepted it) or
-- 'failed' (given up); NULL without a number. sms_at is when it changed.
ALTER TABLE file_requests ADD COLUMN phone_sealed BLOB;
ALTER TABLE file_requests ADD COLUMN sms_state TEXT;
ALTER TABLE file_requests ADD COLUMN sms_at INTEGER;
