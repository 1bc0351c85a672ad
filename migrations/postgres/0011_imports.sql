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

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO aula_app, aula_platform;

ALTER TABLE import_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE import_members FORCE ROW LEVEL SECURITY;
CREATE POLICY import_members_tenant ON import_members TO aula_app
    USING (tenant_id = current_setting('aula.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('aula.tenant_id', true));
CREATE POLICY import_members_platform ON import_members TO aula_platform USING (true) WITH CHECK (true);
