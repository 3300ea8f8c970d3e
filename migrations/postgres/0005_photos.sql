-- The photos a farmer attached to a ticket, as a JSON array of their
-- content-addressed ids (README "Photos"); NULL for none.
ALTER TABLE tickets ADD COLUMN photos TEXT;
-- The photos themselves, so every replica serves every photo: the
-- re-encoded JPEG and its thumbnail, and when a submit last named it (an
-- upload no ticket names is removed once that is old).
CREATE TABLE photos (
    id          TEXT PRIMARY KEY,
    full_jpeg   BYTEA NOT NULL,
    thumb_jpeg  BYTEA NOT NULL,
    touched_ms  BIGINT NOT NULL
);
CREATE INDEX photos_touched ON photos (touched_ms);
-- An upload's idempotency key (its SHA-256) and the photo it gave.
CREATE TABLE photo_keys (
    key_digest  TEXT PRIMARY KEY,
    photo_id    TEXT NOT NULL
);
