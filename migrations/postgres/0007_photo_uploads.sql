-- A photo row per upload, its bytes kept once per content (README
-- "Photos"): tickets name uploads, so an admin's deletion of one ticket's
-- photo leaves the identical photos other tickets name; the bytes go when
-- no upload names them any more.
CREATE TABLE photo_content (
    hash        TEXT PRIMARY KEY,
    -- NULL when the bytes are in the object store ([photos] store = "s3").
    full_jpeg   BYTEA,
    thumb_jpeg  BYTEA
);
-- An upload and when a submit last named it (an upload no ticket names
-- is removed once that is old).
CREATE TABLE photo_uploads (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL,
    touched_ms  BIGINT NOT NULL
);
CREATE INDEX photo_uploads_hash ON photo_uploads (hash);
CREATE INDEX photo_uploads_touched ON photo_uploads (touched_ms);
-- Photos kept before: their id was their content's hash.
INSERT INTO photo_content (hash, full_jpeg, thumb_jpeg)
    SELECT id, full_jpeg, thumb_jpeg FROM photos;
INSERT INTO photo_uploads (id, hash, touched_ms) SELECT id, id, touched_ms FROM photos;
DROP TABLE photos;
