-- What each replica heard of each flag reader (an instance): the version it holds, since
-- when, and when it was last heard. Replicas merge each other's rows, so an instance whose
-- connection stays on one replica still counts on the replica that judges the kill.
CREATE TABLE fleet (
    rollout  TEXT NOT NULL,
    instance TEXT NOT NULL,
    replica  TEXT NOT NULL,
    version  BIGINT NOT NULL,
    since    BIGINT NOT NULL,
    seen_at  BIGINT NOT NULL,
    PRIMARY KEY (rollout, instance, replica)
);
CREATE INDEX fleet_seen ON fleet (rollout, seen_at);
