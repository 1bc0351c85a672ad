-- Hardening: a sign-up placed by its e-mail's claimed domain waits until the address is proven, in a row of
-- its own that holds everything the sign-up asked for (the password only as its hash) and the SHA-256 of the
-- link's secret. The account exists only once the link is used.

CREATE TABLE signup_verifications (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    token_hash     TEXT NOT NULL,
    email          TEXT NOT NULL,
    name           TEXT NOT NULL,
    locale         TEXT,
    profile        TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX signup_verifications_token_key ON signup_verifications (tenant_id, token_hash);
CREATE INDEX signup_verifications_email ON signup_verifications (tenant_id, email);
