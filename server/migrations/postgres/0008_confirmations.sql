-- When each instance of the fleet was first heard holding a kill (or a later state): the
-- kill's own record of its confirmation, kept beside the audit log (whose entries are sealed
-- when committed) and read with it. One row per kill and instance: the first one counts.
CREATE TABLE confirmations (
    rollout  TEXT NOT NULL,
    kill_at  BIGINT NOT NULL,
    instance TEXT NOT NULL,
    version  BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (rollout, kill_at, instance)
);
