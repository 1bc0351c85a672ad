-- Plugins (wasm components per tenant: versions, grants, settings, their key-value store, logs and faults),
-- notices for a tenant's admins, and the first learning tables plugins read through `directory` and
-- `records` (courses and enrollments; the learning core extends them).

CREATE TABLE courses (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    code        TEXT NOT NULL,
    title       TEXT NOT NULL,
    summary     TEXT NOT NULL DEFAULT '',
    language    TEXT NOT NULL DEFAULT 'en',
    status      TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE enrollments (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    course_id     TEXT NOT NULL REFERENCES courses (id),
    status        TEXT NOT NULL CHECK (status IN ('enrolled', 'in_progress', 'completed', 'dropped')),
    progress      BIGINT NOT NULL DEFAULT 0,
    due_at        BIGINT,
    completed_at  BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE plugins (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    name                TEXT NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('branding', 'enrollment', 'notifications', 'reports')),
    status              TEXT NOT NULL DEFAULT 'inactive' CHECK (status IN ('inactive', 'active', 'disabled')),
    active_version_id   TEXT,
    capabilities        TEXT NOT NULL DEFAULT '[]',
    settings            TEXT NOT NULL DEFAULT '{}',
    secrets             TEXT NOT NULL DEFAULT '{}',
    consecutive_faults  BIGINT NOT NULL DEFAULT 0,
    disabled_reason     TEXT,
    revision            BIGINT NOT NULL DEFAULT 1,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE plugin_blobs (
    hash        TEXT NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    bytes       BLOB NOT NULL,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, hash)
);

CREATE TABLE plugin_versions (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    plugin_id    TEXT NOT NULL REFERENCES plugins (id),
    version      TEXT NOT NULL,
    manifest     TEXT NOT NULL,
    hash         TEXT NOT NULL,
    size         BIGINT NOT NULL,
    imports      TEXT NOT NULL,
    faults       BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL
);

CREATE TABLE plugin_kv (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    plugin_id   TEXT NOT NULL REFERENCES plugins (id),
    key         TEXT NOT NULL,
    value       BLOB NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (plugin_id, key)
);

CREATE TABLE plugin_logs (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    plugin_id   TEXT NOT NULL REFERENCES plugins (id),
    version_id  TEXT NOT NULL REFERENCES plugin_versions (id),
    at          BIGINT NOT NULL,
    level       TEXT NOT NULL,
    message     TEXT NOT NULL
);

CREATE TABLE plugin_faults (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    plugin_id   TEXT NOT NULL REFERENCES plugins (id),
    version_id  TEXT NOT NULL REFERENCES plugin_versions (id),
    at          BIGINT NOT NULL,
    hook        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL,
    elapsed_ms  BIGINT NOT NULL
);

CREATE TABLE notices (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    target_type TEXT,
    target_id   TEXT,
    created_at  BIGINT NOT NULL,
    read_at     BIGINT
);

CREATE UNIQUE INDEX courses_code_key ON courses (tenant_id, lower(code));
CREATE UNIQUE INDEX enrollments_user_course_key ON enrollments (tenant_id, user_id, course_id);
CREATE INDEX enrollments_course ON enrollments (tenant_id, course_id, user_id);
CREATE UNIQUE INDEX plugins_name_key ON plugins (tenant_id, lower(name));
CREATE INDEX plugins_kind ON plugins (tenant_id, kind, status);
CREATE UNIQUE INDEX plugin_versions_version_key ON plugin_versions (plugin_id, version);
CREATE INDEX plugin_versions_plugin ON plugin_versions (tenant_id, plugin_id, created_at);
CREATE INDEX plugin_kv_tenant ON plugin_kv (tenant_id, plugin_id);
CREATE INDEX plugin_logs_plugin ON plugin_logs (tenant_id, plugin_id, at);
CREATE INDEX plugin_faults_plugin ON plugin_faults (tenant_id, plugin_id, at);
CREATE INDEX notices_tenant ON notices (tenant_id, created_at);

-- Compiled plugin code, shared by every tenant that uploaded the same component (same content hash) and
-- keyed by the engine that compiled it. Derived data: it is rebuilt from plugin_blobs when missing.
CREATE TABLE plugin_artifacts (
    hash        TEXT NOT NULL,
    engine      TEXT NOT NULL,
    bytes       BLOB NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (hash, engine)
);
