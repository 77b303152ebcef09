-- The exact canonical bytes of each config version, next to the JSONB copy.
-- JSONB reorders keys and normalises numbers, so the bytes a version's hash
-- was computed from cannot be recovered from it; loading verifies these
-- bytes against the hash instead (a tampered or corrupted row is refused).
-- The JSONB column stays for queries. Nullable only because rows written
-- before this migration have no bytes; such a row cannot be loaded.
ALTER TABLE config_versions ADD COLUMN canonical TEXT;

-- Pruning asks whether a call in flight still uses a version.
CREATE INDEX calls_in_flight_version ON calls (config_version) WHERE ended_at IS NULL;
