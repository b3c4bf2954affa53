-- Each notify channel's outbox (cutover_core::notify::outbox) per replica, stored within a
-- second of a change: a restart neither loses a message told while a channel was down nor
-- sends an escalation twice. A replica that stops writing has its outboxes adopted by another.
CREATE TABLE outboxes (
    rollout TEXT NOT NULL,
    channel TEXT NOT NULL,
    replica TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (rollout, channel, replica)
);
