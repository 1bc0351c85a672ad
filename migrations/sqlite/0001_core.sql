-- Aula core schema (SQLite). Ids are UUIDv7 text, times are unix milliseconds.
-- Every tenant-owned table carries tenant_id; see docs/ARCHITECTURE.md.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX tenants_slug_key ON tenants (lower(slug));

CREATE TABLE tenant_domains (
    domain      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    created_at  BIGINT NOT NULL
);
CREATE INDEX tenant_domains_tenant ON tenant_domains (tenant_id);

CREATE TABLE orgs (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    parent_id     TEXT REFERENCES orgs (id) DEFERRABLE INITIALLY DEFERRED,
    name          TEXT NOT NULL,
    path          TEXT NOT NULL,
    depth         BIGINT NOT NULL,
    external_id   TEXT,
    member_limit  BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX orgs_sibling_name_key ON orgs (tenant_id, coalesce(parent_id, ''), lower(name));
CREATE INDEX orgs_tenant_path ON orgs (tenant_id, path);
CREATE UNIQUE INDEX orgs_external_id_key ON orgs (tenant_id, external_id) WHERE external_id IS NOT NULL;

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    email          TEXT NOT NULL,
    name           TEXT NOT NULL,
    locale         TEXT,
    status         TEXT NOT NULL CHECK (status IN ('active', 'pending', 'suspended', 'terminated')),
    external_id    TEXT,
    manager_id     TEXT REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED,
    profile        TEXT NOT NULL DEFAULT '{}',
    password_hash  TEXT,
    first_login_at BIGINT,
    last_login_at  BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (tenant_id, lower(email));
CREATE UNIQUE INDEX users_external_id_key ON users (tenant_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX users_tenant_id ON users (tenant_id, id);

CREATE TABLE memberships (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, org_id)
);
CREATE INDEX memberships_org ON memberships (org_id, user_id);

CREATE TABLE tags (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    description  TEXT,
    created_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX tags_name_key ON tags (tenant_id, lower(name));

CREATE TABLE user_tags (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    tag_id      TEXT NOT NULL REFERENCES tags (id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, tag_id)
);
CREATE INDEX user_tags_tag ON user_tags (tag_id, user_id);

CREATE TABLE profile_fields (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    key         TEXT NOT NULL,
    label       TEXT NOT NULL,
    field_type  TEXT NOT NULL CHECK (field_type IN ('text', 'number', 'date', 'choice')),
    choices     TEXT NOT NULL DEFAULT '[]',
    required    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX profile_fields_key_key ON profile_fields (tenant_id, lower(key));

CREATE TABLE segments (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    description  TEXT,
    definition   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX segments_name_key ON segments (tenant_id, lower(name));

CREATE TABLE roles (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    key          TEXT NOT NULL,
    name         TEXT NOT NULL,
    permissions  TEXT NOT NULL,
    builtin      BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX roles_key_key ON roles (tenant_id, lower(key));

CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    role_id     TEXT NOT NULL REFERENCES roles (id),
    scope_type  TEXT NOT NULL CHECK (scope_type IN ('tenant', 'org', 'segment')),
    org_id      TEXT REFERENCES orgs (id),
    segment_id  TEXT REFERENCES segments (id),
    created_at  BIGINT NOT NULL,
    CHECK ((scope_type = 'tenant' AND org_id IS NULL AND segment_id IS NULL)
        OR (scope_type = 'org' AND org_id IS NOT NULL AND segment_id IS NULL)
        OR (scope_type = 'segment' AND segment_id IS NOT NULL AND org_id IS NULL))
);
CREATE INDEX grants_user ON grants (tenant_id, user_id);
CREATE UNIQUE INDEX grants_unique_key ON grants (user_id, role_id, scope_type, coalesce(org_id, ''), coalesce(segment_id, ''));

CREATE TABLE sessions (
    id_hash       TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    token_hash    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);
CREATE UNIQUE INDEX api_tokens_hash_key ON api_tokens (token_hash);
CREATE INDEX api_tokens_user ON api_tokens (tenant_id, user_id);

CREATE TABLE login_failures (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    email       TEXT NOT NULL,
    ip          TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX login_failures_email ON login_failures (tenant_id, email, at);
CREATE INDEX login_failures_ip ON login_failures (tenant_id, ip, at);

CREATE TABLE audit_log (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    at           BIGINT NOT NULL,
    actor_type   TEXT NOT NULL,
    actor_id     TEXT,
    actor_label  TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT,
    before       TEXT,
    after        TEXT,
    request_id   TEXT
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);

CREATE TABLE operators (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL,
    name           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX operators_email_key ON operators (lower(email));

-- Failed operator sign-ins, counted across replicas to throttle guessing.
CREATE TABLE operator_login_failures (
    id     TEXT PRIMARY KEY,
    email  TEXT NOT NULL,
    at     BIGINT NOT NULL
);
CREATE INDEX operator_login_failures_email ON operator_login_failures (email, at);

CREATE TABLE operator_tokens (
    token_hash   TEXT PRIMARY KEY,
    operator_id  TEXT NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
