-- The photos a farmer attached to a ticket, as a JSON array of their
-- content-addressed ids (README "Photos"); NULL for none. The photos
-- themselves are files in <data_dir>/photos.
ALTER TABLE tickets ADD COLUMN photos TEXT;
