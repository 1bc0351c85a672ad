-- Hardening: a sign-up placed by its e-mail's claimed domain waits until the address is proven, in a row of
-- its own that holds everything the sign-up asked for (the password only as its hash) and the SHA-256 of the
-- link's secret. The account exists only once the link is used.
--
-- And the platform's own tables get their wall too: an academy's transactions (role aula_app) see only their
-- own tenants row and may change only its name and settings; operators, their tokens and sign-in failures,
-- compiled plugin artifacts and the migration history are the platform's alone.

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

GRANT SELECT, INSERT, UPDATE, DELETE ON signup_verifications TO aula_app, aula_platform;
ALTER TABLE signup_verifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE signup_verifications FORCE ROW LEVEL SECURITY;
CREATE POLICY signup_verifications_tenant ON signup_verifications TO aula_app
    USING (tenant_id = current_setting('aula.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('aula.tenant_id', true));
CREATE POLICY signup_verifications_platform ON signup_verifications TO aula_platform USING (true) WITH CHECK (true);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenants_tenant ON tenants TO aula_app
    USING (id = current_setting('aula.tenant_id', true))
    WITH CHECK (id = current_setting('aula.tenant_id', true));
CREATE POLICY tenants_platform ON tenants TO aula_platform USING (true) WITH CHECK (true);
REVOKE INSERT, UPDATE, DELETE ON tenants FROM aula_app;
GRANT UPDATE (name, settings, updated_at) ON tenants TO aula_app;

REVOKE ALL ON operators, operator_tokens, operator_login_failures, plugin_artifacts FROM aula_app;
REVOKE INSERT, UPDATE, DELETE ON _sqlx_migrations FROM aula_app, aula_platform;
