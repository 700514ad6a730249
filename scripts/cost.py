"""`make cost`: a monthly estimate per environment from stacks/config.py and scripts/prices-eu-west-1.json.

Capacity comes from config (ACU range, readers, NAT gateways, endpoints, cache nodes, pooler, backup rules); usage
that config cannot know (ACU utilisation, storage, traffic) comes from the `assumptions` in the price file and is
printed with the result. It is an estimate for reviewers, not a bill.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pat_constructs.network import INTERFACE_ENDPOINTS
from stacks import config
from stacks.alarms import alarm_count

PRICES = Path(__file__).resolve().with_name("prices-eu-west-1.json")
# The price file as parsed JSON: unit prices, per-node-type tables and per-environment assumptions, read by key.
PriceData = dict[str, Any]
KEYS_PER_ENV = 6  # database, cache, logs, backup (Keys stack) + storage + edge logs key; +2 in prod (DR)


@dataclass(frozen=True)
class Line:
    item: str
    detail: str
    usd: float


def estimate(env: config.EnvironmentConfig, data: PriceData) -> list[Line]:  # noqa: PLR0915 - one bill
    p, a, hours = data["prices"], data["assumptions"][env.name], data["hours_per_month"]
    db, cache, storage, backup = env.database, env.cache, env.storage, env.backup
    lines: list[Line] = []

    def add(item: str, detail: str, usd: float) -> None:
        lines.append(Line(item, detail, usd))

    average_acu = db.min_capacity + (db.max_capacity - db.min_capacity) * a["acu_utilisation"]
    # Tier 0-1 readers follow the writer's capacity; tier 2+ scale on their own (assumed at their minimum).
    followers = sum(1 for r in db.readers if r.promotion_tier <= 1)
    independents = len(db.readers) - followers
    instance_acu = average_acu * (1 + followers) + db.min_capacity * independents
    add("Aurora compute", f"{instance_acu:.1f} ACU avg x {hours} h", instance_acu * hours * p["aurora_acu_hour"])
    storage_usd = a["db_storage_gb"] * p["aurora_storage_gb_month"] + a["db_io_millions"] * p["aurora_io_per_million"]
    add("Aurora storage + I/O", f"{a['db_storage_gb']} GB, {a['db_io_millions']}M I/O", storage_usd)
    if db.pooler == "rds_proxy":
        proxy_acu = max(instance_acu, p["rds_proxy_min_acu"])
        add("RDS Proxy", f"{proxy_acu:.1f} ACU billed", proxy_acu * hours * p["rds_proxy_acu_hour"])
    else:
        bouncer = db.pgbouncer
        task = bouncer.cpu / 1024 * p["fargate_vcpu_hour"] + bouncer.memory_mib / 1024 * p["fargate_gb_hour"]
        detail = f"{bouncer.min_tasks} task(s) {bouncer.cpu} CPU / {bouncer.memory_mib} MiB"
        add("PgBouncer (Fargate)", detail, bouncer.min_tasks * task * hours)
        add("NLB (PgBouncer)", f"1 NLB, {a['lcu']} LCU", (p["nlb_hour"] + a["lcu"] * p["nlb_lcu_hour"]) * hours)
    nat = env.network.nat_gateways
    nat_usd = nat * hours * p["nat_gateway_hour"] + a["nat_gb"] * p["nat_gateway_gb"]
    add("NAT gateways", f"{nat} x {hours} h + {a['nat_gb']} GB", nat_usd)
    azs, endpoints = len(env.network.availability_zones), len(INTERFACE_ENDPOINTS)
    add("Interface endpoints", f"{endpoints} x {azs} AZ", endpoints * azs * hours * p["interface_endpoint_az_hour"])
    nodes = cache.shards * (cache.replicas_per_shard + 1)
    add("ElastiCache", f"{nodes} x {cache.node_type}", nodes * p["elasticache_node_hour"][cache.node_type] * hours)
    snapshot_gb = a["cache_snapshot_gb"] * cache.snapshot_retention_days / 30
    add(
        "Cache snapshots",
        f"{a['cache_snapshot_gb']} GB x {cache.snapshot_retention_days} d",
        snapshot_gb * p["elasticache_snapshot_gb_month"],
    )
    glacier = 0.5 if storage.glacier_after_days else 0.0
    per_gb = (1 - glacier) * p["s3_intelligent_tiering_gb_month"] + glacier * p["s3_glacier_gb_month"]
    s3 = a["attachments_gb"] * per_gb
    add("S3 attachments", f"{a['attachments_gb']} GB ({glacier:.0%} in Glacier)", s3)
    if storage.replication_region:
        transfer = a["attachments_gb"] / 12 * p["s3_replication_gb"]  # a year's data replicated evenly
        add("S3 replication", f"copy in {storage.replication_region}", s3 + transfer)
    requests = a["cdn_million_requests"] * 100 * p["cloudfront_10k_https_requests"]
    add(
        "CloudFront",
        f"{a['cdn_gb']} GB, {a['cdn_million_requests']}M requests",
        a["cdn_gb"] * p["cloudfront_gb_eu"] + requests,
    )
    points = backup.daily_retention_days + (backup.weekly_retention_days or 0) / 7
    points += (backup.monthly_retention_days or 0) / 30
    backup_gb = a["db_storage_gb"] * 0.3 * points / 10  # incremental snapshots: ~30 % churn, de-duplicated
    backup_usd = backup_gb * p["aurora_backup_gb_month"] + a["attachments_gb"] * p["backup_s3_gb_month"]
    if backup.copy_region:
        backup_usd = 2 * backup_usd + a["db_storage_gb"] * 0.3 * p["backup_copy_gb"] * 30
    add("AWS Backup", f"{points:.0f} restore points" + (" + DR copies" if backup.copy_region else ""), backup_usd)
    alarms = alarm_count(env)
    keys = KEYS_PER_ENV + (2 if backup.copy_region else 0)
    fixed = keys * p["kms_key_month"] + 3 * p["secret_month"] + alarms * p["cloudwatch_alarm_month"]
    add(
        "KMS, secrets, alarms, dashboard",
        f"{keys} keys, 3 secrets, {alarms} alarms",
        fixed + p["cloudwatch_dashboard_month"],
    )
    logs_per_gb = p["cloudwatch_logs_ingest_gb"] + p["cloudwatch_logs_storage_gb_month"]
    add("CloudWatch Logs", f"{a['logs_gb']} GB ingested", a["logs_gb"] * logs_per_gb)
    return lines


def table(envs: list[config.EnvironmentConfig], data: PriceData) -> str:
    bills = {env.name: estimate(env, data) for env in envs}
    items = list(dict.fromkeys(line.item for lines in bills.values() for line in lines))
    header = "| item | " + " | ".join(bills) + " |"
    rows = [header, "|---|" + "---:|" * len(bills)]
    for item in items:
        cells = [next((f"{line.usd:,.0f}" for line in bills[name] if line.item == item), "-") for name in bills]
        rows.append(f"| {item} | " + " | ".join(cells) + " |")
    rows.append(
        "| **total / month (USD)** | "
        + " | ".join(f"**{sum(line.usd for line in lines):,.0f}**" for lines in bills.values())
        + " |"
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cost", description=__doc__)
    parser.add_argument("--env", choices=config.ENV_NAMES, help="one environment (default: all)")
    parser.add_argument("--details", action="store_true", help="each line with its quantities")
    args = parser.parse_args(argv)
    data = json.loads(PRICES.read_text())
    envs = [config.ENVIRONMENTS[args.env]] if args.env else list(config.ENVIRONMENTS.values())
    print(f"Monthly estimate, {data['region']} list prices as of {data['as_of']} ({PRICES.name}); not a bill.\n")
    print(table(envs, data))
    if args.details:
        for env in envs:
            print(f"\n{env.name}:")
            for line in estimate(env, data):
                print(f"  {line.item:34} {line.detail:48} {line.usd:>10,.2f}")
    print("\nAssumptions (usage config cannot know; edit the price file to change them):")
    for env in envs:
        print(f"  {env.name}: {json.dumps(data['assumptions'][env.name])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
