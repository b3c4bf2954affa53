-- People signed in through the identity provider, by its subject (a renamed person stays
-- one person). Roles are re-read from the groups at each sign-in; a revoked person is refused
-- whatever the provider says, until un-revoked.
CREATE TABLE sso_users (
    subject      TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    email        TEXT,
    groups       TEXT NOT NULL,
    roles        TEXT NOT NULL,
    first_seen   BIGINT NOT NULL,
    last_sign_in BIGINT NOT NULL,
    revoked_at   BIGINT
);

-- A token bound by email finds its person at every request: by index, not by scan.
CREATE INDEX sso_users_email ON sso_users (LOWER(email));

-- Sign-ins on their way to the provider and back: each used once, within ten minutes.
CREATE TABLE sso_pending (
    state_hash  TEXT PRIMARY KEY,
    nonce       TEXT NOT NULL,
    verifier    TEXT NOT NULL,
    return_to   TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- A session opened through the provider names its person; a token user may name an email
-- that binds them to the provider's person with that (verified) email.
ALTER TABLE sessions ADD COLUMN subject TEXT;
ALTER TABLE sessions ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN email TEXT;
