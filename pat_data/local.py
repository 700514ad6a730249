"""Private PostgreSQL and PgBouncer servers started from the Debian binaries (no Docker), for tests and `make local`.

Each server gets its own data directory and a free loopback port, runs as an unprivileged user (initdb and
PgBouncer refuse root), and is stopped by pid. PgBouncer runs in transaction mode in front of PostgreSQL, as it does
in the cloud.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

PG_BIN = Path(os.environ.get("PAT_PG_BIN", "/usr/lib/postgresql/15/bin"))
PGBOUNCER_BIN = Path(os.environ.get("PAT_PGBOUNCER_BIN", "/usr/sbin/pgbouncer"))
SERVICE_USER = os.environ.get("PAT_SERVICE_USER", "postgres")
SUPERUSER = "postgres"


class LocalServerError(RuntimeError):
    """A local server could not be started; the message says which binary/log to look at."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_service_user(command: list[str]) -> list[str]:
    """Run as the unprivileged service user when we are root (initdb, postgres and pgbouncer refuse root)."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", SERVICE_USER, "--", *command]


def _ensure_traversable(path: Path) -> None:
    """The service user must reach its data directory: add search (x) permission on our own ancestors."""
    if os.geteuid() != 0:
        return
    for parent in path.resolve().parents:
        info = parent.stat()
        if info.st_uid == 0 and not info.st_mode & 0o001:
            parent.chmod(info.st_mode | 0o001)


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVICE_USER)
        for item in [path, *path.rglob("*")]:
            os.chown(item, user.pw_uid, user.pw_gid)


def _wait_for_port(port: int, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise LocalServerError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s; log {log}:\n{tail}")


def _require(binary: Path, package: str) -> None:
    if not binary.exists():
        raise LocalServerError(
            f"{binary} not found: install the Debian package '{package}' (make test does it as root)"
        )


@dataclass
class LocalPostgres:
    """A private PostgreSQL 15 cluster with SCRAM password auth on a free loopback port."""

    root: Path
    password: str = "local-superuser-password"
    port: int = field(default_factory=free_port)

    @property
    def data_dir(self) -> Path:
        return self.root / "pgdata"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def dsn(self, user: str = SUPERUSER, password: str | None = None, dbname: str = "postgres") -> str:
        secret = self.password if password is None and user == SUPERUSER else password
        auth = f"{user}:{secret}" if secret else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}?sslmode=disable"

    def start(self) -> LocalPostgres:
        _require(PG_BIN / "initdb", "postgresql-15")
        self.root.mkdir(parents=True, exist_ok=True)
        _ensure_traversable(self.root)
        if not (self.data_dir / "PG_VERSION").exists():
            pwfile = self.root / "pwfile"
            pwfile.write_text(self.password)
            _own(self.root)
            subprocess.run(
                _as_service_user([str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                                  "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8", "--no-sync"]),
                check=True, capture_output=True,
            )  # fmt: skip
            pwfile.unlink()
        _own(self.root)
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            "-c fsync=off -c max_connections=300 -c shared_buffers=256MB -c log_min_messages=warning"
        )
        subprocess.run(
            _as_service_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log), "-o", options,
                              "-w", "-t", "60", "start"]),
            check=True, capture_output=True,
        )  # fmt: skip
        _wait_for_port(self.port, 30, self.log)
        return self

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            subprocess.run(
                _as_service_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]),
                check=False, capture_output=True,
            )  # fmt: skip


@dataclass
class LocalPgBouncer:
    """PgBouncer in transaction mode in front of a LocalPostgres, with users and passwords given explicitly."""

    root: Path
    postgres: LocalPostgres
    users: dict[str, str]
    port: int = field(default_factory=free_port)
    pool_size: int = 20
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.root / "pgbouncer.log"

    def dsn(self, user: str, dbname: str = "postgres") -> str:
        return f"postgresql://{user}:{self.users[user]}@127.0.0.1:{self.port}/{dbname}?sslmode=disable"

    def start(self) -> LocalPgBouncer:
        _require(PGBOUNCER_BIN, "pgbouncer")
        self.root.mkdir(parents=True, exist_ok=True)
        _ensure_traversable(self.root)
        userlist = "".join(f'"{user}" "{password}"\n' for user, password in self.users.items())
        (self.root / "userlist.txt").write_text(userlist)
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.postgres.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = scram-sha-256\nauth_file = {self.root / 'userlist.txt'}\n"
            f"pool_mode = transaction\ndefault_pool_size = {self.pool_size}\nmax_client_conn = 1000\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.log}\npidfile = {self.root / 'pgbouncer.pid'}\n"
            "tcp_keepalive = 1\ntcp_keepidle = 240\n"
        )
        _own(self.root)
        self.process = subprocess.Popen(
            _as_service_user([str(PGBOUNCER_BIN), str(self.root / "pgbouncer.ini")]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, 15, self.log)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@contextlib.contextmanager
def postgres_with_pgbouncer(root: Path, users: dict[str, str]) -> Iterator[tuple[LocalPostgres, LocalPgBouncer]]:
    """Start both (users are created in PostgreSQL with their passwords), yield, and always tear down."""
    postgres = LocalPostgres(root / "postgres").start()
    bouncer: LocalPgBouncer | None = None
    try:
        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            for user, password in users.items():
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(password))
                )
        bouncer = LocalPgBouncer(root / "pgbouncer", postgres, users).start()
        yield postgres, bouncer
    finally:
        if bouncer:
            bouncer.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def create_owner_database(
    postgres: LocalPostgres,
    *,
    owner: str = "pat_owner",
    password: str = "local-owner-password",  # noqa: S107 - throwaway local server
    dbname: str = "pat",
) -> str:
    """Mirror Aurora's master user: a non-superuser owner role that may create roles, owning database `dbname`.

    Returns the owner's DSN for that database (what the migrator uses). Idempotent.
    """
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone()
        if not exists:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
                    sql.Identifier(owner), sql.Literal(password)
                )
            )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(owner)))
    return postgres.dsn(owner, password, dbname)
