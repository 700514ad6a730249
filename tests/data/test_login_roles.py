"""The login roles as a deploy leaves them, against what AWS and the migrator do to them afterwards.

- Every secret a template rotates can be rotated: Secrets Manager's hosted single-user rotation logs in AS the
  rotated user and changes its own password. The users are derived from the synthesized templates, so a new rotated
  secret is covered without touching this file, and a role setting that blocks the rotation fails here, not at 3 am.
- pat_readonly is protected by grants alone (no role setting, which would break its rotation).
- The migrator's password alignment sends SCRAM verifiers, so a statement log never holds a password, sets a password
  at most once however many deploys run it at the same time, and leaves a role alone while its rotation is running.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pat_data import schema_deploy
from pat_data.connect import Target, connect
from pat_data.local import LocalPgBouncer, LocalPostgres
from pat_data.migrations import flyway_checksum
from pat_data.schema_deploy import LoginPasswordLockError, LoginSecret, ensure_login_passwords
from tests.conftest import Synthesized
from tests.data.conftest import APP_USERS, MIGRATIONS, OWNER, OWNER_PASSWORD, app_connection

DataTier = tuple[LocalPostgres, LocalPgBouncer]
# The only rotation this file knows the statements of (aws-samples/aws-secrets-manager-rotation-lambdas,
# SecretsManagerRDSPostgreSQLRotationSingleUser/lambda_function.py, which the hosted rotation deploys).
SINGLE_USER = "PostgreSQLSingleUser"
READONLY = "pat_readonly"


@dataclass(frozen=True)
class RotatedLogin:
    stack: str
    schedule: str
    username: str
    exclude_characters: str


def _ref(value: Any, where: str) -> str:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(value["Ref"])
    raise AssertionError(f"{where}: {value!r} is not a Ref to a resource in the same template; teach this test it")


def _references(value: Any, logical_id: str) -> bool:
    if isinstance(value, dict):
        return value.get("Ref") == logical_id or any(_references(v, logical_id) for v in value.values())
    if isinstance(value, list):
        return any(_references(v, logical_id) for v in value)
    return False


def _secret_username(resources: dict[str, Any], secret_id: str, where: str) -> str:
    """A cluster's MasterUsername when the secret holds its master password, else the generated secret's username."""
    masters = {
        str(resource["Properties"]["MasterUsername"])
        for resource in resources.values()
        if resource["Type"] == "AWS::RDS::DBCluster"
        and _references(resource["Properties"].get("MasterUserPassword"), secret_id)
    }
    template = resources[secret_id]["Properties"].get("GenerateSecretString", {}).get("SecretStringTemplate")
    templated = json.loads(template).get("username") if template else None
    assert len(masters) <= 1, f"{where}: secret {secret_id} is the master password of several clusters"
    if masters and templated:
        assert masters == {templated}, f"{where}: MasterUsername {masters} but the secret says {templated!r}"
    username = next(iter(masters), None) or templated
    assert username, f"{where}: secret {secret_id} names no username (no SecretStringTemplate, no cluster)"
    return str(username)


def rotated_database_logins(synthesized: Synthesized) -> list[RotatedLogin]:
    """Every AWS::SecretsManager::RotationSchedule of every stack -> the secret it rotates -> that secret's user."""
    found = []
    for stack in synthesized.assembly.stacks:
        resources: dict[str, Any] = stack.template.get("Resources", {})
        for logical_id, resource in resources.items():
            if resource["Type"] != "AWS::SecretsManager::RotationSchedule":
                continue
            where = f"{stack.stack_name}/{logical_id}"
            properties = resource["Properties"]
            hosted = properties.get("HostedRotationLambda")
            assert hosted, f"{where}: not a hosted rotation; add its statements to this test"
            assert hosted["RotationType"] == SINGLE_USER, f"{where}: {hosted['RotationType']}: add it to this test"
            secret_id = _ref(properties["SecretId"], where)
            if resources[secret_id]["Type"] == "AWS::SecretsManager::SecretTargetAttachment":
                secret_id = _ref(resources[secret_id]["Properties"]["SecretId"], where)
            assert resources[secret_id]["Type"] == "AWS::SecretsManager::Secret", f"{where}: rotates {secret_id}?"
            username = _secret_username(resources, secret_id, where)
            found.append(RotatedLogin(stack.stack_name, logical_id, username, hosted.get("ExcludeCharacters", "")))
    return found


def generated_password(exclude_characters: str, length: int = 32) -> str:
    """What GetRandomPassword makes for the rotation: letters, digits and punctuation minus the excluded ones."""
    punctuation = [c for c in string.punctuation if c not in exclude_characters]
    alphabet = [c for c in string.ascii_letters + string.digits if c not in exclude_characters] + punctuation
    body = [secrets.choice(alphabet) for _ in range(length - 1)]
    return "".join(body) + (secrets.choice(punctuation) if punctuation else secrets.choice(alphabet))


def rotate_as_the_user(postgres: LocalPostgres, dbname: str, user: str, current: str, new: str) -> None:
    """set_secret of the single-user rotation: log in as `user` with its current password, change it, commit.

    The Lambda uses PyGreSQL's pgdb (a transaction opened implicitly, parameters interpolated on the client): a
    psycopg ClientCursor outside autocommit behaves the same.
    """
    with (
        psycopg.connect(postgres.dsn(user, current, dbname), connect_timeout=5) as conn,
        psycopg.ClientCursor(conn) as cur,
    ):
        cur.execute("SELECT quote_ident(%s)", (user,))
        row = cur.fetchone()
        assert row is not None
        alter_role = f"ALTER USER {row[0]}"
        cur.execute(alter_role + " WITH PASSWORD %s", (new,))
        conn.commit()


def log_in(postgres: LocalPostgres, dbname: str, user: str, password: str) -> None:
    """test_secret of the single-user rotation: the pending password logs in and runs a query."""
    with psycopg.connect(postgres.dsn(user, password, dbname), connect_timeout=5) as conn:
        conn.execute("SELECT NOW()")
        conn.commit()


def set_password(postgres: LocalPostgres, user: str, password: str) -> None:
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        verifier = conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256").decode()
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(user), sql.Literal(verifier)))


def test_every_rotated_login_survives_its_hosted_single_user_rotation(
    synthesized: Synthesized, data_tier: DataTier, pat_database: Target
) -> None:
    """Run in the migrated database: role settings apply everywhere, database-level ones only there."""
    postgres, _ = data_tier
    logins = rotated_database_logins(synthesized)
    assert logins, "no RotationSchedule in any template: the derivation is broken"
    current = {OWNER: OWNER_PASSWORD, **APP_USERS}
    unknown = {login.username for login in logins} - set(current)
    assert not unknown, f"rotated logins {sorted(unknown)} have no local password: add them to the data tier"
    failures: dict[str, str] = {}
    for username in sorted({login.username for login in logins}):
        excluded = "".join({c for login in logins if login.username == username for c in login.exclude_characters})
        new = generated_password(excluded)
        try:
            rotate_as_the_user(postgres, pat_database.dbname, username, current[username], new)
            log_in(postgres, pat_database.dbname, username, new)
            # And the next rotation, from the new password back to the one the rest of the session uses.
            rotate_as_the_user(postgres, pat_database.dbname, username, new, current[username])
            log_in(postgres, pat_database.dbname, username, current[username])
        except psycopg.Error as exc:
            failures[username] = " ".join(str(exc).split())
        finally:
            set_password(postgres, username, current[username])
    schedules = sorted({f"{login.stack}/{login.schedule}" for login in logins if login.username in failures})
    assert not failures, f"single-user rotation fails for {failures} (schedules: {', '.join(schedules)})"


def test_owner_is_made_like_auroras_master_and_administers_the_login_roles(pat_database: Target) -> None:
    """What RDS gives the master user (LOGIN NOSUPERUSER INHERIT CREATEDB CREATEROLE), nothing more here; PostgreSQL
    16+ lets it alter pat_app/pat_readonly only because it created them (ADMIN OPTION), as V001 does on Aurora."""
    with connect(pat_database) as conn:
        attributes = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolinherit, rolcreatedb, rolcreaterole, rolbypassrls, rolreplication "
            "FROM pg_roles WHERE rolname = current_user"
        ).fetchall()
        administered = conn.execute(
            "SELECT roleid::regrole::text FROM pg_auth_members "
            "WHERE member = current_user::regrole AND admin_option ORDER BY 1"
        ).fetchall()
    assert attributes == [(True, False, True, True, True, False, False)]
    assert set(APP_USERS) <= {role for (role,) in administered}


@pytest.fixture
def readonly(data_tier: DataTier, pat_database: Target) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    with app_connection(data_tier, pat_database, READONLY) as conn:
        yield conn


def test_readonly_role_holds_no_write_privilege_and_no_way_to_one(pat_database: Target) -> None:
    """Catalog view: nothing in schema pat is writable by pat_readonly, and nothing lets it acquire a write."""
    with connect(pat_database) as conn:

        def rows(query: str) -> list[tuple[Any, ...]]:
            return conn.execute(query, {"role": READONLY}).fetchall()

        tables = rows(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'pat' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        )
        assert len(tables) > 5, "schema pat has hardly any tables: is the database migrated?"
        writable = rows(
            "SELECT c.oid::regclass::text, p.privilege FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p(privilege) "
            "WHERE n.nspname = 'pat' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND CASE "
            "WHEN p.privilege IN ('INSERT', 'UPDATE') THEN has_any_column_privilege(%(role)s, c.oid, p.privilege) "
            "ELSE has_table_privilege(%(role)s, c.oid, p.privilege) END"
        )
        assert writable == [], "pat_readonly may write"
        sequences = rows(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'pat' AND CASE WHEN c.relkind = 'S' "
            "THEN has_sequence_privilege(%(role)s, c.oid, 'USAGE, UPDATE') ELSE false END"
        )
        assert sequences == [], "pat_readonly may advance or set sequences"
        definers = rows(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'pat' AND p.prosecdef AND has_function_privilege(%(role)s, p.oid, 'EXECUTE')"
        )
        assert definers == [], "pat_readonly may run SECURITY DEFINER functions (they write as their owner)"
        attributes = rows(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication FROM pg_roles "
            "WHERE rolname = %(role)s"
        )
        assert attributes == [(False, False, False, False, False)]
        memberships = rows("SELECT roleid::regrole::text FROM pg_auth_members WHERE member = %(role)s::regrole")
        assert memberships == [], "pat_readonly may SET ROLE to (or inherit) another role"
        owned = rows(
            "SELECT 'class', oid::regclass::text FROM pg_class WHERE relowner = %(role)s::regrole UNION ALL "
            "SELECT 'schema', nspname::text FROM pg_namespace WHERE nspowner = %(role)s::regrole UNION ALL "
            "SELECT 'function', oid::regprocedure::text FROM pg_proc WHERE proowner = %(role)s::regrole UNION ALL "
            "SELECT 'database', datname::text FROM pg_database WHERE datdba = %(role)s::regrole"
        )
        assert owned == [], "pat_readonly owns objects (an owner can grant itself anything on them)"


def test_readonly_role_cannot_write_any_table_even_in_a_read_write_transaction(
    readonly: psycopg.Connection[tuple[Any, ...]], pat_database: Target
) -> None:
    """Session view, through PgBouncer as clients connect: whatever the session turns on, every write is refused."""
    with connect(pat_database) as owner:
        tables = owner.execute(
            "SELECT c.relname::text, (SELECT attname::text FROM pg_attribute "
            "  WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum LIMIT 1) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'pat' AND c.relkind IN ('r', 'p') ORDER BY 1"
        ).fetchall()
    assert len(tables) > 5, "schema pat has hardly any tables: is the database migrated?"
    statements = [
        sql.SQL("INSERT INTO {table} DEFAULT VALUES"),
        sql.SQL("UPDATE {table} SET {column} = {column}"),
        sql.SQL("DELETE FROM {table}"),
        sql.SQL("TRUNCATE {table}"),
    ]
    allowed = []
    for table, column in tables:
        for statement in statements:
            query = statement.format(table=sql.Identifier("pat", table), column=sql.Identifier(column))
            try:
                with readonly.transaction():
                    readonly.execute("SET TRANSACTION READ WRITE")  # what a session can turn on for itself
                    readonly.execute(query)
                allowed.append(query.as_string(readonly))
            except psycopg.errors.InsufficientPrivilege:
                continue
            except psycopg.Error as exc:  # e.g. a constraint: the privilege check passed
                allowed.append(f"{query.as_string(readonly)} ({type(exc).__name__})")
    assert allowed == [], "pat_readonly got past the privilege check"
    for role in (OWNER, "pat_app"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), readonly.transaction():
            readonly.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))


V001_CLAIM = "-- Sessions of the read-only role cannot write even where a grant slips through."


def test_readonly_is_kept_from_writing_by_grants_alone_whatever_its_session_default(
    data_tier: DataTier, pat_database: Target
) -> None:
    """V001 says pat_readonly "cannot write even where a grant slips through" (its role-level
    `default_transaction_read_only = on`). That is false: a default is only where a session starts, and any session
    may run `SET TRANSACTION READ WRITE` (or change its own role's defaults). V007 removed the setting; what refuses
    the write is the missing grant (42501), never the read-only default (25006).

    V001 keeps the sentence: the engine's checksum is Flyway's, over every line including comments, so correcting it
    would fail `validate` on every database that applied V001 (docs/architecture.md states the truth instead)."""
    v001 = (MIGRATIONS / "V001__roles_schema_and_helpers.sql").read_text()
    assert V001_CLAIM in v001
    assert flyway_checksum(v001.replace(V001_CLAIM, "-- Corrected.")) != flyway_checksum(v001)

    postgres, _ = data_tier
    dsn = postgres.dsn(READONLY, APP_USERS[READONLY], pat_database.dbname)
    # What the role-level setting did: every session starts read-only.
    with psycopg.connect(dsn, options="-c default_transaction_read_only=on") as conn:
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
        conn.rollback()
        with conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION READ WRITE")
            assert conn.execute("SHOW transaction_read_only").fetchone() == ("off",)
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
                conn.execute("INSERT INTO pat.tags DEFAULT VALUES")
    assert refused.value.sqlstate == "42501"
    assert refused.value.diag.message_primary == "permission denied for table tags"


def test_password_alignment_logs_the_scram_verifier_never_the_password(
    data_tier: DataTier, new_database: Callable[[], Target]
) -> None:
    """`ensure_login_passwords` with every statement logged: the log has the verifier, not the password."""
    postgres, _ = data_tier
    owner = new_database()
    role, password = f"pat_log_probe_{uuid.uuid4().hex[:8]}", f"probe-{secrets.token_urlsafe(24)}"
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:  # the harness's own server: superuser settings
        database = sql.Identifier(owner.dbname)
        conn.execute(sql.SQL("ALTER DATABASE {} SET log_statement = 'all'").format(database))
        conn.execute(sql.SQL("ALTER DATABASE {} SET log_min_duration_statement = 0").format(database))
    with connect(owner, autocommit=True) as conn:  # a login role the owner created, like V001's
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    log_start = postgres.log.stat().st_size
    try:
        assert ensure_login_passwords(owner, {role: password}).changed == [role]
        with psycopg.connect(postgres.dsn(role, password, owner.dbname)) as conn:
            conn.execute("SELECT 1")
        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
    finally:
        with connect(owner, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    with postgres.log.open(errors="replace") as log_file:
        log_file.seek(log_start)
        log = log_file.read()
    assert stored is not None
    assert str(stored[0]).startswith("SCRAM-SHA-256$")
    statements = [line for line in log.splitlines() if "statement: ALTER ROLE" in line and role in line]
    assert statements, f"the ALTER ROLE was not logged (log_statement = all):\n{log[-3000:]}"
    assert all(f"PASSWORD '{stored[0]}'" in line for line in statements), statements
    assert password not in log


@pytest.fixture
def probe_role(new_database: Callable[[], Target]) -> Iterator[tuple[Target, str]]:
    """A fresh database and a login role without a password, created by its owner like V001's roles."""
    owner = new_database()
    role = f"pat_probe_{uuid.uuid4().hex[:8]}"
    with connect(owner, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        yield owner, role
    finally:
        with connect(owner, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def logs_in(owner: Target, role: str, password: str) -> bool:
    try:
        with psycopg.connect(replace(owner, user=role, password=password).conninfo(), connect_timeout=5):
            return True
    except psycopg.OperationalError:
        return False


def test_concurrent_alignments_set_a_password_at_most_once(
    probe_role: tuple[Target, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deploys at once: the check-then-set is serialized by the advisory lock, so the second checks after the
    first has set the password, finds that it logs in, and sets nothing. The login check is slowed down to hold the
    check-then-set window open (without the lock both threads set it)."""
    owner, role = probe_role
    password = f"probe-{secrets.token_urlsafe(24)}"
    real_check = schema_deploy._logs_in
    checks: list[bool] = []

    def slow_check(target: Target, user: str, candidate: str) -> bool:
        result = real_check(target, user, candidate)
        checks.append(result)
        time.sleep(0.5)
        return result

    monkeypatch.setattr(schema_deploy, "_logs_in", slow_check)
    start = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def deploy() -> None:
        start.wait()
        try:
            results.append(ensure_login_passwords(owner, {role: password}).changed)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=deploy) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(results) == [[], [role]], "the password was set by both deploys (or by none)"
    assert checks == [False, True]  # the second check ran after the first deploy's ALTER ROLE
    assert logs_in(owner, role, password)


def test_alignment_waits_for_the_lock_a_bounded_time(probe_role: tuple[Target, str]) -> None:
    owner, role = probe_role
    with psycopg.connect(owner.conninfo(), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (schema_deploy.LOGIN_LOCK_KEY,))
        with pytest.raises(LoginPasswordLockError) as waited:
            ensure_login_passwords(owner, {role: "never-set"}, lock_timeout="200ms")
    assert str(waited.value) == (
        f"another schema deploy held the login-password lock (advisory key {schema_deploy.LOGIN_LOCK_KEY}) for more "
        "than 200ms: run this deploy again when it has finished"
    )
    assert not logs_in(owner, role, "never-set")


def test_a_rotation_in_progress_is_not_fought(probe_role: tuple[Target, str]) -> None:
    """Between the rotation's setSecret and finishSecret the database holds AWSPENDING and AWSCURRENT no longer logs
    in: the role is reported and left alone, so the rotation's testSecret still logs in with AWSPENDING."""
    owner, role = probe_role
    current, pending = "current-password", "pending-password"
    ensure_login_passwords(owner, {role: current})
    ensure_login_passwords(owner, {role: pending})  # setSecret
    reads: list[str] = []

    def read_secret(name: str) -> LoginSecret:
        reads.append(name)
        return LoginSecret(password=current, rotating=True)

    alignment = ensure_login_passwords(owner, {role: current}, read_secret=read_secret)
    assert (alignment.changed, alignment.rotating, reads) == ([], [role], [role])
    assert logs_in(owner, role, pending)  # testSecret passes
    assert not logs_in(owner, role, current)


def test_a_rotation_finished_since_the_deploy_read_the_secret_is_kept(probe_role: tuple[Target, str]) -> None:
    """The deploy read AWSCURRENT before finishSecret moved it: the re-read finds the new password logging in."""
    owner, role = probe_role
    old, new = "old-password", "new-password"
    ensure_login_passwords(owner, {role: new})
    alignment = ensure_login_passwords(owner, {role: old}, read_secret=lambda _: LoginSecret(password=new))
    assert (alignment.changed, alignment.rotating) == ([], [])
    assert logs_in(owner, role, new)
