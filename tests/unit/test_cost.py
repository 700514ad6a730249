"""`make cost` follows the config: capacity from stacks/config.py, unit prices from one dated data file."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from scripts import cost
from stacks import config
from tests.conftest import Synthesized

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


@pytest.mark.parametrize("assembly", ["synthesized", "synthesized_flipped"])
def test_the_alarm_count_is_the_number_of_alarms_in_the_templates(
    request: pytest.FixtureRequest, assembly: str, env_name: str
) -> None:
    """What `make cost` bills for is what gets deployed, for every environment and both poolers."""
    synthesized: Synthesized = request.getfixturevalue(assembly)
    env = synthesized.envs[env_name].config
    (line,) = [line for line in cost.estimate(env, DATA) if "alarms" in line.detail]
    match = re.search(r"(\d+) alarms", line.detail)
    assert match, line.detail
    deployed = sum(
        1
        for stack in synthesized.assembly.stacks
        if stack.stack_name.startswith(f"Pat-{env_name}-")
        for resource in stack.template["Resources"].values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    )
    assert int(match.group(1)) == deployed
