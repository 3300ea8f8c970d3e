-- The words a ticket's report was analysed with at submission, as a JSON
-- array, so re-routes rank with the same need. NULL for tickets stored
-- before: they fall back to the search terms of their text.
ALTER TABLE tickets ADD COLUMN words TEXT;
