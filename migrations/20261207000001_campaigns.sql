-- Campaigns: the operator loads each Campaign's dialing plan and leads; the
-- dialer in dialtone-workers claims leads from here, and the voice pods
-- record what Twilio reports of each attempt.

-- One row per Campaign object. `plan` is everything the dialer needs (pacing,
-- windows, caller ids, retries, compliance, the telephony account) so it
-- never reads Kubernetes.
CREATE TABLE campaigns (
    namespace     TEXT NOT NULL,
    name          TEXT NOT NULL,
    tenant        TEXT NOT NULL,
    agent         TEXT NOT NULL,
    plan          JSONB NOT NULL,
    -- Dialing is allowed (not suspended, not deleted, its Agent ready).
    active        BOOLEAN NOT NULL DEFAULT false,
    -- Why the dialer stopped on its own (budget, breaker, stale register);
    -- cleared when the operator re-activates the campaign.
    stopped       TEXT,
    stopped_at    TIMESTAMPTZ,
    -- Why the dialer is waiting (outside every window, caller ids at their
    -- daily cap, the tenant's daily budget spent, a stale register); it
    -- goes on by itself when the reason passes.
    waiting       TEXT,
    -- Pacing across dialer replicas: the earliest instant of the next dial.
    next_dial_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error    TEXT,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, name)
);
CREATE INDEX campaigns_due ON campaigns (next_dial_at) WHERE active AND stopped IS NULL;

-- One row per (campaign, number). A lead keeps its row for good: a
-- re-uploaded CSV finds it and leaves it as it is.
CREATE TABLE campaign_leads (
    namespace       TEXT NOT NULL,
    campaign        TEXT NOT NULL,
    phone           TEXT NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    name            TEXT,
    timezone        TEXT,
    fields          JSONB NOT NULL DEFAULT '{}'::jsonb,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'dialing', 'completed', 'failed',
                                      'suppressed', 'voicemail', 'retired')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- When the lead's own window opens next, as the dialer last found it
    -- (reset when the campaign's plan changes, so edited windows count at
    -- once).
    window_opens_at TIMESTAMPTZ,
    -- A dial slot: until when the lead's call may run before its slot is
    -- released (a call whose terminal status never arrives).
    lease_until     TIMESTAMPTZ,
    last_outcome    TEXT,
    last_error      TEXT,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, campaign, phone),
    FOREIGN KEY (namespace, campaign) REFERENCES campaigns (namespace, name)
);
CREATE INDEX campaign_leads_due ON campaign_leads (namespace, campaign, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX campaign_leads_dialing ON campaign_leads (namespace, campaign)
    WHERE status = 'dialing';

-- Every dial: which caller id, which Twilio call, what answered and how it
-- ended. The id is in the webhook URLs Twilio signs, so it authenticates
-- the callbacks.
CREATE TABLE campaign_attempts (
    id              UUID PRIMARY KEY,
    namespace       TEXT NOT NULL,
    campaign        TEXT NOT NULL,
    phone           TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    caller_id       TEXT NOT NULL,
    config_version  TEXT NOT NULL,
    call_sid        TEXT,
    call_id         UUID,
    -- Twilio's AnsweredBy (human, machine_start, machine_end_beep, fax,
    -- unknown) and how long detection took.
    answered_by     TEXT,
    amd_ms          INTEGER,
    -- dialing, then Twilio's terminal CallStatus (completed, busy,
    -- no-answer, failed, canceled) or `lost` when no status came back.
    outcome         TEXT NOT NULL DEFAULT 'dialing',
    error           TEXT,
    started_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ,
    UNIQUE (namespace, campaign, phone, attempt)
);
CREATE INDEX campaign_attempts_campaign ON campaign_attempts (namespace, campaign, started_at);
CREATE INDEX campaign_attempts_call ON campaign_attempts (call_id) WHERE call_id IS NOT NULL;

-- Dials per caller id per local day, counted across dialer replicas.
CREATE TABLE campaign_caller_usage (
    number TEXT NOT NULL,
    day    DATE NOT NULL,
    used   INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (number, day)
);

-- The national do-not-call register as last washed (`dialtone dnc
-- import`), and when: a telemarketing campaign stops when the copy is
-- older than 30 days.
CREATE TABLE dnc_register (
    phone TEXT PRIMARY KEY CHECK (phone ~ '^\+[1-9][0-9]{6,14}$')
);
CREATE TABLE dnc_washes (
    id        BIGSERIAL PRIMARY KEY,
    source    TEXT NOT NULL,
    numbers   INTEGER NOT NULL,
    washed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
