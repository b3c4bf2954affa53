-- Metric buckets (sketches included) at their own width, so charts, windows and hold timers
-- survive a restart. Re-writing a bucket replaces it.
CREATE TABLE metric_buckets (
    rollout     TEXT NOT NULL,
    metric      TEXT NOT NULL,
    labels      TEXT NOT NULL,
    start       INTEGER NOT NULL,
    width       INTEGER NOT NULL,
    bucket      TEXT NOT NULL,
    PRIMARY KEY (rollout, metric, labels, start, width)
);
CREATE INDEX metric_buckets_by_time ON metric_buckets (rollout, start);

-- The evaluator's carried state (hold timers, trigger episodes), written when it changes.
ALTER TABLE rollouts ADD COLUMN evaluation TEXT;
