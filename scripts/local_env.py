"""The local environment (`make local`, `make local-down`, `make local-reset`, `make seed`).

The same private PostgreSQL 17.9 + PgBouncer (transaction mode) + 3-master Redis cluster the tests use, but
persistent under `.local/` on fixed ports, with the schema applied through the same code path as the migrator
Lambda (`pat_data.schema_deploy.deploy_schema`: migrate, maintain partitions, set login passwords). Re-running is
idempotent. `.local/env.sh` exports what `patops --env local` and the benchmark read.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import psycopg

from pat_data.connect import pool, target_from_dsn
from pat_data.local import (
    LocalPgBouncer,
    LocalPostgres,
    LocalRedisCluster,
    create_owner_database,
    local_env_settings,
)
from pat_data.partitions import PartitionMaintainer, load_config
from pat_data.repositories import Database, EmailRepository, NewEmail, add_attachment
from pat_data.schema_deploy import deploy_schema

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".local"
POSTGRES_PORT, PGBOUNCER_PORT = 55432, 56432
# Redis also binds port + 10000 for the cluster bus, so the node ports stay below 55536.
REDIS_PORTS = (45001, 45002, 45003)
PASSWORDS = {"pat_app": "local-app-password", "pat_readonly": "local-readonly-password"}
OWNER_PASSWORD = "local-owner-password"  # noqa: S105 - loopback-only development server
PARTITION_ENV = "dev"


def servers() -> tuple[LocalPostgres, LocalPgBouncer, LocalRedisCluster]:
    postgres = LocalPostgres(LOCAL / "postgres", port=POSTGRES_PORT, settings=local_env_settings())
    bouncer = LocalPgBouncer(LOCAL / "pgbouncer", postgres, dict(PASSWORDS), port=PGBOUNCER_PORT, pool_size=40)
    redis = LocalRedisCluster(LOCAL / "redis", ports=list(REDIS_PORTS), maxmemory_mb=256)
    return postgres, bouncer, redis


def settings(
    postgres: LocalPostgres, bouncer: LocalPgBouncer, redis: LocalRedisCluster, owner_dsn: str
) -> dict[str, str]:
    return {
        "PAT_LOCAL_DSN": owner_dsn,
        "PAT_LOCAL_APP_DSN": bouncer.dsn("pat_app", "pat"),
        "PAT_LOCAL_APP_DIRECT_DSN": postgres.dsn("pat_app", PASSWORDS["pat_app"], "pat"),
        "PAT_LOCAL_READONLY_DSN": bouncer.dsn("pat_readonly", "pat"),
        "PAT_LOCAL_PGBOUNCER_CONSOLE": bouncer.dsn("pat_app", "pgbouncer"),
        "PAT_LOCAL_CACHE": f"127.0.0.1:{redis.ports[0]}:{redis.password}",
        "PAT_LOCAL_PARTITION_ENV": PARTITION_ENV,
    }


def up() -> dict[str, str]:
    started = time.perf_counter()
    postgres, bouncer, redis = servers()
    postgres.start()
    owner_dsn = create_owner_database(postgres, password=OWNER_PASSWORD, dbname="pat")
    result = deploy_schema(
        target_from_dsn(owner_dsn),
        migrations_dir=ROOT / "schema" / "migrations",
        partitions_file=ROOT / "schema" / "partitions.toml",
        env=PARTITION_ENV,
        logins=PASSWORDS,
        deadline=time.monotonic() + 60,
    )
    bouncer.start()
    redis.start()
    values = settings(postgres, bouncer, redis, owner_dsn)
    (LOCAL / "env.json").write_text(json.dumps(values, indent=2))
    (LOCAL / "env.sh").write_text("".join(f"export {key}='{value}'\n" for key, value in values.items()))
    applied = ", ".join(result.migrate.applied) or "none"
    elapsed = time.perf_counter() - started
    print(
        f"local environment up in {elapsed:.1f}s (migrations applied: {applied}; at {result.migrate.current_version})"
    )
    for key, value in values.items():
        print(f"  {key}={value}")
    print("  source .local/env.sh   # then e.g. scripts/patops --env local migrations info; make seed; make bench")
    return values


def down() -> None:
    postgres, bouncer, redis = servers()
    bouncer.stop()
    redis.stop(remove=False)
    postgres.stop()
    print("local environment stopped (data kept in .local/; make local-reset wipes it)")


def reset() -> None:
    down()
    shutil.rmtree(LOCAL, ignore_errors=True)
    print("local environment wiped")


def seed(tenants: int, emails_per_tenant: int, months: int) -> None:
    values = json.loads((LOCAL / "env.json").read_text())
    owner = target_from_dsn(values["PAT_LOCAL_DSN"])
    now = datetime.now(UTC)
    # Time-travel maintenance so the older seeded months have partitions (instead of landing in DEFAULT).
    config = load_config(ROOT / "schema" / "partitions.toml", PARTITION_ENV)
    for back in range(months - 1, -1, -1):
        moment = now - timedelta(days=30 * back)
        PartitionMaintainer(owner, config, now=partial(lambda at: at, moment)).run()
    app_pool = pool(target_from_dsn(values["PAT_LOCAL_APP_DSN"], pooled=True), min_size=1, max_size=4)
    db = Database(app_pool)
    repo = EmailRepository(db)
    rng = random.Random(42)  # noqa: S311 - reproducible sample data
    words = (
        "invoice",
        "meeting",
        "quarterly",
        "report",
        "shipment",
        "contract",
        "renewal",
        "welcome",
        "security",
        "update",
        "payment",
        "reminder",
        "project",
        "roadmap",
        "feedback",
        "offer",
    )
    started, total = time.perf_counter(), 0
    try:
        with psycopg.connect(values["PAT_LOCAL_DSN"], autocommit=True) as conn:
            tenant_ids = []
            for index in range(tenants):
                row = (
                    conn.execute(
                        "INSERT INTO pat.tenants (slug, name, plan) VALUES (%s, %s, %s) "
                        "ON CONFLICT DO NOTHING RETURNING id",
                        (f"seed-{index}", f"Seed tenant {index}", rng.choice(["free", "team", "business"])),
                    ).fetchone()
                    or conn.execute(
                        "SELECT id FROM pat.tenants WHERE slug = %s AND deleted_at IS NULL", (f"seed-{index}",)
                    ).fetchone()
                )
                assert row is not None
                tenant_ids.append(row[0])
        for tenant_id in tenant_ids:
            batch = []
            for i in range(emails_per_tenant):
                subject = " ".join(rng.sample(words, 3)).capitalize()
                batch.append(
                    NewEmail(
                        idempotency_key=f"seed-{tenant_id}-{i}",
                        received_at=now - timedelta(minutes=rng.randrange(0, months * 30 * 24 * 60)),
                        message_id=f"<{uuid.uuid4()}@seed.pat>",
                        sender=f"{rng.choice(words)}@{rng.choice(['example.com', 'acme.test', 'mail.test'])}",
                        recipients=[f"user{rng.randrange(50)}@tenant.test"],
                        subject=subject,
                        text_body=" ".join(rng.choices(words, k=80)),
                        size_bytes=rng.randrange(2_000, 200_000),
                        status=rng.choice(["received", "read", "archived"]),
                    )
                )
            for start in range(0, len(batch), 5000):
                total += repo.ingest(tenant_id, batch[start : start + 5000]).inserted
            for item in repo.page(tenant_id, limit=20).items:
                repo.add_tag(tenant_id, item["id"], rng.choice(["urgent", "finance", "customers"]))
                add_attachment(
                    db,
                    tenant_id,
                    email_id=item["id"],
                    filename="document.pdf",
                    content_type="application/pdf",
                    size_bytes=rng.randrange(10_000, 5_000_000),
                    sha256_hex=uuid.uuid4().hex * 2,
                )
    finally:
        app_pool.close()
    elapsed = time.perf_counter() - started
    print(f"seeded {total} new emails for {tenants} tenants over {months} months in {elapsed:.1f}s (idempotent)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local_env", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up")
    commands.add_parser("down")
    commands.add_parser("reset")
    seeding = commands.add_parser("seed")
    seeding.add_argument("--tenants", type=int, default=5)
    seeding.add_argument("--emails", type=int, default=20_000, help="per tenant")
    seeding.add_argument("--months", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "up":
        up()
    elif args.command == "down":
        down()
    elif args.command == "reset":
        reset()
    else:
        if not (LOCAL / "env.json").exists():
            print("local_env: run `make local` first", file=sys.stderr)
            return 2
        seed(args.tenants, args.emails, args.months)
    return 0


if __name__ == "__main__":
    sys.exit(main())
