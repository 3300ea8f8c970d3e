-- The farmer's rating of a resolved ticket's answer (README "Ratings and
-- figures"): on the ticket row, NULL until rated, and the stars of each
-- `rated` event in the ticket's history (NULL for every other event).
ALTER TABLE tickets ADD COLUMN rating_stars INTEGER;
ALTER TABLE tickets ADD COLUMN rating_comment TEXT;
ALTER TABLE ticket_events ADD COLUMN stars INTEGER;
-- The responder figures read every event of a time window.
CREATE INDEX ticket_events_at ON ticket_events (at_ms);
