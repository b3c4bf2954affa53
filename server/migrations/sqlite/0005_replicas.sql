-- Several replicas write metric buckets side by side: each its own rows (the `replica` that
-- recorded them), merged when read, so nothing is counted twice. `updated_at` lets a replica
-- fetch only what changed since it last looked.
CREATE TABLE metric_buckets_by_replica (
    rollout     TEXT NOT NULL,
    metric      TEXT NOT NULL,
    labels      TEXT NOT NULL,
    start       INTEGER NOT NULL,
    width       INTEGER NOT NULL,
    replica     TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    bucket      TEXT NOT NULL,
    PRIMARY KEY (rollout, metric, labels, start, width, replica)
);
INSERT INTO metric_buckets_by_replica
    SELECT rollout, metric, labels, start, width, '', 0, bucket FROM metric_buckets;
DROP TABLE metric_buckets;
ALTER TABLE metric_buckets_by_replica RENAME TO metric_buckets;
CREATE INDEX metric_buckets_by_time ON metric_buckets (rollout, start);
CREATE INDEX metric_buckets_by_update ON metric_buckets (rollout, updated_at);

-- A duty one replica does at a time (evaluating hold timers and triggers): whoever holds the
-- unexpired lease. Renewed every second; a dead holder's lease runs out.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);
