-- The audit log as a hash chain (cutover_core::chain): each entry carries the hash of the
-- entry before it and its own; the rollout keeps the newest (its head), so a deleted newest
-- entry shows as well as an edited or deleted older one. Entries from before this migration
-- are chained once when the server opens the database.
ALTER TABLE audit ADD COLUMN prev_hash TEXT;
ALTER TABLE audit ADD COLUMN hash TEXT;
ALTER TABLE rollouts ADD COLUMN audit_head TEXT;
