-- Notifications and reports: the academy's sender and reminder settings, mail templates, the outbox of domain
-- events, messages with their delivery attempts, once-only schedule slots, sign-in events (for the activity
-- report), saved report presets and report schedules.

-- One row per academy that changed the defaults (sender name = academy name, address = [mail] from_address,
-- reminders 3 days before the due date, digests at 07:00 UTC).
CREATE TABLE notification_settings (
    tenant_id       TEXT PRIMARY KEY REFERENCES tenants (id),
    sender_name     TEXT,
    sender_address  TEXT,
    reply_to        TEXT,
    due_soon_days   BIGINT NOT NULL DEFAULT 3,
    digest_hour     BIGINT NOT NULL DEFAULT 7,
    updated_at      BIGINT NOT NULL
);

-- An academy's own text for one kind of message in one language; without a row the embedded default is used.
CREATE TABLE notification_templates (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    kind        TEXT NOT NULL,
    locale      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body_text   TEXT NOT NULL,
    body_html   TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX notification_templates_key ON notification_templates (tenant_id, kind, locale);

-- Domain events, written in the transaction of the change that caused them, turned into messages once.
-- `dedupe_key` makes scheduled events (reminders) idempotent across runs and replicas.
CREATE TABLE outbox_events (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    kind           TEXT NOT NULL,
    user_id        TEXT,
    course_id      TEXT,
    enrollment_id  TEXT,
    -- The person whose action caused the event (none: the academy itself, a rule, the scheduler).
    actor_id       TEXT,
    data           TEXT NOT NULL DEFAULT '{}',
    dedupe_key     TEXT,
    created_at     BIGINT NOT NULL,
    claimed_until  BIGINT,
    attempts       BIGINT NOT NULL DEFAULT 0,
    last_error     TEXT,
    processed_at   BIGINT
);
CREATE UNIQUE INDEX outbox_events_dedupe_key ON outbox_events (tenant_id, dedupe_key);
CREATE INDEX outbox_events_pending ON outbox_events (processed_at, created_at);
CREATE INDEX outbox_events_user ON outbox_events (tenant_id, user_id);

-- One e-mail to one person. Status: queued → sending → handed_over → sent; held (waits for the digest) →
-- digested; suppressed (preference, plugin); failed (permanently refused, or out of attempts).
CREATE TABLE messages (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    event_id         TEXT,
    kind             TEXT NOT NULL,
    recipient_id     TEXT,
    to_address       TEXT NOT NULL,
    to_name          TEXT,
    locale           TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body_text        TEXT NOT NULL,
    body_html        TEXT,
    attachment_name  TEXT,
    attachment_type  TEXT,
    attachment       BLOB,
    -- `host`, `plugin:<id>@<version>`, `digest`, `schedule:<id>`.
    source           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'held', 'sending', 'handed_over', 'sent', 'failed', 'suppressed', 'digested')),
    -- Why it was suppressed or failed, or the last deferral.
    reason           TEXT,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    lease_until      BIGINT,
    digest_id        TEXT,
    -- The RFC 5322 Message-ID, the same on every attempt.
    message_id       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    sent_at          BIGINT
);
CREATE INDEX messages_due ON messages (status, next_attempt_at);
CREATE INDEX messages_recipient ON messages (tenant_id, recipient_id, created_at);
CREATE INDEX messages_event ON messages (tenant_id, event_id);
CREATE INDEX messages_created ON messages (tenant_id, created_at);

-- Every delivery attempt of a message: when, and how it ended.
CREATE TABLE message_attempts (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    message_id   TEXT NOT NULL REFERENCES messages (id),
    attempt      BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    -- started, accepted, deferred, rejected, interrupted, unconfirmed
    outcome      TEXT NOT NULL,
    detail       TEXT
);
CREATE INDEX message_attempts_message ON message_attempts (tenant_id, message_id, attempt);

-- A scheduled job's run for one slot (`digest` / `2026-11-25`): the row is inserted in the transaction that
-- does the run, so each slot runs once however many replicas share the database.
CREATE TABLE schedule_slots (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    job         TEXT NOT NULL,
    slot        TEXT NOT NULL,
    claimed_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, job, slot)
);

-- Successful sign-ins, for the activity report.
CREATE TABLE login_events (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    at         BIGINT NOT NULL
);
CREATE INDEX login_events_at ON login_events (tenant_id, at);
CREATE INDEX login_events_user ON login_events (tenant_id, user_id);

-- A report with its filters, saved under a name by the person who runs it.
CREATE TABLE report_presets (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    owner_id    TEXT NOT NULL REFERENCES users (id),
    name        TEXT NOT NULL,
    report      TEXT NOT NULL,
    params      TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX report_presets_name_key ON report_presets (tenant_id, owner_id, lower(name));

-- A report e-mailed on a schedule. It runs with its owner's scope; recipients are users of the academy.
CREATE TABLE report_schedules (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    owner_id     TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    report       TEXT NOT NULL,
    params       TEXT NOT NULL DEFAULT '{}',
    format       TEXT NOT NULL CHECK (format IN ('csv', 'html')),
    frequency    TEXT NOT NULL CHECK (frequency IN ('daily', 'weekly', 'monthly')),
    -- UTC hour, day of the week (1 = Monday) for weekly, day of the month (1–28) for monthly.
    hour         BIGINT NOT NULL,
    weekday      BIGINT,
    monthday     BIGINT,
    -- JSON array of user ids.
    recipients   TEXT NOT NULL DEFAULT '[]',
    active       BIGINT NOT NULL DEFAULT 1,
    next_run_at  BIGINT NOT NULL,
    last_run_at  BIGINT,
    last_status  TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX report_schedules_due ON report_schedules (active, next_run_at);
CREATE INDEX report_schedules_owner ON report_schedules (tenant_id, owner_id);

-- Reminders look for enrollments by due date.
CREATE INDEX enrollments_due ON enrollments (tenant_id, due_at);

-- Reports. Completion by organization and by course group the enrollments per learner from this index alone
-- (every column they read is in it); learner progress and overdue page through enrollments in id order;
-- activity counts completions by time; completion by organization groups memberships per learner.
CREATE INDEX enrollments_report ON enrollments (tenant_id, user_id, status, course_id, created_at, due_at);
CREATE INDEX enrollments_tenant_id ON enrollments (tenant_id, id);
CREATE INDEX enrollments_completed ON enrollments (tenant_id, completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX memberships_tenant_user ON memberships (tenant_id, user_id, org_id);
