"""Rotating the ElastiCache AUTH token: CloudFormation cannot do it, so this is the API path (used by patops).

ElastiCache accepts two tokens during a rotation (`AuthTokenUpdateStrategy=ROTATE`), then only the new one (`SET`).
The secret moves through Secrets Manager's staging labels, so clients that re-read `AWSCURRENT` never hold a token
the cache no longer accepts:

1. `begin`:   new token -> secret version labelled AWSPENDING; ModifyReplicationGroup ROTATE (old + new valid)
2. `promote`: AWSCURRENT -> the pending version (clients now read the new token; the old one still works)
3. `finish`:  ModifyReplicationGroup SET (only the new token), once clients had time to re-read the secret

Every step checks the state first and is a no-op when already done, so an interrupted rotation is resumed by
running the same step again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pat_data.operations.common import all_pages

TOKEN_LENGTH = 64
PENDING = "AWSPENDING"
CURRENT = "AWSCURRENT"


class RotationError(RuntimeError):
    """A step cannot run in the current state; the message says which step to run instead."""


@dataclass(frozen=True)
class RotationState:
    """Where a rotation stands: which secret versions carry which label and the replication group's status."""

    current_version: str
    pending_version: str | None
    group_status: str

    @property
    def step(self) -> str:
        if self.pending_version is None:
            return "idle"
        if self.pending_version == self.current_version:
            return "promoted"
        return "begun"


@dataclass
class CacheAuthRotation:
    """One replication group and the secret holding its token (`{"username": "default", "token": ...}`)."""

    elasticache: Any
    secretsmanager: Any
    replication_group_id: str
    secret_id: str
    sleep: Callable[[float], None] = time.sleep
    wait_timeout_seconds: float = 1800.0

    def state(self) -> RotationState:
        versions = self.secretsmanager.describe_secret(SecretId=self.secret_id).get("VersionIdsToStages", {})
        current = next((v for v, stages in versions.items() if CURRENT in stages), None)
        pending = next((v for v, stages in versions.items() if PENDING in stages), None)
        if current is None:
            raise RotationError(f"{self.secret_id} has no {CURRENT} version: restore it before rotating")
        return RotationState(current_version=current, pending_version=pending, group_status=self._group_status())

    def _group_status(self) -> str:
        (group,) = all_pages(
            self.elasticache,
            "describe_replication_groups",
            "ReplicationGroups",
            ReplicationGroupId=self.replication_group_id,
        )
        return str(group["Status"])

    def _token(self, stage: str) -> str:
        value = self.secretsmanager.get_secret_value(SecretId=self.secret_id, VersionStage=stage)["SecretString"]
        return str(json.loads(value)["token"])

    def _modify(self, token: str, strategy: str) -> None:
        self.elasticache.modify_replication_group(
            ReplicationGroupId=self.replication_group_id,
            AuthToken=token,
            AuthTokenUpdateStrategy=strategy,
            ApplyImmediately=True,
        )
        self.wait_available()

    def wait_available(self) -> None:
        deadline = time.monotonic() + self.wait_timeout_seconds
        while True:
            status = self._group_status()
            if status == "available":
                return
            if time.monotonic() >= deadline:
                raise RotationError(
                    f"{self.replication_group_id} still '{status}' after {self.wait_timeout_seconds:.0f}s"
                )
            self.sleep(15)

    def begin(self) -> str:
        """Stage a new token and make the cache accept it alongside the current one. Returns the pending version."""
        state = self.state()
        if state.step == "promoted":
            raise RotationError("a promoted rotation is waiting for `finish`; run it before beginning another")
        if state.group_status != "available":
            raise RotationError(f"{self.replication_group_id} is '{state.group_status}': wait until it is available")
        if state.pending_version is None:
            token = self.secretsmanager.get_random_password(
                PasswordLength=TOKEN_LENGTH, ExcludePunctuation=True, IncludeSpace=False
            )["RandomPassword"]
            current = json.loads(
                self.secretsmanager.get_secret_value(SecretId=self.secret_id, VersionStage=CURRENT)["SecretString"]
            )
            pending = self.secretsmanager.put_secret_value(
                SecretId=self.secret_id,
                SecretString=json.dumps({**current, "token": token}),
                VersionStages=[PENDING],
            )["VersionId"]
        else:
            pending = state.pending_version
        self._modify(self._token(PENDING), "ROTATE")
        return str(pending)

    def promote(self) -> str:
        """Clients reading AWSCURRENT get the new token from now on (the old one is still accepted)."""
        state = self.state()
        if state.step == "idle":
            raise RotationError("nothing to promote: run `begin` first")
        if state.step == "begun":
            self.secretsmanager.update_secret_version_stage(
                SecretId=self.secret_id,
                VersionStage=CURRENT,
                MoveToVersionId=state.pending_version,
                RemoveFromVersionId=state.current_version,
            )
        return str(state.pending_version)

    def finish(self) -> None:
        """Only the new token is accepted from now on; the AWSPENDING label is removed."""
        state = self.state()
        if state.step != "promoted":
            raise RotationError(f"rotation is '{state.step}': `finish` follows `promote`")
        self._modify(self._token(CURRENT), "SET")
        self.secretsmanager.update_secret_version_stage(
            SecretId=self.secret_id, VersionStage=PENDING, RemoveFromVersionId=state.pending_version
        )
