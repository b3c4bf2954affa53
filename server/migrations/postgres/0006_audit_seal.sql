-- The audit head is signed (cutover_core::chain::head_mac) under a key kept outside the
-- database. The rollouts that exist when this migration runs are listed once: the first open
-- after it chains their pre-chain entries and signs their heads, then forgets them, so that
-- nothing is ever sealed or signed again on an open (stripping hashes later is a break, not
-- something the next start papers over).
ALTER TABLE rollouts ADD COLUMN audit_head_mac TEXT;
CREATE TABLE audit_seal (rollout TEXT PRIMARY KEY);
INSERT INTO audit_seal (rollout) SELECT id FROM rollouts;
