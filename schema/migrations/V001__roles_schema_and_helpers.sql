-- Roles, the `pat` schema and the helper functions every later migration uses.
-- Runs as the owner role (pat_owner, the cluster's master user): it owns every object created here.
-- Passwords are never set in SQL: the migrator sets them from Secrets Manager after the migrations ran.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pat_app') THEN
        CREATE ROLE pat_app LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pat_readonly') THEN
        CREATE ROLE pat_readonly LOGIN;
    END IF;
END
$$;

-- Application roles may log in and nothing else: no DDL, no role management, never past RLS. Refuse to continue
-- if someone widened them by hand (only a superuser could grant SUPERUSER/BYPASSRLS, so this cannot fix it).
ALTER ROLE pat_app NOCREATEDB NOCREATEROLE;
ALTER ROLE pat_readonly NOCREATEDB NOCREATEROLE;
DO $$
DECLARE
    widened text;
BEGIN
    SELECT string_agg(rolname, ', ') INTO widened FROM pg_roles
    WHERE rolname IN ('pat_app', 'pat_readonly') AND (rolsuper OR rolbypassrls OR rolreplication);
    IF widened IS NOT NULL THEN
        RAISE EXCEPTION 'roles % have SUPERUSER, BYPASSRLS or REPLICATION', widened
            USING HINT = 'a superuser must run ALTER ROLE ... NOSUPERUSER NOBYPASSRLS NOREPLICATION first';
    END IF;
END
$$;
-- Sessions of the read-only role cannot write even where a grant slips through.
ALTER ROLE pat_readonly SET default_transaction_read_only = on;
ALTER ROLE pat_app SET statement_timeout = '30s';
ALTER ROLE pat_readonly SET statement_timeout = '5min';

DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO pat_app, pat_readonly', current_database());
    -- Batch ingest stages rows in a transaction-local temp table (ON COMMIT DROP: safe in transaction pooling).
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO pat_app', current_database());
END
$$;

CREATE SCHEMA IF NOT EXISTS pat;
REVOKE ALL ON SCHEMA pat FROM PUBLIC;
GRANT USAGE ON SCHEMA pat TO pat_app, pat_readonly;

-- Functions are not executable by PUBLIC unless a migration grants them; sequences follow the app role.
ALTER DEFAULT PRIVILEGES IN SCHEMA pat REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA pat GRANT EXECUTE ON FUNCTIONS TO pat_app, pat_readonly;
ALTER DEFAULT PRIVILEGES IN SCHEMA pat GRANT USAGE, SELECT ON SEQUENCES TO pat_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA pat GRANT SELECT ON SEQUENCES TO pat_readonly;
-- Deliberately no default TABLE privileges: monthly partitions are created in this schema, and a grant on a
-- partition would let a role read it directly, outside the parent's row-level security.

-- The tenant of the current transaction, set by the application with SET LOCAL app.tenant_id = '<uuid>'.
-- NULL when unset, so every tenant policy matches no row.
CREATE FUNCTION pat.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.tenant_id', true), '')::uuid $$;

-- The acting user for the audit log (SET LOCAL app.actor = 'user:<id>' or 'system:<job>').
CREATE FUNCTION pat.current_actor() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(nullif(current_setting('app.actor', true), ''), session_user::text) $$;

-- IANA zone names only ("Europe/Paris", "UTC"); rejects POSIX offsets like "UTC+3" that PostgreSQL also accepts.
CREATE FUNCTION pat.is_iana_timezone(zone text) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $$
BEGIN
    IF zone IS NULL OR zone !~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$' OR zone ~ '[0-9]$' AND zone !~ '/' THEN
        RETURN false;
    END IF;
    PERFORM now() AT TIME ZONE zone;
    RETURN true;
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN false;
END
$$;

-- BEFORE UPDATE trigger: updated_at always reflects the last write, whatever the client sent.
CREATE FUNCTION pat.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$;
