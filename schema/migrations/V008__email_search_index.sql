-- Full-text search moves out of pat.emails into pat.email_search, read only through pat.search_email_ids().
--
-- Why: pat.emails has FORCE ROW LEVEL SECURITY, so its tenant policy is a security barrier, and `tsvector @@ tsquery`
-- is not leakproof: the planner may not use it as an index condition, and ranked search over a large mailbox took
-- seconds. Marking it LEAKPROOF needs a real superuser (Aurora has none) and BYPASSRLS is not grantable there.
-- pat.email_search carries no row-level security and NO privilege for pat_app or pat_readonly: only its owner (this
-- migration's user) reads it, through the SECURITY DEFINER function below, which reads the tenant ITSELF from
-- app.tenant_id and filters on it; both `tenant_id = t` and `search @@ q` are conditions of one btree_gin index.
-- The repository re-reads the returned rows from pat.emails under RLS, so a bug here cannot show another tenant's
-- content. Design and measurements: docs/architecture.md#search.

-- btree_gin: GIN operator classes for scalar types, so tenant_id can be a GIN index column next to the tsvector.
-- A trusted extension (a database owner that is not a superuser may create it); Aurora PostgreSQL 17 ships 1.3.
CREATE EXTENSION IF NOT EXISTS btree_gin WITH SCHEMA public;

-- Co-partitioned with pat.emails (schema/partitions.toml: follows = "emails"): same months, retired with them.
-- One row per live (not soft-deleted) email; no FK (retiring partitions in any order stays possible).
CREATE TABLE pat.email_search (
    tenant_id    uuid NOT NULL,
    email_id     uuid NOT NULL,
    received_at  timestamptz NOT NULL,
    search       tsvector NOT NULL,
    PRIMARY KEY (tenant_id, email_id, received_at)
) PARTITION BY RANGE (received_at);
REVOKE ALL ON pat.email_search FROM PUBLIC;
-- Rare terms: both the tenant and the match are index conditions.
CREATE INDEX email_search_tenant_search_idx ON pat.email_search USING gin (tenant_id, search);
-- Common terms: the newest matches of a tenant, walking its mail in date order.
CREATE INDEX email_search_tenant_received_idx ON pat.email_search (tenant_id, received_at DESC, email_id DESC);

-- The document of one email; the same expression as the generated column pat.emails.search that it replaces.
-- 'simple' configuration: tenants write in many languages, so no language-specific stemming.
CREATE FUNCTION pat.email_search_document(subject text, sender text, text_body text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT setweight(to_tsvector('simple', coalesce(subject, '')), 'A')
        || setweight(to_tsvector('simple', coalesce(sender, '')), 'B')
        || setweight(to_tsvector('simple', left(coalesce(text_body, ''), 100000)), 'C')
$$;

-- Partitions are made by partition maintenance, not by migrations, except here: the backfill below needs one for
-- every month that holds mail already. Mirror the emails partitions (same names, same bounds).
DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'pat.emails'::regclass
    LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS pat.%I PARTITION OF pat.email_search %s',
            regexp_replace(part.relname, '^emails', 'email_search'),
            part.bound
        );
    END LOOP;
END
$$;

-- Backfill from the stored vectors (no recomputation). RLS is forced on pat.emails and has no policy for the owner,
-- so the owner would read no row: lift FORCE for this one statement, inside this migration's transaction (the ALTER
-- holds an ACCESS EXCLUSIVE lock to commit and FORCE is back before the commit: no other session ever sees it lifted).
ALTER TABLE pat.emails NO FORCE ROW LEVEL SECURITY;
INSERT INTO pat.email_search (tenant_id, email_id, received_at, search)
SELECT tenant_id, id, received_at, search FROM pat.emails WHERE deleted_at IS NULL;
ALTER TABLE pat.emails FORCE ROW LEVEL SECURITY;

-- The stored vector and its GIN index leave pat.emails (they were ~40 % of the ingest cost).
-- squawk-ignore ban-drop-column
ALTER TABLE pat.emails DROP COLUMN search;

-- Filling: one statement per INSERT statement on pat.emails (transition table), as the owner.
CREATE FUNCTION pat.email_search_on_insert() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pat
    AS $$
BEGIN
    INSERT INTO pat.email_search (tenant_id, email_id, received_at, search)
    SELECT n.tenant_id, n.id, n.received_at, pat.email_search_document(n.subject, n.sender, n.text_body)
    FROM inserted n
    WHERE n.deleted_at IS NULL;
    RETURN NULL;
END
$$;

-- UPDATE: a row leaves the index when it is soft-deleted, and is re-indexed when its subject, sender or body
-- changes, when it is restored, or when it moves (received_at). Status and other changes touch nothing.
CREATE FUNCTION pat.email_search_on_update() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pat
    AS $$
BEGIN
    DELETE FROM pat.email_search s
    USING old_rows o
    WHERE s.tenant_id = o.tenant_id AND s.email_id = o.id AND s.received_at = o.received_at
        AND NOT EXISTS (
            SELECT FROM new_rows n
            WHERE n.tenant_id = o.tenant_id AND n.id = o.id AND n.received_at = o.received_at
                AND n.deleted_at IS NULL AND o.deleted_at IS NULL
                AND n.subject IS NOT DISTINCT FROM o.subject AND n.sender IS NOT DISTINCT FROM o.sender
                AND n.text_body IS NOT DISTINCT FROM o.text_body
        );
    INSERT INTO pat.email_search (tenant_id, email_id, received_at, search)
    SELECT n.tenant_id, n.id, n.received_at, pat.email_search_document(n.subject, n.sender, n.text_body)
    FROM new_rows n
    WHERE n.deleted_at IS NULL
        AND NOT EXISTS (
            SELECT FROM old_rows o
            WHERE o.tenant_id = n.tenant_id AND o.id = n.id AND o.received_at = n.received_at
                AND o.deleted_at IS NULL
                AND o.subject IS NOT DISTINCT FROM n.subject AND o.sender IS NOT DISTINCT FROM n.sender
                AND o.text_body IS NOT DISTINCT FROM n.text_body
        )
    ON CONFLICT (tenant_id, email_id, received_at) DO UPDATE SET search = excluded.search;
    RETURN NULL;
END
$$;

CREATE FUNCTION pat.email_search_on_delete() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pat
    AS $$
BEGIN
    DELETE FROM pat.email_search s
    USING removed o
    WHERE s.tenant_id = o.tenant_id AND s.email_id = o.id AND s.received_at = o.received_at;
    RETURN NULL;
END
$$;

-- Trigger functions run only as triggers; nobody may call them (default privileges granted EXECUTE to the roles).
REVOKE ALL ON FUNCTION pat.email_search_on_insert(), pat.email_search_on_update(), pat.email_search_on_delete()
    FROM PUBLIC, pat_app, pat_readonly;

CREATE TRIGGER emails_search_insert AFTER INSERT ON pat.emails
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION pat.email_search_on_insert();
CREATE TRIGGER emails_search_update AFTER UPDATE ON pat.emails
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pat.email_search_on_update();
CREATE TRIGGER emails_search_delete AFTER DELETE ON pat.emails
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION pat.email_search_on_delete();

-- Ranked search of the CURRENT tenant's mail (app.tenant_id; raises when unset, never takes a tenant argument).
-- Returns ids, partition key and rank only: the caller reads the rows from pat.emails under RLS.
-- Semantics (the same as the plain query it replaces): the `candidates` newest matches of the whole mailbox, no date
-- bound, ranked by ts_rank_cd, then newest first; `skip`/`max_results` page through that ranking.
-- plan_cache_mode = force_custom_plan: the query is planned with its tsquery as a constant, so the planner picks the
-- GIN index for rare terms and the date-ordered index for common ones (a cached generic plan cannot).
CREATE FUNCTION pat.search_email_ids(query text, max_results integer, skip integer DEFAULT 0,
                                     candidates integer DEFAULT 1000)
    RETURNS TABLE (email_id uuid, received_at timestamptz, rank real)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pat
    SET plan_cache_mode = force_custom_plan
    AS $$
#variable_conflict error
DECLARE
    tenant uuid := pat.current_tenant_id();
BEGIN
    IF tenant IS NULL THEN
        RAISE EXCEPTION 'pat.search_email_ids: no tenant is set for this transaction'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'run SELECT set_config(''app.tenant_id'', <tenant id>, true) in the same transaction first';
    END IF;
    IF max_results IS NULL OR max_results NOT BETWEEN 0 AND 10000 OR skip IS NULL OR skip < 0
        OR candidates IS NULL OR candidates NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'pat.search_email_ids: max_results must be 0-10000, skip >= 0, candidates 1-100000'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT c.email_id, c.received_at, ts_rank_cd(c.search, websearch_to_tsquery('simple', query)) AS r
    FROM (
        SELECT s.email_id, s.received_at, s.search
        FROM pat.email_search s
        WHERE s.tenant_id = tenant AND s.search @@ websearch_to_tsquery('simple', query)
        ORDER BY s.received_at DESC, s.email_id DESC
        LIMIT candidates
    ) c
    ORDER BY r DESC, c.received_at DESC, c.email_id DESC
    LIMIT max_results OFFSET skip;
END
$$;
-- pat_app only. pat_readonly (reporting, on-call) runs no SECURITY DEFINER function by design
-- (tests/data/test_login_roles.py); it can search with the plain query under RLS.
REVOKE ALL ON FUNCTION pat.search_email_ids(text, integer, integer, integer) FROM PUBLIC, pat_readonly;
GRANT EXECUTE ON FUNCTION pat.search_email_ids(text, integer, integer, integer) TO pat_app;
