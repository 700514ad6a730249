-- Trigger statements that read a large table do so only by key, whatever plan the server connection has cached.
--
-- PL/pgSQL plans each statement once per server connection and keeps the plan: a query over a transition table is
-- planned with the row count of the first batch that connection saw. Planned for a 2 000-row batch, the idempotency
-- claim was a hash anti join that read the tenant's whole ledger, then did so for every later 1-row batch on that
-- connection (O(mailbox) per ingest call). A join between a transition table and a large table is not safe from this
-- with any planner setting either: planned while the table was small, a nested loop over a materialized scan of it is
-- cached and turns quadratic as it grows. So no trigger statement joins a large table any more: the claim reads the
-- ledger in a correlated subquery (a lookup by the primary key per inserted row, the only plan a subquery with both key
-- columns bound has once sequential scans are off), and the search index loses documents through
-- pat.email_search_forget, one primary-key DELETE per email. Joins between the two transition tables of an UPDATE stay
-- free to hash: their size is the statement's own.
--
-- Every PL/pgSQL function of the schema, and why its cost does not grow with the data:
-- - pat.claim_email_idempotency_keys (ingest, every INSERT into pat.emails): ledger read by key (this file).
-- - pat.email_search_on_delete (DELETE from pat.emails): pat.email_search_forget, by key (this file).
-- - pat.email_search_on_update (UPDATE of pat.emails): keys compared between the transition tables, then
--   pat.email_search_forget by key and an INSERT ... ON CONFLICT, which probes the primary key per row (this file).
-- - pat.email_search_on_insert: inserts from the transition table, reads no table.
-- - pat.audit_row_change (row trigger): one INSERT; its lookup is pg_inherits by inhrelid, a catalog that grows
--   with the partition count (hundreds of rows), not with the mail.
-- - pat.touch_updated_at, pat.is_iana_timezone: read no table.
-- - pat.search_email_ids, pat.email_search_path: plan_cache_mode = force_custom_plan (planned per call with the
--   tenant and the query as constants); the path comes from a sample of the tenant's newest mail and the walk is
--   bounded by its window (V012).

CREATE OR REPLACE FUNCTION pat.claim_email_idempotency_keys() RETURNS trigger
    LANGUAGE plpgsql
    SET enable_seqscan = off
    AS $$
DECLARE
    lost bigint;
BEGIN
    WITH unclaimed AS MATERIALIZED (
        SELECT n.tenant_id, n.idempotency_key, n.id, n.received_at
        FROM inserted_emails n
        WHERE (
            SELECT k.email_id FROM pat.email_idempotency_keys k
            WHERE k.tenant_id = n.tenant_id AND k.idempotency_key = n.idempotency_key
        ) IS DISTINCT FROM n.id
    ), claimed AS (
        INSERT INTO pat.email_idempotency_keys (tenant_id, idempotency_key, email_id, received_at)
        SELECT tenant_id, idempotency_key, id, received_at FROM unclaimed
        ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM unclaimed) - (SELECT count(*) FROM claimed) INTO lost;
    IF lost > 0 THEN
        RAISE EXCEPTION 'duplicate idempotency key: % inserted email(s) reuse a key claimed by another email', lost
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'email_idempotency_keys_pkey';
    END IF;
    RETURN NULL;
END
$$;

-- The search documents of these emails leave the index, one primary-key lookup per email.
CREATE FUNCTION pat.email_search_forget(tenants uuid[], emails uuid[], received timestamptz[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pat
    SET enable_seqscan = off
    AS $$
BEGIN
    FOR i IN 1 .. coalesce(cardinality(emails), 0) LOOP
        DELETE FROM pat.email_search
        WHERE tenant_id = tenants[i] AND email_id = emails[i] AND received_at = received[i];
    END LOOP;
END
$$;
-- Only the search triggers (as the owner) call it.
REVOKE ALL ON FUNCTION pat.email_search_forget(uuid[], uuid[], timestamptz[]) FROM PUBLIC, pat_app, pat_readonly;

CREATE OR REPLACE FUNCTION pat.email_search_on_delete() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pat
    AS $$
BEGIN
    PERFORM pat.email_search_forget(array_agg(o.tenant_id), array_agg(o.id), array_agg(o.received_at))
    FROM removed o;
    RETURN NULL;
END
$$;

-- UPDATE: a row leaves the index when it is soft-deleted, and is re-indexed when its subject, sender or body
-- changes, when it is restored, or when it moves (received_at). Status and other changes touch nothing.
CREATE OR REPLACE FUNCTION pat.email_search_on_update() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pat
    AS $$
DECLARE
    gone_tenants uuid[];
    gone_emails uuid[];
    gone_received timestamptz[];
BEGIN
    SELECT array_agg(o.tenant_id), array_agg(o.id), array_agg(o.received_at)
    INTO gone_tenants, gone_emails, gone_received
    FROM old_rows o
    WHERE NOT EXISTS (
        SELECT FROM new_rows n
        WHERE n.tenant_id = o.tenant_id AND n.id = o.id AND n.received_at = o.received_at
            AND n.deleted_at IS NULL AND o.deleted_at IS NULL
            AND n.subject IS NOT DISTINCT FROM o.subject AND n.sender IS NOT DISTINCT FROM o.sender
            AND n.text_body IS NOT DISTINCT FROM o.text_body
    );
    IF gone_emails IS NOT NULL THEN
        PERFORM pat.email_search_forget(gone_tenants, gone_emails, gone_received);
    END IF;
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
