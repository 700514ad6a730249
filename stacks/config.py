"""Loading the environment model: the ONE module that reads CDK context or process environment variables.

The model, its validation and the dev/staging/prod values live in `stacks/environments/` (CDK-free), composed of the
constructs' own settings types (`pat_constructs/settings/`). Stacks and constructs receive typed, already-validated
values; a bad value stops synth here with one message naming the environment, the field, the value and what is
allowed. The names callers use are re-exported here (`from stacks import config; config.resolve("all")`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, Protocol

from pat_constructs.settings.alarms import AlarmThresholds
from pat_constructs.settings.aurora import AuroraSettings, ReaderSpec
from pat_constructs.settings.backup import BackupSettings
from pat_constructs.settings.cache import CacheSettings
from pat_constructs.settings.network import NetworkSettings
from pat_constructs.settings.pooler import PgBouncerSettings, RdsProxySettings
from pat_constructs.settings.storage import StorageSettings
from stacks.environments.dev import DEV
from stacks.environments.model import (
    ENV_NAMES,
    BackupConfig,
    CacheConfig,
    DatabaseConfig,
    EnvironmentConfig,
    OpsConfig,
    Tagging,
)
from stacks.environments.prod import PROD
from stacks.environments.staging import STAGING
from stacks.environments.validation import ConfigError, check_types, validate

__all__ = [
    "ENVIRONMENTS",
    "ENV_NAMES",
    "AlarmThresholds",
    "AuroraSettings",
    "BackupConfig",
    "BackupSettings",
    "CacheConfig",
    "CacheSettings",
    "ConfigError",
    "DatabaseConfig",
    "EnvironmentConfig",
    "NetworkSettings",
    "OpsConfig",
    "PgBouncerSettings",
    "RdsProxySettings",
    "ReaderSpec",
    "StorageSettings",
    "Tagging",
    "availability_zone_context",
    "check_types",
    "load",
    "resolve",
    "validate",
]

ENVIRONMENTS: Mapping[str, EnvironmentConfig] = {env.name: env for env in (DEV, STAGING, PROD)}


class _HasNode(Protocol):
    """Anything with a construct node (the CDK App); kept structural so this module needs no aws_cdk import."""

    @property
    def node(self) -> Any: ...


def resolve(
    selection: str | None,
    *,
    environ: Mapping[str, str] | None = None,
    base: Mapping[str, EnvironmentConfig] = ENVIRONMENTS,
) -> list[EnvironmentConfig]:
    """Pick and validate the environments to synthesize.

    `selection` is the `env` context value: a name, a comma-separated list, "all" or None (all). An account can be
    configured per environment through `PAT_<ENV>_ACCOUNT` (e.g. `PAT_PROD_ACCOUNT=123456789012`) so the account id
    never has to be committed.
    """
    environ = os.environ if environ is None else environ
    if selection in (None, "", "all"):
        names = list(base)
    else:
        names = [part.strip() for part in str(selection).split(",") if part.strip()]
    for name in names:
        if name not in base:
            raise ConfigError(name, "env", name, f"unknown environment; choose one of {', '.join(base)} or 'all'")
    selected = []
    for name in names:
        env = base[name]
        account = environ.get(f"PAT_{name.upper()}_ACCOUNT")
        if account is not None:
            env = dataclasses.replace(env, account=account.strip())
        validate(env)
        selected.append(env)
    return selected


def load(app: _HasNode) -> list[EnvironmentConfig]:
    """Read `-c env=NAME` from the app and return the validated environments to build."""
    selection = app.node.try_get_context("env")
    return resolve(None if selection is None else str(selection))


def availability_zone_context(env: EnvironmentConfig) -> dict[str, list[str]]:
    """Context that pre-answers CDK's AZ lookup for an env with an explicit account, so synth needs no credentials."""
    if env.account is None:
        return {}
    key = f"availability-zones:account={env.account}:region={env.region}"
    return {key: list(env.network.availability_zones)}
