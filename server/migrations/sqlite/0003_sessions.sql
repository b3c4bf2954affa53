-- Browser sessions: the cookie holds `id`; mutating requests must also send `csrf`.
-- A share-link session is a read-only viewer limited to one rollout.
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_name   TEXT NOT NULL,
    role        TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    rollout     TEXT,
    share_id    TEXT,
    expires_at  INTEGER NOT NULL
);

-- Read-only stakeholder links: revocable, expiring. Only the hash of the secret is kept.
CREATE TABLE shares (
    id          TEXT PRIMARY KEY,
    rollout     TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
