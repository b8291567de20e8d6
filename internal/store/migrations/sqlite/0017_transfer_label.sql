-- Transfer labels (issue 13, item 5): what a sender needs to recognise a
-- transfer in My transfers after it was revoked or expired (the subject
-- that went out in the mail, the file count and size). Sealed under the
-- master key like the details; a purge leaves it, and it goes with the
-- minimal record at the end of the metadata retention (DeleteRetired).
ALTER TABLE transfers ADD COLUMN label_sealed BLOB;
