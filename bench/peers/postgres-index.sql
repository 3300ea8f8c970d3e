-- Builds the searched table from talents_in: the pieces become a tsvector
-- as they are (no parser, no dictionary) under a GIN index, the point a
-- WGS84 geography under a GiST index (KNN ordering with <->).
CREATE TABLE talents AS
SELECT id, tier, specialties, skills,
       array_to_tsvector(string_to_array(pieces, ' ')) AS doc,
       ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography AS geog
FROM talents_in;
DROP TABLE talents_in;
ALTER TABLE talents ADD PRIMARY KEY (id);
CREATE INDEX talents_doc ON talents USING gin (doc);
CREATE INDEX talents_geog ON talents USING gist (geog);
VACUUM ANALYZE talents;
