-- Append-only record of every accepted action, with the evidence at that moment.
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout     TEXT NOT NULL REFERENCES rollouts(id),
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    action      TEXT NOT NULL,
    record      TEXT NOT NULL
);
CREATE INDEX audit_by_rollout ON audit (rollout, seq);

-- The state row carries its version so concurrent writers (several replicas) cannot both win.
ALTER TABLE rollouts ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

-- Idempotency keys: a retried request gets the first answer instead of acting twice.
CREATE TABLE idempotency (
    key         TEXT PRIMARY KEY,
    rollout     TEXT NOT NULL,
    response    TEXT NOT NULL,
    status      INTEGER NOT NULL,
    at          INTEGER NOT NULL
);
