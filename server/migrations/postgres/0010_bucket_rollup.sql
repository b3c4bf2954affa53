-- The janitor rolls old 10 s rows into 10 min rows across rollouts, oldest first.
CREATE INDEX metric_buckets_by_start ON metric_buckets (start, width);
