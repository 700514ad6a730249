"""Cache-aside over a Redis/Valkey cluster (ElastiCache cluster mode), failing open to the source of truth.

- Keys carry the value schema version: `pat:v<version>:<kind>:<id>`; bumping the version orphans old values
  (they age out by TTL) instead of misreading them.
- Multi-key work never sends a cross-slot command: reads use `mget_nonatomic` (one MGET per slot), writes and
  deletes go through a non-transactional cluster pipeline.
- Tag invalidation: each cached key is added to the set `pat:v<version>:tag:<tag>`; invalidating a tag deletes its
  members and the set. No KEYS/SCAN over the keyspace, ever.
- Fail-open: any cache error (node down, failover, timeout, OOM) is logged as a warning, counted, and the value is
  loaded from the source; callers never see a cache exception. After an error the cache is bypassed for a short
  cool-down so a dead node does not add its timeout to every request.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from psycopg.rows import dict_row
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

log = logging.getLogger(__name__)
# RedisClusterException (e.g. "cannot be connected" once every node is gone) does not derive from RedisError.
CACHE_ERRORS = (RedisError, RedisClusterException)

T = TypeVar("T")
Loader = Callable[[], T | None]
ManyLoader = Callable[[list[str]], Mapping[str, Any]]

DEFAULT_TTL_SECONDS = 300
# Tag sets outlive their members by this much, so an invalidation never misses a still-cached member.
TAG_TTL_MARGIN_SECONDS = 60


@dataclass(frozen=True, kw_only=True)
class CacheSettings:
    """Where and how to connect: TLS + AUTH token in the cloud, plain + password locally."""

    host: str
    port: int
    password: str | None = None
    username: str | None = None
    tls: bool = True
    socket_timeout: float = 0.25
    connect_timeout: float = 0.5
    max_connections: int = 64

    def __repr__(self) -> str:  # never print the token
        return f"CacheSettings({self.host}:{self.port}, tls={self.tls})"


def settings_from_secret(secret: Mapping[str, Any] | str, *, host: str, port: int, tls: bool = True) -> CacheSettings:
    """From the cache's Secrets Manager secret (`{"username": "default", "token": ...}`) and the SSM endpoint."""
    data = json.loads(secret) if isinstance(secret, str) else dict(secret)
    if not data.get("token"):
        raise ValueError("cache secret has no 'token': use the secret published at /pat/<env>/cache/auth-secret-arn")
    return CacheSettings(host=host, port=port, password=data["token"], tls=tls)


def cluster_client(settings: CacheSettings) -> RedisCluster:
    """A cluster-aware client with short timeouts and bounded retries (the cache must never be the slow part)."""
    return RedisCluster(
        host=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password,
        ssl=settings.tls,
        ssl_cert_reqs="required" if settings.tls else None,
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.connect_timeout,
        max_connections=settings.max_connections,
        # One retry (after a topology refresh on failover/MOVED), no back-off loops.
        retry=Retry(NoBackoff(), retries=1),
        require_full_coverage=False,
        decode_responses=False,
    )


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    bypassed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class Cache:
    """Cache-aside helpers. `ttls` maps a kind (e.g. "email") to its TTL in seconds."""

    def __init__(
        self,
        client: RedisCluster,
        *,
        namespace: str = "pat",
        schema_version: int = 1,
        ttls: Mapping[str, int] | None = None,
        default_ttl: int = DEFAULT_TTL_SECONDS,
        cooldown_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.prefix = f"{namespace}:v{schema_version}"
        self.ttls = dict(ttls or {})
        self.default_ttl = default_ttl
        self.cooldown_seconds = cooldown_seconds
        self.clock = clock
        self.stats = CacheStats()
        self._bypass_until = 0.0

    def key(self, kind: str, item_id: Hashable) -> str:
        return f"{self.prefix}:{kind}:{item_id}"

    def tag_key(self, tag: str) -> str:
        return f"{self.prefix}:tag:{tag}"

    def ttl(self, kind: str) -> int:
        return self.ttls.get(kind, self.default_ttl)

    @staticmethod
    def _encode(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), default=str).encode()

    @staticmethod
    def _decode(raw: bytes) -> Any:
        return json.loads(raw)

    def _available(self) -> bool:
        if self.clock() < self._bypass_until:
            self.stats.add(bypassed=1)
            return False
        return True

    def _failed(self, operation: str, exc: Exception) -> None:
        self.stats.add(errors=1)
        self._bypass_until = self.clock() + self.cooldown_seconds
        log.warning(
            "cache unavailable, using the source of truth",
            extra={"operation": operation, "error": f"{type(exc).__name__}: {exc}"[:300]},
        )

    def get_or_load(
        self, kind: str, item_id: Hashable, loader: Loader[T], *, tags: Sequence[str] = (), ttl: int | None = None
    ) -> T | None:
        """The cached value, or `loader()` (cached afterwards unless it returned None)."""
        key = self.key(kind, item_id)
        if self._available():
            try:
                raw: Any = self.client.get(key)
            except CACHE_ERRORS as exc:
                self._failed("get", exc)
            else:
                if raw is not None:
                    self.stats.add(hits=1)
                    return self._decode(raw)
                self.stats.add(misses=1)
        value = loader()
        if value is not None:
            self._store({key: value}, ttl or self.ttl(kind), tags)
        return value

    def get_many(self, kind: str, ids: Sequence[str], loader: ManyLoader, *, ttl: int | None = None) -> dict[str, Any]:
        """Values for `ids`: cached ones by per-slot MGETs, the rest from `loader(missing_ids)` (then cached)."""
        found: dict[str, Any] = {}
        missing = list(ids)
        if ids and self._available():
            try:
                raws = self.client.mget_nonatomic([self.key(kind, item_id) for item_id in ids])
            except CACHE_ERRORS as exc:
                self._failed("mget", exc)
            else:
                missing = []
                for item_id, raw in zip(ids, raws, strict=True):
                    if raw is None:
                        missing.append(item_id)
                    else:
                        found[item_id] = self._decode(raw)
                self.stats.add(hits=len(found), misses=len(missing))
        if missing:
            loaded = dict(loader(missing))
            found.update(loaded)
            self._store(
                {self.key(kind, item_id): value for item_id, value in loaded.items()}, ttl or self.ttl(kind), ()
            )
        return found

    def set(
        self, kind: str, item_id: Hashable, value: Any, *, tags: Sequence[str] = (), ttl: int | None = None
    ) -> None:
        self._store({self.key(kind, item_id): value}, ttl or self.ttl(kind), tags)

    def _store(self, values: Mapping[str, Any], ttl: int, tags: Sequence[str]) -> None:
        self._store_tagged(values, ttl, {tag: list(values) for tag in tags})

    def _store_tagged(self, values: Mapping[str, Any], ttl: int, tagged: Mapping[str, Sequence[str]]) -> None:
        """One non-transactional pipeline: SET with TTL per value, SADD per tag set (tag TTL >= member TTL)."""
        if not values or not self._available():
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, value in values.items():
                pipe.set(key, self._encode(value), ex=ttl)
            for tag, keys in tagged.items():
                tag_key = self.tag_key(tag)
                pipe.sadd(tag_key, *keys)
                # Extend the set's TTL, never shorten it (GT), and give a fresh set one (NX).
                pipe.expire(tag_key, ttl + TAG_TTL_MARGIN_SECONDS, gt=True)
                pipe.expire(tag_key, ttl + TAG_TTL_MARGIN_SECONDS, nx=True)
            pipe.execute()
        except CACHE_ERRORS as exc:
            self._failed("set", exc)

    def invalidate(self, kind: str, *ids: Hashable) -> None:
        if not ids or not self._available():
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for item_id in ids:
                pipe.delete(self.key(kind, item_id))
            pipe.execute()
        except CACHE_ERRORS as exc:
            self._failed("delete", exc)

    def invalidate_tag(self, tag: str) -> int:
        """Delete every value cached with `tag` (in any slot) and the tag set; returns how many were deleted."""
        if not self._available():
            return 0
        try:
            members = [m.decode() for m in self.client.smembers(self.tag_key(tag))]  # type: ignore[union-attr]
            pipe = self.client.pipeline(transaction=False)
            for member in members:
                pipe.delete(member)
            pipe.delete(self.tag_key(tag))
            results = pipe.execute()
        except CACHE_ERRORS as exc:
            self._failed("invalidate_tag", exc)
            return 0
        return int(sum(results[:-1]))

    def warm(
        self,
        kind: str,
        items: Iterable[tuple[Hashable, Any]],
        *,
        tags_of: Callable[[Any], Sequence[str]] = lambda _: (),
        batch_size: int = 500,
    ) -> int:
        """Cache many (id, value) pairs, one pipeline per batch (e.g. the rows of a query after a flush)."""
        count = 0
        ttl = self.ttl(kind)
        values: dict[str, Any] = {}
        tagged: dict[str, list[str]] = {}
        for item_id, value in items:
            key = self.key(kind, item_id)
            values[key] = value
            for tag in tags_of(value):
                tagged.setdefault(tag, []).append(key)
            count += 1
            if len(values) >= batch_size:
                self._store_tagged(values, ttl, tagged)
                values, tagged = {}, {}
        self._store_tagged(values, ttl, tagged)
        return count

    def warm_from_query(
        self,
        kind: str,
        connection: Any,
        query: str,
        params: Sequence[object] = (),
        *,
        id_field: str = "id",
        tags_of: Callable[[Any], Sequence[str]] = lambda _: (),
    ) -> int:
        """Run `query` on a psycopg connection and cache each row (as a dict) under its `id_field`."""
        with connection.cursor(row_factory=dict_row) as cursor:
            cursor.execute(query, params or None)
            return self.warm(kind, ((row[id_field], row) for row in cursor), tags_of=tags_of)
