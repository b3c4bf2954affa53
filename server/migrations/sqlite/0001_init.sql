-- Users and their hashed access tokens. A token is shown once, at creation.
CREATE TABLE users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

-- One row per loaded plan: the rollout's durable state as JSON (core's wire type).
CREATE TABLE rollouts (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    plan_hash   TEXT NOT NULL,
    state       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
