-- Single sign-on: an academy's identity providers (OpenID Connect), the sign-ins under way at a provider,
-- and which provider account stands for which user.

-- One identity provider an academy's people sign in through. The client secret is never shown back and never
-- leaves the host (exports carry a value that matches nothing).
CREATE TABLE identity_providers (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    -- Shown on the sign-in button.
    name             TEXT NOT NULL,
    protocol         TEXT NOT NULL DEFAULT 'oidc',
    issuer           TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    client_secret    TEXT NOT NULL,
    -- JSON arrays: scopes asked for besides openid, email and profile; e-mail domains it signs in.
    scopes           TEXT NOT NULL DEFAULT '[]',
    email_domains    TEXT NOT NULL DEFAULT '[]',
    -- May people of those domains still sign in with a password?
    password_signin  BIGINT NOT NULL DEFAULT 1,
    -- Create an account at a first sign-in (else only existing people may sign in through it).
    create_users     BIGINT NOT NULL DEFAULT 1,
    -- JSON: how claims become organizations, tags, profile fields, the language and the manager.
    mapping          TEXT NOT NULL DEFAULT '{}',
    enabled          BIGINT NOT NULL DEFAULT 1,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX identity_providers_name ON identity_providers (tenant_id, name);

-- A sign-in that left for the provider and has not come back: found by the hash of its `state`, used once.
CREATE TABLE sso_requests (
    state_hash     TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    provider_id    TEXT NOT NULL REFERENCES identity_providers (id),
    nonce          TEXT NOT NULL,
    pkce_verifier  TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    next           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX sso_requests_expiry ON sso_requests (tenant_id, expires_at);

-- The provider account (`subject`) that stands for a user; `owned` is what the provider's mapping last set
-- (JSON: organization and tag ids), so a later sign-in changes that and nothing else.
CREATE TABLE user_identities (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    provider_id    TEXT NOT NULL REFERENCES identity_providers (id),
    subject        TEXT NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users (id),
    owned          TEXT NOT NULL DEFAULT '{}',
    created_at     BIGINT NOT NULL,
    last_login_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, provider_id, subject)
);
CREATE INDEX user_identities_user ON user_identities (tenant_id, user_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO aula_app, aula_platform;

ALTER TABLE identity_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE identity_providers FORCE ROW LEVEL SECURITY;
CREATE POLICY identity_providers_tenant ON identity_providers TO aula_app
    USING (tenant_id = current_setting('aula.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('aula.tenant_id', true));
CREATE POLICY identity_providers_platform ON identity_providers TO aula_platform USING (true) WITH CHECK (true);

ALTER TABLE sso_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE sso_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY sso_requests_tenant ON sso_requests TO aula_app
    USING (tenant_id = current_setting('aula.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('aula.tenant_id', true));
CREATE POLICY sso_requests_platform ON sso_requests TO aula_platform USING (true) WITH CHECK (true);

ALTER TABLE user_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_identities FORCE ROW LEVEL SECURITY;
CREATE POLICY user_identities_tenant ON user_identities TO aula_app
    USING (tenant_id = current_setting('aula.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('aula.tenant_id', true));
CREATE POLICY user_identities_platform ON user_identities TO aula_platform USING (true) WITH CHECK (true);
