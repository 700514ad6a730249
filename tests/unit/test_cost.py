"""`make cost` follows the config: capacity from stacks/config.py, unit prices from one dated data file."""

from __future__ import annotations

import dataclasses
import json

from scripts import cost
from stacks import config

DATA = json.loads(cost.PRICES.read_text())


def total(env: config.EnvironmentConfig) -> float:
    return sum(line.usd for line in cost.estimate(env, DATA))


def test_every_env_has_a_positive_estimate_and_the_price_file_says_where_prices_come_from() -> None:
    assert {"region", "as_of", "_about"} <= set(DATA)
    for env in config.ENVIRONMENTS.values():
        lines = cost.estimate(env, DATA)
        assert all(line.usd >= 0 for line in lines)
        assert total(env) > 0
    assert (
        total(config.ENVIRONMENTS["prod"]) > total(config.ENVIRONMENTS["staging"]) > total(config.ENVIRONMENTS["dev"])
    )


def test_the_estimate_moves_with_the_config() -> None:
    prod = config.ENVIRONMENTS["prod"]
    fewer_nats = dataclasses.replace(prod, network=dataclasses.replace(prod.network, nat_gateways=1))
    nat = {line.item: line.usd for line in cost.estimate(prod, DATA)}["NAT gateways"]
    assert {line.item: line.usd for line in cost.estimate(fewer_nats, DATA)}["NAT gateways"] < nat
    bigger_cache = dataclasses.replace(prod, cache=dataclasses.replace(prod.cache, shards=6))
    assert total(bigger_cache) > total(prod)
    items = {line.item for line in cost.estimate(config.ENVIRONMENTS["dev"], DATA)}
    assert "PgBouncer (Fargate)" in items
    assert "RDS Proxy" not in items
    assert "| **total / month (USD)** |" in cost.table(list(config.ENVIRONMENTS.values()), DATA)
