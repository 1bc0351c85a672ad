-- Provisioning over SCIM 2.0 (RFC 7643/7644): the academy's SCIM tokens, and what a SCIM client wrote about the
-- people and organizations it provisions.

-- A SCIM token opens /scim/v2 of one academy and nothing else. Only its hash is kept. It acts with the
-- authority of the admin who created it, as that authority stands at each request.
CREATE TABLE scim_tokens (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    token_hash    TEXT NOT NULL,
    created_by    TEXT NOT NULL REFERENCES users (id),
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);
CREATE UNIQUE INDEX scim_tokens_hash ON scim_tokens (token_hash);
CREATE INDEX scim_tokens_tenant ON scim_tokens (tenant_id, id);

-- A user as the SCIM client last wrote them: its userName, and the attributes Aula keeps for it (JSON) beside
-- the account's own columns. `removed_at`: the client deleted the user; the account is suspended, not erased,
-- and the SCIM client no longer sees it.
CREATE TABLE scim_users (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    user_name   TEXT NOT NULL,
    attributes  TEXT NOT NULL DEFAULT '{}',
    removed_at  BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE UNIQUE INDEX scim_users_user_name ON scim_users (tenant_id, lower(user_name)) WHERE removed_at IS NULL;

-- A group as the SCIM client last wrote it: groups are organizations; the attributes beyond an
-- organization's own (JSON) are kept here. `provisioned`: the client created the organization, so it may
-- delete it (an organization made in Aula is only ever changed through SCIM, never deleted).
CREATE TABLE scim_groups (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    attributes   TEXT NOT NULL DEFAULT '{}',
    provisioned  BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, org_id)
);
