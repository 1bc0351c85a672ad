-- Branded portals: the academy's branding, organizations' overrides, and uploaded theme files.

CREATE TABLE tenant_branding (
    tenant_id      TEXT PRIMARY KEY REFERENCES tenants (id),
    -- JSON: name, logo_url, colors, fonts, custom_css, wording, landing (see portal::branding).
    settings       TEXT NOT NULL,
    -- Bumped by every change to the uploaded theme files; replicas re-read their copy when it moves.
    theme_version  INTEGER NOT NULL DEFAULT 0,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE org_branding (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    settings    TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, org_id)
);

CREATE TABLE theme_files (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    -- Relative to the theme root, e.g. `templates/learner/catalog.hbs` or `assets/img/logo.png`.
    path        TEXT NOT NULL,
    content     BLOB NOT NULL,
    size        INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, path)
);
