-- Bulk imports of people: which people each data set (an HR export, a student information system's file)
-- brought in last, so that a later import of the same data set in diff mode can suspend those it no longer
-- lists.
CREATE TABLE import_members (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    data_set    TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id),
    import_id   TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, data_set, user_id)
);
CREATE INDEX import_members_user ON import_members (tenant_id, user_id);
