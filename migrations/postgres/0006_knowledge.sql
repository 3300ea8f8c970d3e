-- Knowledge entries (README "Knowledge"): resolved problems and their
-- answers shared with farmers. Never a contact, a phone number or a name.
-- An unpublished entry stays as a row with `published = false`, so other
-- replicas (each re-reads the rows past the `seq` it holds every few
-- seconds) and restarts learn of the removal. `seq` orders every change:
-- writers take an advisory lock, so seq order is commit order.
CREATE TABLE knowledge (
    id              TEXT PRIMARY KEY,
    seq             BIGINT NOT NULL UNIQUE,
    published       BOOLEAN NOT NULL,
    text            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    corps           TEXT NOT NULL,
    county_code     TEXT NOT NULL,
    county_name     TEXT NOT NULL,
    answer          TEXT NOT NULL,
    tier            TEXT NOT NULL,
    resolved_at_ms  BIGINT NOT NULL,
    -- 1 to 5 once the farmer rated the answer.
    rating          INTEGER,
    published_by    TEXT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);
