-- Tokens that open text calls (/v1/calls) on a tenant's numbers. Only the
-- SHA-256 of a token is stored. The operator issues one per Tenant in a
-- Secret of the tenant's namespace; a replaced token keeps working until
-- expires_at, so clients can roll over.
CREATE TABLE call_tokens (
    token_sha256 BYTEA PRIMARY KEY CHECK (length(token_sha256) = 32),
    tenant       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ
);
CREATE INDEX call_tokens_tenant ON call_tokens (tenant);
