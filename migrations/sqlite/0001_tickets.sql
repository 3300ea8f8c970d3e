-- Tickets, their events, responder presence, liaisons and server secrets.
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
    offer_deadline_ms INTEGER,
    answer            TEXT NOT NULL,
    reason            TEXT NOT NULL,
    created_at_ms     INTEGER NOT NULL,
    updated_at_ms     INTEGER NOT NULL
);
CREATE INDEX tickets_state ON tickets (state, created_at_ms);
CREATE INDEX tickets_assignee ON tickets (assignee);
CREATE INDEX tickets_created ON tickets (created_at_ms, id);

CREATE TABLE ticket_events (
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    seq       INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    at_ms     INTEGER NOT NULL,
    reason    TEXT NOT NULL,
    state     TEXT NOT NULL,
    talent_id TEXT,
    tier      TEXT NOT NULL,
    PRIMARY KEY (ticket_id, seq)
);

CREATE TABLE availability (
    talent_id     TEXT PRIMARY KEY,
    availability  TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

CREATE TABLE liaisons (
    id       TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    phone    TEXT NOT NULL,
    villages TEXT NOT NULL
);

CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
