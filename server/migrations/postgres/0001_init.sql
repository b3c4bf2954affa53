-- The same schema as migrations/sqlite after its 0004, in PostgreSQL's types: every integer is
-- BIGINT (milliseconds and versions), JSON is kept as TEXT so both backends read it the same way.

-- Users and their hashed access tokens. A token is shown once, at creation.
CREATE TABLE users (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

-- One row per loaded plan: the rollout's durable state as JSON (core's wire type). The version
-- makes concurrent writers (several replicas) unable to both win.
CREATE TABLE rollouts (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    plan_hash   TEXT NOT NULL,
    state       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 0,
    evaluation  TEXT
);

-- Append-only record of every accepted action, with the evidence at that moment.
CREATE TABLE audit (
    seq         BIGSERIAL PRIMARY KEY,
    rollout     TEXT NOT NULL REFERENCES rollouts(id),
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    action      TEXT NOT NULL,
    record      TEXT NOT NULL
);
CREATE INDEX audit_by_rollout ON audit (rollout, seq);

-- Idempotency keys: a retried request gets the first answer instead of acting twice.
CREATE TABLE idempotency (
    key         TEXT PRIMARY KEY,
    rollout     TEXT NOT NULL,
    response    TEXT NOT NULL,
    status      BIGINT NOT NULL,
    at          BIGINT NOT NULL
);

-- Browser sessions: the cookie holds `id`; mutating requests must also send `csrf`.
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_name   TEXT NOT NULL,
    role        TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    rollout     TEXT,
    share_id    TEXT,
    expires_at  BIGINT NOT NULL
);

-- Read-only stakeholder links: revocable, expiring. Only the hash of the secret is kept.
CREATE TABLE shares (
    id          TEXT PRIMARY KEY,
    rollout     TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- Metric buckets (sketches included) at their own width, so charts, windows and hold timers
-- survive a restart. Re-writing a bucket replaces it.
CREATE TABLE metric_buckets (
    rollout     TEXT NOT NULL,
    metric      TEXT NOT NULL,
    labels      TEXT NOT NULL,
    start       BIGINT NOT NULL,
    width       BIGINT NOT NULL,
    bucket      TEXT NOT NULL,
    PRIMARY KEY (rollout, metric, labels, start, width)
);
CREATE INDEX metric_buckets_by_time ON metric_buckets (rollout, start);
