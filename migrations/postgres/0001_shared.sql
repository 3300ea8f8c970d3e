-- Shared state of every replica: tickets and their events, responder
-- presence, liaisons, the signing key, the change log replicas follow,
-- and the roster log they rebuild their indexes from.
CREATE TABLE tickets (
    id                TEXT PRIMARY KEY,
    text              TEXT NOT NULL,
    location          TEXT NOT NULL,
    division_code     TEXT,
    subject           TEXT,
    corps             TEXT,
    contact           TEXT NOT NULL,
    idempotency_key   TEXT UNIQUE,
    state             TEXT NOT NULL,
    assignee          TEXT,
    tier              TEXT NOT NULL,
    offers_in_tier    INTEGER NOT NULL,
    offer_deadline_ms BIGINT,
    answer            TEXT NOT NULL,
    reason            TEXT NOT NULL,
    created_at_ms     BIGINT NOT NULL,
    updated_at_ms     BIGINT NOT NULL
);
CREATE INDEX tickets_state ON tickets (state, created_at_ms);
CREATE INDEX tickets_assignee ON tickets (assignee);
CREATE INDEX tickets_created ON tickets (created_at_ms, id);

CREATE TABLE ticket_events (
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    seq       INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    at_ms     BIGINT NOT NULL,
    reason    TEXT NOT NULL,
    state     TEXT NOT NULL,
    talent_id TEXT,
    tier      TEXT NOT NULL,
    PRIMARY KEY (ticket_id, seq)
);

CREATE TABLE availability (
    talent_id     TEXT PRIMARY KEY,
    availability  TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE liaisons (
    id       TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    phone    TEXT NOT NULL,
    villages TEXT NOT NULL
);

CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

-- One row: the number of the last change. A decision commits only when
-- the head is still the one its replica had read (compare and swap on this
-- row, whose lock also orders every change).
CREATE TABLE log_head (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    id  BIGINT NOT NULL
);
INSERT INTO log_head (id) VALUES (0);

-- What changed, in commit order: kind 'ticket' (key = ticket id),
-- 'presence' (key = talent id) or 'liaisons'.
CREATE TABLE changes (
    id    BIGINT PRIMARY KEY,
    kind  TEXT NOT NULL,
    key   TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);

-- Every roster change, numbered by roster version: 'import' (the file as
-- uploaded), 'upsert' (talents as JSON) or 'remove' (ids as JSON).
CREATE TABLE roster_log (
    version BIGINT PRIMARY KEY,
    op      TEXT NOT NULL,
    format  TEXT NOT NULL,
    body    BYTEA NOT NULL,
    at_ms   BIGINT NOT NULL
);
