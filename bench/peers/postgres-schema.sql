-- The talents table of the PostgreSQL peer; bench/peers/start.sh loads
-- talents_in with \copy from the driver's talents.tsv, then runs
-- postgres-index.sql.
CREATE EXTENSION IF NOT EXISTS postgis;
DROP TABLE IF EXISTS talents;
DROP TABLE IF EXISTS talents_in;
CREATE TABLE talents_in (
    id text NOT NULL,
    tier text NOT NULL,
    specialties text NOT NULL,
    skills text NOT NULL,
    -- Overlapping two-character pieces of specialties and skills,
    -- space-separated (Debian ships no Chinese text-search parser).
    pieces text NOT NULL,
    lat float8 NOT NULL,
    lon float8 NOT NULL
);
