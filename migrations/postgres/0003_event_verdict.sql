-- How each event was first answered (SPEC §2: a repeat of its webhook-id is
-- answered the same): applied | ignored | stale_attempt | no_attempt. Rows from
-- before this column read as `applied` or `ignored` from their `applied` flag.
ALTER TABLE events ADD COLUMN verdict TEXT;
