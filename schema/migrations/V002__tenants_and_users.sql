-- Tenants and their members. Every tenant-owned table carries tenant_id, and RLS is enabled AND forced.

CREATE TABLE pat.tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL,
    name        text NOT NULL,
    plan        text NOT NULL DEFAULT 'free',
    status      text NOT NULL DEFAULT 'active',
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    CONSTRAINT tenants_slug_format CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    CONSTRAINT tenants_name_length CHECK (length(name) BETWEEN 1 AND 200),
    CONSTRAINT tenants_plan_valid CHECK (plan IN ('free', 'team', 'business', 'enterprise')),
    CONSTRAINT tenants_status_valid CHECK (status IN ('active', 'suspended', 'closed')),
    CONSTRAINT tenants_settings_object CHECK (jsonb_typeof(settings) = 'object')
);
CREATE UNIQUE INDEX tenants_slug_live_key ON pat.tenants (slug) WHERE deleted_at IS NULL;

CREATE TABLE pat.users (
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES pat.tenants (id),
    email         text NOT NULL,
    display_name  text,
    role          text NOT NULL DEFAULT 'member',
    timezone      text NOT NULL DEFAULT 'UTC',
    last_seen_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT users_id_key UNIQUE (id),
    CONSTRAINT users_email_format CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 320),
    CONSTRAINT users_role_valid CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    CONSTRAINT users_timezone_iana CHECK (pat.is_iana_timezone(timezone))
);
-- One live account per address and tenant; a soft-deleted user frees the address.
CREATE UNIQUE INDEX users_tenant_email_live_key ON pat.users (tenant_id, lower(email)) WHERE deleted_at IS NULL;

CREATE TRIGGER tenants_touch_updated_at BEFORE UPDATE ON pat.tenants
    FOR EACH ROW EXECUTE FUNCTION pat.touch_updated_at();
CREATE TRIGGER users_touch_updated_at BEFORE UPDATE ON pat.users
    FOR EACH ROW EXECUTE FUNCTION pat.touch_updated_at();

ALTER TABLE pat.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE pat.tenants FORCE ROW LEVEL SECURITY;
-- A tenant sees only itself; tenants are created and changed by operators (owner role), not the application.
CREATE POLICY tenant_self ON pat.tenants FOR SELECT TO pat_app, pat_readonly
    USING (id = pat.current_tenant_id());
CREATE POLICY operator_all ON pat.tenants FOR ALL TO pat_owner USING (true) WITH CHECK (true);

ALTER TABLE pat.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE pat.users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pat.users TO pat_app, pat_readonly
    USING (tenant_id = pat.current_tenant_id())
    WITH CHECK (tenant_id = pat.current_tenant_id());

GRANT SELECT ON pat.tenants TO pat_app, pat_readonly;
GRANT SELECT, INSERT, UPDATE, DELETE ON pat.users TO pat_app;
GRANT SELECT ON pat.users TO pat_readonly;
