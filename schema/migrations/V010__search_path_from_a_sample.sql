-- Search picks its access path from the tenant's own mail, not from table-wide statistics.
--
-- V008's search_email_ids left the choice between the GIN index (tenant + match: cost grows with the number of
-- matches) and the date-ordered walk (cost grows with the rows walked until `candidates` matches) to the planner. Its
-- estimate of a tsquery's selectivity comes from table-wide statistics over all tenants, and it was 4x off for one
-- tenant's two common words (8.5K estimated, 34K matched): it took the GIN path and visited 30K heap pages (p99 up to
-- 485 ms in `make bench`, a 1M-email tenant). Now the function first reads the tenant's newest 2 000 index entries
-- in date order (5 000 when the share found is near the threshold) and counts the matches among them; that sample
-- decides:
--   - at least `candidates` matches, or the whole mailbox read, or a match share of at least candidates / walk_rows
--     (1000 / 60 000): walk the date-ordered index (the newest matches are met within ~60 000 rows at most);
--   - otherwise: the GIN index, whose cost is then bounded by the small share of the mailbox that matches.
-- The choice is made with enable_seqscan and enable_bitmapscan / enable_indexscan set transaction-locally inside the
-- function; the function's own SET clauses for them restore them when it returns (PostgreSQL: "If a SET clause is
-- attached to a function, then the effects of a SET LOCAL command executed inside the function for the same variable
-- are restricted to the function"). The result is the same as before: the `candidates` newest matches of the whole
-- mailbox, ranked (tests/data/test_search.py compares it with the plain query under RLS). jit = off: JIT compilation
-- costs tens of milliseconds and pays off only for long analytical queries
-- (https://www.postgresql.org/docs/17/jit-decision.html).
-- Measurements and the limits of the rule: docs/architecture.md#search.

-- The sample and the rule, apart so that tests can ask which path a query takes (as the owner; nobody else may).
CREATE FUNCTION pat.email_search_path(tenant uuid, q tsquery, candidates integer) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pat
    SET plan_cache_mode = force_custom_plan
    SET jit = off
    AS $$
#variable_conflict error
DECLARE
    -- Where the two paths cost the same, measured on the bench's 1M-email mailbox: the walk reads ~0.75 us per row,
    -- the GIN path ~2.9 us per match, so they meet at a match share of ~1.6 % (1000 / 60 000).
    walk_rows constant integer := 60000;
    threshold real := candidates::real / walk_rows;
    probe_rows integer := 2000;
    scanned integer;
    hits integer;
    share real;
BEGIN
    LOOP
        -- The tenant's newest probe_rows index entries, read in date order (no tsquery condition for the planner to
        -- estimate: the date-ordered index is its only sensible path), and how many of them match.
        SELECT count(*), count(*) FILTER (WHERE p.search @@ q) INTO scanned, hits
        FROM (
            SELECT s.search FROM pat.email_search s WHERE s.tenant_id = tenant
            ORDER BY s.received_at DESC, s.email_id DESC LIMIT probe_rows
        ) p;
        IF hits >= candidates OR scanned < probe_rows THEN
            RETURN 'walk';  -- the sample holds the answer, or is the whole mailbox
        END IF;
        share := hits::real / scanned;
        -- Near the threshold a 2 000-row sample is too noisy (at 1.6 %, ~32 matches): decide on 5 000 rows there.
        EXIT WHEN probe_rows >= 5000 OR share >= 2 * threshold OR share < threshold / 2;
        probe_rows := 5000;
    END LOOP;
    RETURN CASE WHEN share >= threshold THEN 'walk' ELSE 'index' END;
END
$$;
REVOKE ALL ON FUNCTION pat.email_search_path(uuid, tsquery, integer) FROM PUBLIC, pat_app, pat_readonly;

CREATE OR REPLACE FUNCTION pat.search_email_ids(query text, max_results integer, skip integer DEFAULT 0,
                                     candidates integer DEFAULT 1000)
    RETURNS TABLE (email_id uuid, received_at timestamptz, rank real)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pat
    SET plan_cache_mode = force_custom_plan
    SET jit = off
    SET enable_seqscan = on
    SET enable_bitmapscan = on
    SET enable_indexscan = on
    AS $$
#variable_conflict error
DECLARE
    tenant uuid := pat.current_tenant_id();
    q tsquery;
BEGIN
    IF tenant IS NULL THEN
        RAISE EXCEPTION 'pat.search_email_ids: no tenant is set for this transaction'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'run SELECT pat.set_request_context(<tenant id>, <actor>) in the same transaction first';
    END IF;
    IF max_results IS NULL OR max_results NOT BETWEEN 0 AND 10000 OR skip IS NULL OR skip < 0
        OR candidates IS NULL OR candidates NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'pat.search_email_ids: max_results must be 0-10000, skip >= 0, candidates 1-100000'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    q := websearch_to_tsquery('simple', query);
    -- Both paths return the same rows; only their cost differs. Set transaction-locally, restored on return by the
    -- function's own SET clauses for the same settings. No sequential scan either way: the planner's own estimate of
    -- the match count (table-wide statistics) is what this replaces, and with it a scan can look cheaper than either.
    PERFORM set_config('enable_seqscan', 'off', true);
    IF pat.email_search_path(tenant, q, candidates) = 'walk' THEN
        PERFORM set_config('enable_bitmapscan', 'off', true);
    ELSE
        PERFORM set_config('enable_indexscan', 'off', true);
    END IF;
    RETURN QUERY
    SELECT c.email_id, c.received_at, ts_rank_cd(c.search, q) AS r
    FROM (
        SELECT s.email_id, s.received_at, s.search
        FROM pat.email_search s
        WHERE s.tenant_id = tenant AND s.search @@ q
        ORDER BY s.received_at DESC, s.email_id DESC
        LIMIT candidates
    ) c
    ORDER BY r DESC, c.received_at DESC, c.email_id DESC
    LIMIT max_results OFFSET skip;
END
$$;
-- CREATE OR REPLACE keeps V008's grants (EXECUTE for pat_app only); restated so this file says who may call it.
REVOKE ALL ON FUNCTION pat.search_email_ids(text, integer, integer, integer) FROM PUBLIC, pat_readonly;
GRANT EXECUTE ON FUNCTION pat.search_email_ids(text, integer, integer, integer) TO pat_app;
