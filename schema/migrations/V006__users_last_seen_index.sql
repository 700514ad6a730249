-- pat:transactional=false
-- Built CONCURRENTLY so a populated users table keeps taking writes, which is why this file runs outside a
-- transaction. If the build is interrupted it leaves an INVALID index: the engine then refuses to continue and
-- names it (drop it, then re-run; see docs/migrations.md).
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_tenant_last_seen_idx
    ON pat.users (tenant_id, last_seen_at DESC) WHERE deleted_at IS NULL;
