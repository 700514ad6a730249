"""Cache operations: per-shard stats, flush by tag or everything, AUTH rotation (pat_data.cache_auth)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from redis.cluster import RedisCluster

from pat_data.cache import Cache
from pat_data.cache_auth import CacheAuthRotation, RotationError
from pat_data.operations.common import Plan
from pat_data.operations.errors import PreconditionError

# redis-py types every response of its sync and async clients alike (`Awaitable[Any] | Any`); the sync client's INFO
# and CLUSTER INFO answer flat mappings of numbers and strings.
InfoReply = Mapping[str, int | float | str]


def stats(client: RedisCluster) -> dict[str, object]:
    """Hit rate, memory and evictions per primary (from INFO), plus the cluster state."""
    shards = []
    for node in client.get_primaries():
        info = cast(InfoReply, client.info(target_nodes=node))
        hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
        shards.append(
            {
                "node": node.name,
                "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
                "used_memory_mb": round(int(info.get("used_memory", 0)) / 2**20, 1),
                "maxmemory_mb": round(int(info.get("maxmemory", 0)) / 2**20, 1),
                "evicted_keys": int(info.get("evicted_keys", 0)),
                "connected_clients": int(info.get("connected_clients", 0)),
                "keys": int(client.dbsize(target_nodes=node)),  # type: ignore[arg-type]
            }
        )
    cluster_info = cast(InfoReply, client.cluster_info())
    return {"cluster_state": cluster_info.get("cluster_state"), "shards": shards}


def flush(client: RedisCluster, *, tag: str | None, everything: bool, apply: bool) -> Plan:
    """`--tag`: the values cached under that tag (any slot). `--all`: FLUSHALL on every primary."""
    if (tag is None) == (not everything):
        raise PreconditionError("give exactly one of --tag TAG or --all")
    primaries = [node.name for node in client.get_primaries()]
    if everything:
        steps = [
            f"FLUSHALL on every primary: {', '.join(primaries)}",
            "reads fall through to PostgreSQL until the cache warms up",
        ]
        plan = Plan(action="cache flush", steps=steps)
        if apply:
            client.flushall(target_nodes=RedisCluster.PRIMARIES)
            plan.applied = True
        return plan
    cache = Cache(client)
    members = client.scard(cache.tag_key(str(tag)))
    plan = Plan(action="cache flush", steps=[f"delete {members} value(s) tagged '{tag}' and the tag set"])
    if apply:
        plan.applied, plan.result = True, {"deleted": cache.invalidate_tag(str(tag))}
    return plan


def rotate_auth(rotation: CacheAuthRotation, *, step: str, apply: bool) -> Plan:
    """One step of the AUTH rotation (begin, promote, finish): each checks the state first."""
    descriptions = {
        "begin": "stage a new token (AWSPENDING) and ModifyReplicationGroup ROTATE: old and new both accepted",
        "promote": "move AWSCURRENT to the new token: clients pick it up when they re-read the secret",
        "finish": "ModifyReplicationGroup SET: only the new token is accepted",
    }
    if step not in descriptions:
        raise PreconditionError(f"--step {step}: allowed are begin, promote, finish")
    try:
        state = rotation.state()
        plan = Plan(action="cache rotate-auth", steps=[f"rotation is '{state.step}'; {step}: {descriptions[step]}"])
        if apply:
            getattr(rotation, step)()
            plan.applied, plan.result = True, {"state": rotation.state().step}
    except RotationError as exc:  # the rotation's state says which step to run instead: nothing was changed
        raise PreconditionError(str(exc)) from exc
    return plan
