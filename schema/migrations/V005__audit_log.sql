-- The audit log: partitioned by month on occurred_at, written only by the audit trigger.

CREATE TABLE pat.audit_log (
    -- Identity columns on partitioned tables need PostgreSQL 17; we support 15 (local) and Aurora 16 too.
    -- squawk-ignore prefer-identity
    id           bigserial NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    tenant_id    uuid,
    actor        text NOT NULL,
    table_name   text NOT NULL,
    operation    text NOT NULL,
    row_key      text NOT NULL,
    old_row      jsonb,
    new_row      jsonb,
    txid         bigint NOT NULL DEFAULT txid_current(),
    PRIMARY KEY (id, occurred_at),
    CONSTRAINT audit_log_operation_valid CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE'))
) PARTITION BY RANGE (occurred_at);
CREATE INDEX audit_log_tenant_idx ON pat.audit_log (tenant_id, occurred_at DESC);
CREATE INDEX audit_log_row_idx ON pat.audit_log (table_name, row_key, occurred_at DESC);

-- SECURITY DEFINER: the application cannot write the audit log directly, only through this trigger.
-- Arguments: columns to leave out of old_row/new_row (large or sensitive bodies).
CREATE FUNCTION pat.audit_row_change() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pat
    AS $$
DECLARE
    old_doc jsonb;
    new_doc jsonb;
    excluded text[] := coalesce(TG_ARGV::text[], '{}');
    -- Row triggers on a partitioned table fire with the partition as TG_TABLE_NAME: record the parent.
    logical_table text := coalesce(
        (SELECT p.relname FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE i.inhrelid = TG_RELID),
        TG_TABLE_NAME
    );
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        old_doc := to_jsonb(OLD) - excluded;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        new_doc := to_jsonb(NEW) - excluded;
    END IF;
    -- An UPDATE that changed nothing but the updated_at stamp is not worth a row.
    IF TG_OP = 'UPDATE' AND old_doc - 'updated_at' = new_doc - 'updated_at' THEN
        RETURN NULL;
    END IF;
    INSERT INTO pat.audit_log (tenant_id, actor, table_name, operation, row_key, old_row, new_row)
    VALUES (
        coalesce(pat.current_tenant_id(), (coalesce(new_doc, old_doc) ->> 'tenant_id')::uuid),
        pat.current_actor(),
        logical_table,
        TG_OP,
        coalesce(new_doc, old_doc) ->> 'id',
        old_doc,
        new_doc
    );
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION pat.audit_row_change() FROM PUBLIC, pat_app, pat_readonly;

CREATE TRIGGER tenants_audit AFTER INSERT OR UPDATE OR DELETE ON pat.tenants
    FOR EACH ROW EXECUTE FUNCTION pat.audit_row_change();
CREATE TRIGGER users_audit AFTER INSERT OR UPDATE OR DELETE ON pat.users
    FOR EACH ROW EXECUTE FUNCTION pat.audit_row_change();
CREATE TRIGGER tags_audit AFTER INSERT OR UPDATE OR DELETE ON pat.tags
    FOR EACH ROW EXECUTE FUNCTION pat.audit_row_change();
CREATE TRIGGER workflows_audit AFTER INSERT OR UPDATE OR DELETE ON pat.workflows
    FOR EACH ROW EXECUTE FUNCTION pat.audit_row_change();
CREATE TRIGGER plugins_audit AFTER INSERT OR UPDATE OR DELETE ON pat.plugins
    FOR EACH ROW EXECUTE FUNCTION pat.audit_row_change('config');
-- Email bodies stay out of the audit log; status changes and deletions are what auditors ask about.
CREATE TRIGGER emails_audit AFTER UPDATE OR DELETE ON pat.emails
    FOR EACH ROW EXECUTE FUNCTION pat.audit_row_change('text_body', 'html_body', 'search', 'headers');

ALTER TABLE pat.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE pat.audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON pat.audit_log FOR SELECT TO pat_app, pat_readonly
    USING (tenant_id = pat.current_tenant_id());
-- The trigger runs as the owner; it may append and nothing else (no UPDATE/DELETE policy exists).
CREATE POLICY trigger_append ON pat.audit_log FOR INSERT TO pat_owner WITH CHECK (true);
CREATE POLICY operator_read ON pat.audit_log FOR SELECT TO pat_owner USING (true);

GRANT SELECT ON pat.audit_log TO pat_app, pat_readonly;
