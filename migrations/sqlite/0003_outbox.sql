-- The notification outbox (README "Notifications"). One row per
-- notification and webhook endpoint that wants its type, written in the
-- same transaction as the ticket change it tells of; the delivery worker
-- leases due rows, POSTs them and records each attempt.
CREATE TABLE outbox (
    -- The notification's id (`webhook-id`): the same for every endpoint
    -- and every attempt.
    id             TEXT NOT NULL,
    endpoint       TEXT NOT NULL,
    ticket_id      TEXT NOT NULL,
    -- Order within the ticket: event seq × 256 + the notification's place
    -- among that event's. An endpoint gets a ticket's rows in this order.
    seq            INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    -- The JSON body exactly as POSTed, built at commit time.
    body           TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    -- 'pending', 'delivered' or 'failed' (given up).
    state          TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    next_at_ms     INTEGER NOT NULL,
    -- Retried until then, then given up.
    deadline_ms    INTEGER NOT NULL,
    -- The replica delivering it now, until when.
    lease_owner    TEXT,
    lease_until_ms INTEGER,
    -- Claims of this row while another claim was unfinished (a lease that
    -- expired or a process that died): each may have sent it twice.
    takeovers      INTEGER NOT NULL DEFAULT 0,
    last_status    INTEGER,
    last_error     TEXT NOT NULL DEFAULT '',
    done_at_ms     INTEGER,
    PRIMARY KEY (id, endpoint)
);
CREATE INDEX outbox_due ON outbox (state, next_at_ms);
CREATE INDEX outbox_order ON outbox (ticket_id, endpoint, seq);

-- Every attempt: when, by whom, the HTTP status or the error.
CREATE TABLE outbox_attempts (
    id        TEXT NOT NULL,
    endpoint  TEXT NOT NULL,
    at_ms     INTEGER NOT NULL,
    status    INTEGER,
    error     TEXT NOT NULL,
    owner     TEXT NOT NULL,
    took_over INTEGER NOT NULL
);
CREATE INDEX outbox_attempts_of ON outbox_attempts (id, endpoint, at_ms);

-- Endpoints disabled by a 410 (until an admin's RetryDelivery).
CREATE TABLE webhook_endpoints (
    name           TEXT PRIMARY KEY,
    disabled_at_ms INTEGER,
    reason         TEXT NOT NULL DEFAULT ''
);
