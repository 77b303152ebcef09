-- The event writer updates a call's `calls` row in the same transaction as
-- the call's events, so a row is rewritten many times while the call is in
-- flight. Free space on every page keeps those updates heap-only (HOT): no
-- new index entries, about half the cost of an update that has to touch
-- the table's four indexes. Only pages written from now on get it.
ALTER TABLE calls SET (fillfactor = 50);
