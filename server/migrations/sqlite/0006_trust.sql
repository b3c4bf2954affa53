-- An idempotency key is bound to the request it first came with: a different request under
-- the same key is refused. A row with status 0 is a claim whose request is still running.
ALTER TABLE idempotency ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
CREATE INDEX idempotency_at ON idempotency (at);

-- The plan a rollout last ran under, so a changed plan can be mapped by stage id at load.
ALTER TABLE rollouts ADD COLUMN plan TEXT NOT NULL DEFAULT '';

-- A user may be limited to one rollout (a service's ingest token, say).
ALTER TABLE users ADD COLUMN rollout TEXT;
