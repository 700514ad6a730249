-- The idempotency ledger is claimed once per INSERT statement instead of once per row.
--
-- V003's BEFORE INSERT row trigger ran a PL/pgSQL INSERT ... ON CONFLICT and an EXISTS probe for every email
-- (~11 % of ingest time). This statement-level AFTER INSERT trigger sees every row the statement inserted (its
-- transition table, whatever partition each row was routed to) and, in one set-based pass, claims the key of every
-- row whose key is not already claimed for that very email, then fails the whole statement if any such claim lost.
-- The guarantee is unchanged: no INSERT into pat.emails, by any role, commits a row whose key is not in the ledger
-- for that email. Batch ingest claims first (ON CONFLICT DO NOTHING, in the same statement) and inserts only the
-- winners, so here it costs one anti-join against the ledger's primary key and no insert.
-- pat_app cannot skip it: it has no grant on partitions (so every insert goes through the parent and fires this
-- trigger), no TRIGGER privilege and does not own the table (so it cannot disable it), and
-- session_replication_role needs a superuser.

CREATE FUNCTION pat.claim_email_idempotency_keys() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    lost bigint;
BEGIN
    WITH unclaimed AS MATERIALIZED (
        SELECT n.tenant_id, n.idempotency_key, n.id, n.received_at
        FROM inserted_emails n
        WHERE NOT EXISTS (
            SELECT FROM pat.email_idempotency_keys k
            WHERE k.tenant_id = n.tenant_id AND k.idempotency_key = n.idempotency_key AND k.email_id = n.id
        )
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

CREATE TRIGGER emails_claim_idempotency_keys AFTER INSERT ON pat.emails
    REFERENCING NEW TABLE AS inserted_emails
    FOR EACH STATEMENT EXECUTE FUNCTION pat.claim_email_idempotency_keys();

DROP TRIGGER emails_claim_idempotency_key ON pat.emails;
-- Only the trigger dropped above called it; no client does (EXECUTE on trigger functions is meaningless).
-- squawk-ignore ban-drop-function
DROP FUNCTION pat.claim_email_idempotency_key();

-- Ingest no longer stages rows in a temporary table (a temp table pins an RDS Proxy session).
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM pat_app', current_database());
END
$$;
