"""Builds one environment's stacks and wires them together (shared by app.py and the tests)."""

from __future__ import annotations

from dataclasses import dataclass

from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.keys_stack import KeysStack
from stacks.network_stack import NetworkStack


@dataclass(frozen=True)
class PatEnvironment:
    config: EnvironmentConfig
    keys: KeysStack
    network: NetworkStack


def build_environment(scope: Construct, config: EnvironmentConfig) -> PatEnvironment:
    keys = KeysStack(scope, config=config)
    network = NetworkStack(scope, config=config, logs_key=keys.keys.logs)
    return PatEnvironment(config=config, keys=keys, network=network)
