-- The tenant and actor of a transaction are set by calling this function, not by the client running set_config.
--
-- Staging and prod reach Aurora through RDS Proxy. AWS's "Avoiding pinning an RDS Proxy" page lists for PostgreSQL
-- "Setting a parameter, or resetting a parameter to its default. Specifically, using SET and set_config commands ..."
-- and says "for PostgreSQL setting a variable leads to session pinning", with no exception for transaction-local
-- settings; the same page says "Calling stored procedures and stored functions doesn't cause pinning. RDS Proxy
-- doesn't detect any session state changes resulting from such calls. Make sure that your application doesn't change
-- session state inside stored routines if you rely on that session state to persist across transactions."
-- (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/rds-proxy-pinning.html). The settings made here are
-- transaction-local (is_local = true): they end with the transaction, so nothing outlives it on the server
-- connection, which is the condition that page sets for state changed inside a routine.
-- SECURITY INVOKER (the default): it sets the caller's own transaction settings and needs no privilege; RLS reads
-- app.tenant_id through pat.current_tenant_id() exactly as before. No SET clause (a function-level SET would scope
-- these settings to the call); the catalog functions are schema-qualified instead, so no search_path can replace them.
CREATE FUNCTION pat.set_request_context(tenant_id text, actor text) RETURNS void
    LANGUAGE sql VOLATILE
    AS $$
    SELECT pg_catalog.set_config('app.tenant_id', coalesce(tenant_id, ''), true),
           pg_catalog.set_config('app.actor', coalesce(actor, ''), true)
$$;
REVOKE ALL ON FUNCTION pat.set_request_context(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pat.set_request_context(text, text) TO pat_app, pat_readonly;
