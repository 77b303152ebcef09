-- The event spine: the system of record. Everything but config_versions and
-- phone_routes is an append-only log or a projection rebuilt from it.

-- Compiled agent configurations, named by the hash of their canonical JSON.
-- Immutable once written: a new behaviour is a new row.
CREATE TABLE config_versions (
    hash         TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    namespace    TEXT NOT NULL,
    agent        TEXT NOT NULL,
    core_version TEXT NOT NULL,
    config       JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX config_versions_agent ON config_versions (namespace, agent, created_at DESC);

CREATE FUNCTION reject_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % rejected', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER config_versions_immutable
    BEFORE UPDATE ON config_versions
    FOR EACH ROW EXECUTE FUNCTION reject_mutation();

-- Phone routing: number -> tenant, agent, active version. One row per number;
-- every change is kept in phone_route_history.
CREATE TABLE phone_routes (
    number         TEXT PRIMARY KEY CHECK (number ~ '^\+[1-9][0-9]{6,14}$'),
    tenant         TEXT NOT NULL,
    namespace      TEXT NOT NULL,
    agent          TEXT NOT NULL,
    active_version TEXT NOT NULL REFERENCES config_versions (hash),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX phone_routes_agent ON phone_routes (namespace, agent);

CREATE TABLE phone_route_history (
    id             BIGSERIAL PRIMARY KEY,
    number         TEXT NOT NULL,
    tenant         TEXT NOT NULL,
    namespace      TEXT NOT NULL,
    agent          TEXT NOT NULL,
    active_version TEXT,
    change         TEXT NOT NULL CHECK (change IN ('routed', 'moved', 'removed')),
    changed_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX phone_route_history_number ON phone_route_history (number, changed_at);

CREATE FUNCTION record_phone_route_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO phone_route_history (number, tenant, namespace, agent, active_version, change)
        VALUES (OLD.number, OLD.tenant, OLD.namespace, OLD.agent, NULL, 'removed');
        RETURN OLD;
    END IF;
    INSERT INTO phone_route_history (number, tenant, namespace, agent, active_version, change)
    VALUES (NEW.number, NEW.tenant, NEW.namespace, NEW.agent, NEW.active_version,
            CASE WHEN TG_OP = 'INSERT' THEN 'routed' ELSE 'moved' END);
    RETURN NEW;
END;
$$;

CREATE TRIGGER phone_routes_history
    AFTER INSERT OR UPDATE OR DELETE ON phone_routes
    FOR EACH ROW EXECUTE FUNCTION record_phone_route_change();

-- Call events: append-only, strictly ordered per call, never mutated.
CREATE TABLE call_events (
    call_id        UUID NOT NULL,
    seq            INTEGER NOT NULL CHECK (seq >= 0),
    tenant         TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    schema_version SMALLINT NOT NULL DEFAULT 1,
    occurred_at    TIMESTAMPTZ NOT NULL,
    payload        JSONB NOT NULL,
    PRIMARY KEY (call_id, seq)
);
CREATE INDEX call_events_tenant_time ON call_events (tenant, occurred_at);

CREATE TRIGGER call_events_append_only
    BEFORE UPDATE OR DELETE ON call_events
    FOR EACH ROW EXECUTE FUNCTION reject_mutation();

-- TRUNCATE is a statement-level mutation; reject it too.
CREATE TRIGGER call_events_no_truncate
    BEFORE TRUNCATE ON call_events
    FOR EACH STATEMENT EXECUTE FUNCTION reject_mutation();

-- Projection of call_events: one row per call, rebuildable from events alone.
CREATE TABLE calls (
    call_id        UUID PRIMARY KEY,
    tenant         TEXT NOT NULL,
    namespace      TEXT NOT NULL,
    agent          TEXT NOT NULL,
    config_version TEXT NOT NULL,
    core_version   TEXT NOT NULL,
    direction      TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    caller         TEXT,
    callee         TEXT,
    started_at     TIMESTAMPTZ NOT NULL,
    ended_at       TIMESTAMPTZ,
    outcome        TEXT,
    slots          JSONB NOT NULL DEFAULT '{}'::jsonb,
    cost_usd       NUMERIC(12, 6) NOT NULL DEFAULT 0,
    last_seq       INTEGER NOT NULL
);
CREATE INDEX calls_tenant_time ON calls (tenant, started_at);
CREATE INDEX calls_agent_time ON calls (namespace, agent, started_at);

-- Workflow outbox: at-least-once jobs, idempotent by key, dead-lettered
-- after their last attempt.
CREATE TABLE workflow_jobs (
    id               BIGSERIAL PRIMARY KEY,
    idempotency_key  TEXT NOT NULL UNIQUE,
    tenant           TEXT NOT NULL,
    call_id          UUID,
    workflow         TEXT NOT NULL,
    action           TEXT NOT NULL,
    payload          JSONB NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'succeeded', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Workers claim due jobs with FOR UPDATE SKIP LOCKED through this index.
CREATE INDEX workflow_jobs_due ON workflow_jobs (next_attempt_at) WHERE status = 'pending';
CREATE INDEX workflow_jobs_tenant ON workflow_jobs (tenant, created_at);

-- Numbers never to call, per tenant.
CREATE TABLE suppression (
    tenant     TEXT NOT NULL,
    phone      TEXT NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    reason     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, phone)
);
