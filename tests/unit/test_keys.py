"""Keys per data class: rotated CMKs, aliases, and key policies that allow use only through the owning services."""

from __future__ import annotations

from pat_constructs.keys import DATA_CLASSES
from tests.conftest import Synthesized


def keys(synthesized: Synthesized, env: str) -> list[dict]:
    return list(synthesized.resources(env, "Keys", "AWS::KMS::Key").values())


def test_one_rotated_cmk_and_alias_per_data_class(synthesized: Synthesized, env_name: str) -> None:
    found = keys(synthesized, env_name)
    assert len(found) == len(DATA_CLASSES)
    assert all(k["Properties"]["EnableKeyRotation"] is True for k in found)
    aliases = {
        a["Properties"]["AliasName"] for a in synthesized.resources(env_name, "Keys", "AWS::KMS::Alias").values()
    }
    assert aliases == {f"alias/pat/{env_name}/{c.name}" for c in DATA_CLASSES}


def test_account_can_administer_but_only_services_can_use_the_keys(synthesized: Synthesized, env_name: str) -> None:
    for key in keys(synthesized, env_name):
        statements = key["Properties"]["KeyPolicy"]["Statement"]
        for statement in statements:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert "kms:*" not in actions
            grants_use = any(a in {"kms:Decrypt", "kms:GenerateDataKey*"} for a in actions)
            if grants_use:
                # Every statement that can decrypt is bound to a service: ViaService or a service principal.
                assert "Condition" in statement, statement
                principal = statement["Principal"]
                assert "Service" in principal or "kms:ViaService" in statement["Condition"]["StringEquals"]


def test_logs_key_lets_cloudwatch_logs_encrypt_only_this_accounts_groups(synthesized: Synthesized) -> None:
    (logs_key,) = [k for k in keys(synthesized, "prod") if "logs key" in k["Properties"]["Description"]]
    (statement,) = [
        s for s in logs_key["Properties"]["KeyPolicy"]["Statement"] if s["Sid"] == "CloudWatchLogsEncryption"
    ]
    assert "kms:EncryptionContext:aws:logs:arn" in statement["Condition"]["ArnLike"]
