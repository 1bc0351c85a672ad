-- Branded portals: the academy's branding, organizations' overrides, and uploaded theme files.

CREATE TABLE tenant_branding (
    tenant_id      TEXT PRIMARY KEY REFERENCES tenants (id),
    -- JSON: name, logo_url, colors, fonts, custom_css, wording, landing (see portal::branding).
    settings       TEXT NOT NULL,
    -- Bumped by every change to the uploaded theme files; replicas re-read their copy when it moves.
    theme_version  BIGINT NOT NULL DEFAULT 0,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE org_branding (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    settings    TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, org_id)
);

CREATE TABLE theme_files (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    -- Relative to the theme root, e.g. `templates/learner/catalog.hbs` or `assets/img/logo.png`.
    path        TEXT NOT NULL,
    content     BYTEA NOT NULL,
    size        BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, path)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO aula_app, aula_platform;

ALTER TABLE tenant_branding ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_branding FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_branding_tenant ON tenant_branding TO aula_app
    USING (tenant_id = current_setting('aula.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('aula.tenant_id', true));
CREATE POLICY tenant_branding_platform ON tenant_branding TO aula_platform USING (true) WITH CHECK (true);

ALTER TABLE org_branding ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_branding FORCE ROW LEVEL SECURITY;
CREATE POLICY org_branding_tenant ON org_branding TO aula_app
    USING (tenant_id = current_setting('aula.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('aula.tenant_id', true));
CREATE POLICY org_branding_platform ON org_branding TO aula_platform USING (true) WITH CHECK (true);

ALTER TABLE theme_files ENABLE ROW LEVEL SECURITY;
ALTER TABLE theme_files FORCE ROW LEVEL SECURITY;
CREATE POLICY theme_files_tenant ON theme_files TO aula_app
    USING (tenant_id = current_setting('aula.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('aula.tenant_id', true));
CREATE POLICY theme_files_platform ON theme_files TO aula_platform USING (true) WITH CHECK (true);
