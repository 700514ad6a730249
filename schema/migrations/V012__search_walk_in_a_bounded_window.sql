-- The date walk of pat.search_email_ids reads a bounded window of the mailbox, then falls back to the GIN index.
--
-- V010 decides the path from a sample of the tenant's newest mail and assumes the share of matches found there holds
-- further back. A word that is frequent in the newest mail and rare before (a burst: a campaign, an incident) breaks
-- that: the sample says 'walk', fewer than `candidates` matches exist in the whole mailbox, and the walk reads all of
-- it looking for them (~0.5-0.75 us a row: 520 ms for the bench's 1M-email tenant). Now the walk reads only mail
-- received since `walk_from`: the time in which, at the rate the sample's mail arrived, 120 000 emails arrive (twice
-- the rows at which the two paths cost the same, so a share measured near the threshold essentially never runs out of
-- it: the true share would have to be under half the sampled one). A bound in time, not in rows, so the match stays
-- a condition of the index scan itself (`received_at >= walk_from` an index condition, `@@` its filter) and the
-- months before it are pruned at plan time. If the walk meets `candidates` matches, or the tenant has no mail older
-- than `walk_from` (one index probe), what it found is the answer, as before; otherwise the GIN index answers (its
-- cost grows with the number of matches, which the walk has just found to be small in the newest mail). Worst case
-- for a burst: the window plus the GIN path instead of the whole mailbox. The window is as good as the assumption
-- that mail arrives at a steady rate: where it arrived faster before the sample, the window holds more rows (still
-- bounded by the mailbox); where slower, fewer (an earlier fallback). The answer is the same in every case: the
-- `candidates` newest matches, ranked.
--
-- pat.email_search_path now returns the window with the path (so it is dropped and created again: a new result
-- type), and says 'all' when its sample read the whole mailbox: the walk there is complete whatever it finds.
-- Measurements: docs/architecture.md#search.

-- Owner-only and called only by pat.search_email_ids, which this file replaces too; the new result type needs a new
-- function (CREATE OR REPLACE cannot change it).
-- squawk-ignore ban-drop-function
DROP FUNCTION pat.email_search_path(uuid, tsquery, integer);
-- enable_sort = off: the sample is the newest rows in date order, which only the date-ordered index gives without
-- reading the tenant's whole mailbox (the primary key (tenant_id, email_id, received_at) plus a sort would).
CREATE FUNCTION pat.email_search_path(tenant uuid, q tsquery, candidates integer, OUT path text,
                                      OUT walk_from timestamptz)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pat
    SET plan_cache_mode = force_custom_plan
    SET jit = off
    SET enable_sort = off
    AS $$
#variable_conflict error
DECLARE
    -- Where the two paths cost the same, measured on the bench's 1M-email mailbox: the walk reads ~0.75 us per row,
    -- the GIN path ~2.9 us per match, so they meet at a match share of ~1.6 % (1000 / 60 000).
    walk_rows constant integer := 60000;
    -- The walk's window: twice walk_rows, in time at the sample's rate of arrival.
    walk_budget constant integer := 120000;
    threshold real := candidates::real / walk_rows;
    probe_rows integer := 2000;
    scanned integer;
    hits integer;
    newest timestamptz;
    oldest timestamptz;
    share real;
BEGIN
    LOOP
        -- The tenant's newest probe_rows index entries, read in date order (no tsquery condition for the planner to
        -- estimate: the date-ordered index is its only sensible path), and how many of them match.
        SELECT count(*), count(*) FILTER (WHERE p.search @@ q), max(p.received_at), min(p.received_at)
        INTO scanned, hits, newest, oldest
        FROM (
            SELECT s.search, s.received_at FROM pat.email_search s WHERE s.tenant_id = tenant
            ORDER BY s.received_at DESC, s.email_id DESC LIMIT probe_rows
        ) p;
        IF scanned < probe_rows THEN
            path := 'all';  -- the sample is the whole mailbox: walking it is the complete answer
            walk_from := '-infinity';
            RETURN;
        END IF;
        walk_from := newest - (newest - oldest) * (walk_budget::double precision / scanned);
        IF hits >= candidates THEN
            path := 'walk';  -- the sample holds the answer
            RETURN;
        END IF;
        share := hits::real / scanned;
        -- Near the threshold a 2 000-row sample is too noisy (at 1.6 %, ~32 matches): decide on 5 000 rows there.
        EXIT WHEN probe_rows >= 5000 OR share >= 2 * threshold OR share < threshold / 2;
        probe_rows := 5000;
    END LOOP;
    path := CASE WHEN share >= threshold THEN 'walk' ELSE 'index' END;
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
    SET enable_sort = on
    AS $$
#variable_conflict error
DECLARE
    tenant uuid := pat.current_tenant_id();
    q tsquery;
    path text;
    walk_from timestamptz;
    ids uuid[];
    dates timestamptz[];
    ranks real[];
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
    SELECT p.path, p.walk_from INTO path, walk_from FROM pat.email_search_path(tenant, q, candidates) p;
    IF path IN ('walk', 'all') THEN
        -- No sort either: the walk must read the date-ordered index and stop at `candidates` matches; the primary key
        -- (whose third column is received_at) plus a sort reads every row of the window (seen in tests).
        PERFORM set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true);
        -- The newest `candidates` matches received since walk_from, the tenant's mail walked in date order.
        SELECT array_agg(w.email_id), array_agg(w.received_at), array_agg(ts_rank_cd(w.search, q))
        INTO ids, dates, ranks
        FROM (
            SELECT s.email_id, s.received_at, s.search
            FROM pat.email_search s
            WHERE s.tenant_id = tenant AND s.received_at >= walk_from AND s.search @@ q
            ORDER BY s.received_at DESC, s.email_id DESC
            LIMIT candidates
        ) w;
        IF path = 'all' OR coalesce(cardinality(ids), 0) = candidates
            OR NOT EXISTS (SELECT 1 FROM pat.email_search s WHERE s.tenant_id = tenant AND s.received_at < walk_from)
        THEN
            RETURN QUERY
            SELECT u.email_id, u.received_at, u.rank
            FROM unnest(ids, dates, ranks) AS u(email_id, received_at, rank)
            ORDER BY u.rank DESC, u.received_at DESC, u.email_id DESC
            LIMIT max_results OFFSET skip;
            RETURN;
        END IF;
        -- Fewer than `candidates` matches in the window and older mail exists: the GIN index finds them all.
        PERFORM set_config('enable_bitmapscan', 'on', true), set_config('enable_sort', 'on', true);
    END IF;
    PERFORM set_config('enable_indexscan', 'off', true);
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
-- CREATE OR REPLACE keeps the grants; restated so this file says who may call it.
REVOKE ALL ON FUNCTION pat.search_email_ids(text, integer, integer, integer) FROM PUBLIC, pat_readonly;
GRANT EXECUTE ON FUNCTION pat.search_email_ids(text, integer, integer, integer) TO pat_app;
