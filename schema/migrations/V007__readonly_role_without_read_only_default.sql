-- pat_readonly loses the role-level `default_transaction_read_only = on` that V001 gave it.
-- Secrets Manager's hosted single-user rotation logs in AS pat_readonly and runs `ALTER USER pat_readonly WITH
-- PASSWORD ...`; in a read-only transaction PostgreSQL refuses that ("cannot execute ALTER ROLE in a read-only
-- transaction"), so every rotation of pat_readonly's secret would fail. The setting never protected anything either:
-- any session may run `SET TRANSACTION READ WRITE`. What keeps pat_readonly from writing is its grants alone (SELECT
-- only, no role memberships, nothing owned), checked in tests/data/test_login_roles.py with the rotation itself.
-- V001 stays as applied (its checksum is recorded); the role is shared by every database of the cluster.
ALTER ROLE pat_readonly RESET default_transaction_read_only;
