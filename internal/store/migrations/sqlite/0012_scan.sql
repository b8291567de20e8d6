-- Malware scanning (issue 16): each file of a transfer that is scanned is
-- also encrypted to a scan identity of its own, kept here sealed under the
-- master key until the file's scan has finished, then set to NULL (with
-- secure_delete on and the WAL truncated) so that from then on only the
-- transfer secret opens the file.
ALTER TABLE files ADD COLUMN scan_sealed BLOB;
