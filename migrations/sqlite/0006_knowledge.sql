-- Knowledge entries (README "Knowledge"): resolved problems and their
-- answers shared with farmers. Never a contact, a phone number or a name.
-- An unpublished entry stays as a row with `published = 0`, so a replica
-- or a restart learns of the removal; `seq` orders every change.
CREATE TABLE knowledge (
    id              TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL UNIQUE,
    published       INTEGER NOT NULL,
    text            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    corps           TEXT NOT NULL,
    county_code     TEXT NOT NULL,
    county_name     TEXT NOT NULL,
    answer          TEXT NOT NULL,
    tier            TEXT NOT NULL,
    resolved_at_ms  INTEGER NOT NULL,
    -- 1 to 5 once the farmer rated the answer.
    rating          INTEGER,
    published_by    TEXT NOT NULL,
    updated_at_ms   INTEGER NOT NULL
);
