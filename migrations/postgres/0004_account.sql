-- Self-service accounts: password reset links sent by e-mail, and each person's notification preferences.

-- A password reset link. Only the SHA-256 of its secret is stored; it works once, until expires_at. Rows stay
-- a while after use or expiry: they are what the per-address throttle on reset mails counts.
CREATE TABLE password_resets (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    -- The address the link was sent to (lower case): the link works only while the account still has it.
    email        TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT
);
CREATE UNIQUE INDEX password_resets_secret_key ON password_resets (tenant_id, secret_hash);
CREATE INDEX password_resets_email ON password_resets (tenant_id, email, created_at);
CREATE INDEX password_resets_user ON password_resets (tenant_id, user_id);

-- How a person wants each kind of notification (http::account::NOTIFICATION_KINDS); a kind without a row is
-- sent immediately.
CREATE TABLE notification_preferences (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    kind        TEXT NOT NULL,
    mode        TEXT NOT NULL CHECK (mode IN ('immediately', 'digest', 'never')),
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, kind)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO aula_app, aula_platform;

ALTER TABLE password_resets ENABLE ROW LEVEL SECURITY;
ALTER TABLE password_resets FORCE ROW LEVEL SECURITY;
CREATE POLICY password_resets_tenant ON password_resets TO aula_app
    USING (tenant_id = current_setting('aula.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('aula.tenant_id', true));
CREATE POLICY password_resets_platform ON password_resets TO aula_platform USING (true) WITH CHECK (true);

ALTER TABLE notification_preferences ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_preferences FORCE ROW LEVEL SECURITY;
CREATE POLICY notification_preferences_tenant ON notification_preferences TO aula_app
    USING (tenant_id = current_setting('aula.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('aula.tenant_id', true));
CREATE POLICY notification_preferences_platform ON notification_preferences TO aula_platform USING (true) WITH CHECK (true);
