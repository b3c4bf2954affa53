-- Several replicas write metric buckets side by side: each its own rows (the `replica` that
-- recorded them), merged when read, so nothing is counted twice. `updated_at` lets a replica
-- fetch only what changed since it last looked. (SQLite's 0005 does the same.)
ALTER TABLE metric_buckets ADD COLUMN replica TEXT NOT NULL DEFAULT '';
ALTER TABLE metric_buckets ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE metric_buckets DROP CONSTRAINT metric_buckets_pkey;
ALTER TABLE metric_buckets ADD PRIMARY KEY (rollout, metric, labels, start, width, replica);
CREATE INDEX metric_buckets_by_update ON metric_buckets (rollout, updated_at);

-- A duty one replica does at a time (evaluating hold timers and triggers): whoever holds the
-- unexpired lease. Renewed every second; a dead holder's lease runs out.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
