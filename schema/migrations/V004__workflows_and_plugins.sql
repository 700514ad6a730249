-- Workflows (versioned JSONB step lists), their runs (partitioned by month on started_at) and plugins.

CREATE TABLE pat.workflows (
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES pat.tenants (id),
    name         text NOT NULL,
    description  text,
    trigger      text NOT NULL,
    steps        jsonb NOT NULL,
    -- Edit counter of one workflow: integer is plenty (lint: bigint is for ids and counters of rows).
    -- squawk-ignore prefer-bigint-over-int
    version      integer NOT NULL DEFAULT 1,
    enabled      boolean NOT NULL DEFAULT true,
    created_by   uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, created_by) REFERENCES pat.users (tenant_id, id),
    CONSTRAINT workflows_name_length CHECK (length(name) BETWEEN 1 AND 200),
    CONSTRAINT workflows_trigger_valid CHECK (trigger IN ('email_received', 'email_sent', 'schedule', 'manual', 'webhook')),
    CONSTRAINT workflows_steps_array CHECK (jsonb_typeof(steps) = 'array' AND jsonb_array_length(steps) BETWEEN 1 AND 100),
    CONSTRAINT workflows_version_positive CHECK (version >= 1)
);
CREATE UNIQUE INDEX workflows_tenant_name_live_key ON pat.workflows (tenant_id, lower(name)) WHERE deleted_at IS NULL;
CREATE INDEX workflows_tenant_trigger_idx ON pat.workflows (tenant_id, trigger) WHERE enabled AND deleted_at IS NULL;

CREATE TABLE pat.workflow_runs (
    id                uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL,
    workflow_id       uuid NOT NULL,
    -- Mirrors workflows.version (integer there too).
    -- squawk-ignore prefer-bigint-over-int
    workflow_version  integer NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    status            text NOT NULL DEFAULT 'pending',
    email_id          uuid,
    input             jsonb NOT NULL DEFAULT '{}'::jsonb,
    output            jsonb,
    error             text,
    -- Retry counter, CHECKed to at most 100.
    -- squawk-ignore prefer-bigint-over-int
    attempt           integer NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id, started_at),
    FOREIGN KEY (tenant_id, workflow_id) REFERENCES pat.workflows (tenant_id, id),
    CONSTRAINT workflow_runs_status_valid CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT workflow_runs_attempt_range CHECK (attempt BETWEEN 1 AND 100),
    CONSTRAINT workflow_runs_finished_after_start CHECK (finished_at IS NULL OR finished_at >= started_at),
    CONSTRAINT workflow_runs_error_when_failed CHECK (status <> 'failed' OR error IS NOT NULL)
) PARTITION BY RANGE (started_at);
CREATE INDEX workflow_runs_workflow_idx ON pat.workflow_runs (tenant_id, workflow_id, started_at DESC);
CREATE INDEX workflow_runs_active_idx ON pat.workflow_runs (tenant_id, status, started_at)
    WHERE status IN ('pending', 'running');

-- Plugins are global (tenant_id NULL, managed by operators) or installed per tenant.
CREATE TABLE pat.plugins (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid REFERENCES pat.tenants (id),
    name        text NOT NULL,
    version     text NOT NULL,
    config      jsonb NOT NULL DEFAULT '{}'::jsonb,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    CONSTRAINT plugins_name_format CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,99}$'),
    CONSTRAINT plugins_version_semver CHECK (version ~ '^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$'),
    CONSTRAINT plugins_config_object CHECK (jsonb_typeof(config) = 'object')
);
CREATE UNIQUE INDEX plugins_global_name_live_key ON pat.plugins (name) WHERE tenant_id IS NULL AND deleted_at IS NULL;
CREATE UNIQUE INDEX plugins_tenant_name_live_key ON pat.plugins (tenant_id, name)
    WHERE tenant_id IS NOT NULL AND deleted_at IS NULL;

CREATE TRIGGER workflows_touch_updated_at BEFORE UPDATE ON pat.workflows
    FOR EACH ROW EXECUTE FUNCTION pat.touch_updated_at();
CREATE TRIGGER plugins_touch_updated_at BEFORE UPDATE ON pat.plugins
    FOR EACH ROW EXECUTE FUNCTION pat.touch_updated_at();

ALTER TABLE pat.workflows ENABLE ROW LEVEL SECURITY;
ALTER TABLE pat.workflows FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pat.workflows TO pat_app, pat_readonly
    USING (tenant_id = pat.current_tenant_id()) WITH CHECK (tenant_id = pat.current_tenant_id());

ALTER TABLE pat.workflow_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE pat.workflow_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pat.workflow_runs TO pat_app, pat_readonly
    USING (tenant_id = pat.current_tenant_id()) WITH CHECK (tenant_id = pat.current_tenant_id());

ALTER TABLE pat.plugins ENABLE ROW LEVEL SECURITY;
ALTER TABLE pat.plugins FORCE ROW LEVEL SECURITY;
-- Tenants read global plugins and their own; they may only write their own.
CREATE POLICY tenant_read ON pat.plugins FOR SELECT TO pat_app, pat_readonly
    USING (tenant_id IS NULL OR tenant_id = pat.current_tenant_id());
CREATE POLICY tenant_insert ON pat.plugins FOR INSERT TO pat_app
    WITH CHECK (tenant_id = pat.current_tenant_id());
CREATE POLICY tenant_update ON pat.plugins FOR UPDATE TO pat_app
    USING (tenant_id = pat.current_tenant_id()) WITH CHECK (tenant_id = pat.current_tenant_id());
CREATE POLICY tenant_delete ON pat.plugins FOR DELETE TO pat_app
    USING (tenant_id = pat.current_tenant_id());
CREATE POLICY operator_global ON pat.plugins FOR ALL TO pat_owner
    USING (tenant_id IS NULL) WITH CHECK (tenant_id IS NULL);

GRANT SELECT, INSERT, UPDATE, DELETE ON pat.workflows, pat.workflow_runs, pat.plugins TO pat_app;
GRANT SELECT ON pat.workflows, pat.workflow_runs, pat.plugins TO pat_readonly;
