-- Workflow jobs as the workers run them. The event writer inserts a job in
-- the transaction that stores its trigger event; everything a worker needs
-- to deliver it is copied into the row (the provider's non-secret config
-- included), so pruning a config version never strands a job.
ALTER TABLE workflow_jobs
    ADD COLUMN namespace       TEXT NOT NULL DEFAULT '',
    ADD COLUMN agent           TEXT NOT NULL DEFAULT '',
    ADD COLUMN config_version  TEXT NOT NULL DEFAULT '',
    ADD COLUMN trigger         TEXT NOT NULL DEFAULT '',
    -- '<namespace>/<name>' of a Provider, 'cluster/<name>' of a
    -- ClusterProvider, 'builtin' without one: the unit of rate limits.
    ADD COLUMN provider        TEXT NOT NULL DEFAULT 'builtin',
    ADD COLUMN vendor          TEXT NOT NULL DEFAULT 'builtin',
    -- The provider's config version entry (no credentials), NULL for builtin.
    ADD COLUMN provider_config JSONB,
    ADD COLUMN backoff_seconds INTEGER NOT NULL DEFAULT 10 CHECK (backoff_seconds >= 1),
    ADD COLUMN max_concurrent  INTEGER CHECK (max_concurrent >= 1),
    ADD COLUMN per_second      INTEGER CHECK (per_second >= 1),
    -- Daily cap: what it counts (a sending domain, a from-number), how many
    -- per day, and the timezone whose midnight starts a day.
    ADD COLUMN cap_scope       TEXT,
    ADD COLUMN daily_cap       INTEGER CHECK (daily_cap >= 1),
    ADD COLUMN timezone        TEXT NOT NULL DEFAULT 'UTC',
    ADD COLUMN cap_counted     BOOLEAN NOT NULL DEFAULT false,
    -- When the trigger event happened: event-to-delivery latency.
    ADD COLUMN event_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A claim: who runs the job and until when; an expired lease is a
    -- crashed worker, and the job runs again.
    ADD COLUMN lease_owner     TEXT,
    ADD COLUMN lease_until     TIMESTAMPTZ,
    -- Why a pending job waits (a daily cap, a vendor's Retry-After).
    ADD COLUMN waiting_reason  TEXT,
    -- What the vendor returned on success (its id of the booking, message…).
    ADD COLUMN result          JSONB,
    ADD COLUMN finished_at     TIMESTAMPTZ;

ALTER TABLE workflow_jobs DROP CONSTRAINT workflow_jobs_status_check;
ALTER TABLE workflow_jobs ADD CONSTRAINT workflow_jobs_status_check
    CHECK (status IN ('pending', 'running', 'succeeded', 'dead', 'discarded'));

-- The fair claim walks the tenants with pending jobs (a skip scan) and
-- takes each one's due jobs through this index.
-- Every index is paid for by the event writer's transaction: the old
-- (tenant, created_at) index serves no query and goes.
DROP INDEX workflow_jobs_due;
DROP INDEX workflow_jobs_tenant;
CREATE INDEX workflow_jobs_due ON workflow_jobs (tenant, next_attempt_at) WHERE status = 'pending';
CREATE INDEX workflow_jobs_leases ON workflow_jobs (lease_until) WHERE status = 'running';
CREATE INDEX workflow_jobs_running_provider ON workflow_jobs (provider) WHERE status = 'running';
CREATE INDEX workflow_jobs_call ON workflow_jobs (call_id);
CREATE INDEX workflow_jobs_dead ON workflow_jobs (tenant) WHERE status = 'dead';

-- Every attempt of every job: the history `dialtone workflows inspect`
-- shows, and the source of the result events appended to the call's
-- stream once the call has closed (call_seq records where).
CREATE TABLE workflow_attempts (
    job_id      BIGINT NOT NULL REFERENCES workflow_jobs (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    worker      TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    outcome     TEXT NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'dead', 'lost')),
    http_status INTEGER,
    error       TEXT,
    retry_at    TIMESTAMPTZ,
    call_seq    INTEGER,
    PRIMARY KEY (job_id, attempt)
);
CREATE INDEX workflow_attempts_unappended ON workflow_attempts (finished_at) WHERE call_seq IS NULL;

-- Daily caps, counted across worker replicas: one row per scope and local
-- day.
CREATE TABLE workflow_daily_usage (
    scope TEXT NOT NULL,
    day   DATE NOT NULL,
    used  INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (scope, day)
);

-- Requests per second per provider, counted across worker replicas: one
-- row per provider and second, swept after a minute.
CREATE TABLE workflow_rate (
    provider TEXT NOT NULL,
    epoch_second BIGINT NOT NULL,
    used     INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (provider, epoch_second)
);
