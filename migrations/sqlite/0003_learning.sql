-- The learning core: course settings and lessons, catalog visibility, programs, enrollment history, approval
-- requests, lesson progress, quiz attempts and certificates; sign-up (claimed e-mail domains, invitations,
-- sign-up records); enrollment rules with their firing counts and the log of every automatic action; jobs.

ALTER TABLE courses ADD COLUMN estimated_minutes BIGINT;
ALTER TABLE courses ADD COLUMN visibility TEXT NOT NULL DEFAULT 'tenant' CHECK (visibility IN ('tenant', 'orgs', 'hidden'));
ALTER TABLE courses ADD COLUMN self_enroll BIGINT NOT NULL DEFAULT 1;
ALTER TABLE courses ADD COLUMN approval_required BIGINT NOT NULL DEFAULT 0;
ALTER TABLE courses ADD COLUMN due_days BIGINT;
ALTER TABLE courses ADD COLUMN certificate_valid_days BIGINT;
ALTER TABLE courses ADD COLUMN issues_certificate BIGINT NOT NULL DEFAULT 1;

ALTER TABLE enrollments ADD COLUMN source TEXT NOT NULL DEFAULT 'manual';
ALTER TABLE enrollments ADD COLUMN started_at BIGINT;
ALTER TABLE enrollments ADD COLUMN cycle BIGINT NOT NULL DEFAULT 1;

-- The organizations (with their sub-organizations) a course with visibility 'orgs' is offered to.
CREATE TABLE course_orgs (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    course_id   TEXT NOT NULL REFERENCES courses (id),
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (course_id, org_id)
);
CREATE INDEX course_orgs_org ON course_orgs (tenant_id, org_id);

CREATE TABLE lessons (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    course_id     TEXT NOT NULL REFERENCES courses (id),
    position      BIGINT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('text', 'media', 'quiz')),
    title         TEXT NOT NULL,
    body          TEXT NOT NULL DEFAULT '',
    media_url     TEXT,
    required      BIGINT NOT NULL DEFAULT 1,
    questions     TEXT NOT NULL DEFAULT '[]',
    pass_percent  BIGINT,
    max_attempts  BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX lessons_course ON lessons (tenant_id, course_id, position);

CREATE TABLE programs (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    code        TEXT NOT NULL,
    title       TEXT NOT NULL,
    summary     TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX programs_code_key ON programs (tenant_id, lower(code));

CREATE TABLE program_courses (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    program_id  TEXT NOT NULL REFERENCES programs (id),
    course_id   TEXT NOT NULL REFERENCES courses (id),
    position    BIGINT NOT NULL,
    PRIMARY KEY (program_id, course_id)
);
CREATE INDEX program_courses_course ON program_courses (tenant_id, course_id);

CREATE TABLE program_enrollments (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    program_id    TEXT NOT NULL REFERENCES programs (id),
    status        TEXT NOT NULL CHECK (status IN ('enrolled', 'completed', 'dropped')),
    due_at        BIGINT,
    completed_at  BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX program_enrollments_key ON program_enrollments (tenant_id, user_id, program_id);

-- Every change to an enrollment, with who or what caused it.
CREATE TABLE enrollment_history (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    enrollment_id  TEXT NOT NULL REFERENCES enrollments (id),
    at             BIGINT NOT NULL,
    action         TEXT NOT NULL,
    status         TEXT NOT NULL,
    detail         TEXT,
    cause          TEXT NOT NULL
);
CREATE INDEX enrollment_history_enrollment ON enrollment_history (tenant_id, enrollment_id, at);

-- Requests to join a course that needs a manager's approval.
CREATE TABLE enrollment_requests (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    course_id    TEXT NOT NULL REFERENCES courses (id),
    status       TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'withdrawn')),
    note         TEXT,
    decided_by   TEXT,
    decided_at   BIGINT,
    created_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX enrollment_requests_pending_key ON enrollment_requests (tenant_id, user_id, course_id) WHERE status = 'pending';
CREATE INDEX enrollment_requests_status ON enrollment_requests (tenant_id, status, created_at);

CREATE TABLE lesson_progress (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    enrollment_id  TEXT NOT NULL REFERENCES enrollments (id),
    lesson_id      TEXT NOT NULL REFERENCES lessons (id),
    completed_at   BIGINT NOT NULL,
    score          BIGINT,
    PRIMARY KEY (enrollment_id, lesson_id)
);
CREATE INDEX lesson_progress_tenant ON lesson_progress (tenant_id, enrollment_id);

CREATE TABLE quiz_attempts (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    enrollment_id  TEXT NOT NULL REFERENCES enrollments (id),
    lesson_id      TEXT NOT NULL REFERENCES lessons (id),
    cycle          BIGINT NOT NULL,
    answers        TEXT NOT NULL,
    score          BIGINT NOT NULL,
    passed         BIGINT NOT NULL,
    at             BIGINT NOT NULL
);
CREATE INDEX quiz_attempts_enrollment ON quiz_attempts (tenant_id, enrollment_id, lesson_id, cycle);

CREATE TABLE certificates (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    user_id        TEXT NOT NULL REFERENCES users (id),
    course_id      TEXT NOT NULL REFERENCES courses (id),
    enrollment_id  TEXT NOT NULL REFERENCES enrollments (id),
    code           TEXT NOT NULL,
    issued_at      BIGINT NOT NULL,
    expires_at     BIGINT,
    revoked_at     BIGINT,
    renewed_at     BIGINT
);
CREATE UNIQUE INDEX certificates_code_key ON certificates (tenant_id, code);
CREATE INDEX certificates_user ON certificates (tenant_id, user_id);
CREATE INDEX certificates_expiry ON certificates (tenant_id, expires_at) WHERE expires_at IS NOT NULL AND renewed_at IS NULL AND revoked_at IS NULL;

-- E-mail domains an organization claims: people signing up with such an address land in it.
CREATE TABLE org_domains (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    domain      TEXT NOT NULL,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    hold        BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, domain)
);
CREATE INDEX org_domains_org ON org_domains (tenant_id, org_id);

CREATE TABLE invitations (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    token        TEXT NOT NULL,
    max_uses     BIGINT,
    uses         BIGINT NOT NULL DEFAULT 0,
    hold         BIGINT NOT NULL DEFAULT 0,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    created_by   TEXT,
    created_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX invitations_token_key ON invitations (tenant_id, token);
CREATE INDEX invitations_org ON invitations (tenant_id, org_id);

-- One row per sign-up: how it came in, where it was placed, what was decided and why.
CREATE TABLE signups (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    user_id        TEXT REFERENCES users (id),
    email          TEXT NOT NULL,
    via            TEXT NOT NULL CHECK (via IN ('open', 'domain', 'invitation')),
    org_id         TEXT REFERENCES orgs (id),
    invitation_id  TEXT REFERENCES invitations (id),
    status         TEXT NOT NULL CHECK (status IN ('approved', 'pending', 'rejected')),
    reason         TEXT,
    actions        TEXT NOT NULL DEFAULT '[]',
    decided_by     TEXT,
    decided_at     BIGINT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX signups_status ON signups (tenant_id, status, created_at);

CREATE TABLE rules (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    name                TEXT NOT NULL,
    enabled             BIGINT NOT NULL DEFAULT 1,
    definition          TEXT NOT NULL,
    max_fires_per_user  BIGINT NOT NULL DEFAULT 1,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE UNIQUE INDEX rules_name_key ON rules (tenant_id, lower(name));

CREATE TABLE rule_firings (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    rule_id    TEXT NOT NULL REFERENCES rules (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    fires      BIGINT NOT NULL,
    last_at    BIGINT NOT NULL,
    PRIMARY KEY (rule_id, user_id)
);
CREATE INDEX rule_firings_user ON rule_firings (tenant_id, user_id);

-- Every action a rule or plugin took or tried, with its cause and what came of it.
CREATE TABLE automation_log (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    at            BIGINT NOT NULL,
    user_id       TEXT,
    source        TEXT NOT NULL,
    trigger_name  TEXT NOT NULL,
    action        TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('applied', 'unchanged', 'refused', 'stopped')),
    message       TEXT
);
CREATE INDEX automation_log_tenant ON automation_log (tenant_id, at);
CREATE INDEX automation_log_user ON automation_log (tenant_id, user_id);

-- Long work (bulk enrollments, retroactive rules) that a client polls.
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    params       TEXT NOT NULL,
    result       TEXT,
    error        TEXT,
    created_by   TEXT,
    created_at   BIGINT NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT
);
CREATE INDEX jobs_status ON jobs (status, created_at);
CREATE INDEX jobs_tenant ON jobs (tenant_id, created_at);
