"""Cache-aside over a Redis/Valkey cluster (ElastiCache cluster mode), coherent with PostgreSQL under faults.

The contract (docs/architecture.md, "Cache coherence"): after a write commits and its invalidation is issued, no
read through this layer returns the pre-write value more than `COHERENCE_BOUND_SECONDS` later, through cache node
loss, a node restarted with old data, failover to a replica that missed the delete, timeouts and concurrent
writers. How:

- Guarded fills. Every cached value has a generation counter in the same hash slot (`<key>:gen`, hash tags keep
  both on one node). An invalidation bumps the generation and deletes the value in one script; a fill after a miss
  is written only if the generation is still the one read before the database load. A reader that loaded the old row
  before the writer's COMMIT can therefore never store it after the writer's delete.
- Invalidations are never skipped. One that fails (node down, timeout: it may or may not have applied) is kept and
  retried by a background thread until it succeeds or the value it targets must have expired (its TTL). While one is
  pending, this process neither reads nor fills that key.
- Acknowledged invalidations can still be lost: a node restarted from an older snapshot, or a replica promoted before
  it received the delete (replication is asynchronous). Invalidations of the last `replay_window_seconds` are kept,
  and when a node's identity changes (a new run id or a new primary for its slots, checked every
  `monitor_interval_seconds`) or a node answers again after an error, they are issued again.
- Failure handling is per node: an error puts only that node's keys into a short cool-down (reads of them go to the
  source); the other shards keep serving. Callers never see a cache exception.
- Values are typed (`pat_data.cache_codec`): a hit returns exactly what a miss returns.

Not covered, by construction: a process that dies between its COMMIT and its invalidation leaves the old value until
the value's TTL (300 s by default for emails); see the architecture doc for how that window is limited.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from psycopg.rows import dict_row
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.retry import Retry

from pat_data import cache_codec

log = logging.getLogger(__name__)
# RedisClusterException (e.g. "cannot be connected" once every node is gone) does not derive from RedisError, and
# redis-py's cluster client, shared by threads while nodes die, also surfaces ValueError ("I/O operation on closed
# file") and AttributeError from a connection another thread closed (seen in tests/data/test_cache_coherence.py).
# The cache is an optimization: whatever fails inside it, the caller gets the source of truth and a warning.
CACHE_ERRORS = (RedisError, RedisClusterException, OSError, ValueError, AttributeError, TypeError)

T = TypeVar("T")
Loader = Callable[[], T | None]
ManyLoader = Callable[[list[str]], Mapping[str, Any]]

DEFAULT_TTL_SECONDS = 300
# Tag sets outlive their members by this much, so an invalidation never misses a still-cached member.
TAG_TTL_MARGIN_SECONDS = 60
# The documented bound (docs/architecture.md): retry interval + node check interval + socket timeouts, with room.
COHERENCE_BOUND_SECONDS = 5.0

_SHAS: dict[str, str] = {}
# KEYS[1] value, KEYS[2] generation. A hit returns {value}; a miss returns {false, generation}.
_READ = """
local value = redis.call('GET', KEYS[1])
if value then return {value} end
return {false, redis.call('GET', KEYS[2]) or '0'}
"""
# ARGV: generation read before the load, encoded value, TTL. Stores only if no invalidation happened since.
_FILL = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""
# ARGV: a fresh generation, its TTL. A generation no reader can hold (never a counter: a node restored from an older
# snapshot would count back up to values readers saw before) fails every fill in flight; then the value goes.
_INVALIDATE = """
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return redis.call('DEL', KEYS[1])
"""
# Warming (a query's rows, not a miss): only keys with no recent invalidation, whose generation key is absent.
_WARM = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


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
    """A cluster-aware client with short timeouts and bounded retries (the cache must never be the slow part).

    `require_full_coverage=False`: a shard without a primary must not stop the client from using the others.
    """
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
    fills_refused: int = 0
    invalidations_retried: int = 0
    invalidations_replayed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


@dataclass
class _Pending:
    key: str
    expires: float  # after this the targeted value has expired anyway


class Cache:
    """Cache-aside helpers. `ttls` maps a kind (e.g. "email") to its TTL in seconds."""

    def __init__(
        self,
        client: RedisCluster,
        *,
        namespace: str = "pat",
        schema_version: int = 2,
        ttls: Mapping[str, int] | None = None,
        default_ttl: int = DEFAULT_TTL_SECONDS,
        cooldown_seconds: float = 1.0,
        retry_interval_seconds: float = 0.2,
        monitor_interval_seconds: float = 1.0,
        replay_window_seconds: float = 120.0,
        replay_limit: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.prefix = f"{namespace}:v{schema_version}"
        self.ttls = dict(ttls or {})
        self.default_ttl = default_ttl
        self.cooldown_seconds = cooldown_seconds
        self.retry_interval_seconds = retry_interval_seconds
        self.monitor_interval_seconds = monitor_interval_seconds
        self.replay_window_seconds = replay_window_seconds
        self.clock = clock
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._down: dict[str, float] = {}  # node name -> end of its cool-down
        self._pending: dict[str, _Pending] = {}  # value key -> invalidation still to be applied
        self._pending_tags: dict[str, float] = {}  # tag -> until when to retry its invalidation
        self._recent: deque[tuple[float, str]] = deque(maxlen=replay_limit)  # (when, value key), acknowledged
        self._identities: dict[str, str] = {}  # node name -> run id, as last seen
        self._slot_owners: dict[int, str] = {}  # slot -> node name, as last seen
        self._worker: threading.Thread | None = None
        self._closed = threading.Event()

    def key(self, kind: str, item_id: Hashable) -> str:
        # The braces are a hash tag: the value and its generation (`<key>:gen`) live in the same slot.
        return f"{self.prefix}:{kind}:{{{item_id}}}"

    @staticmethod
    def _gen(key: str) -> str:
        return f"{key}:gen"

    def _script(self, source: str, key: str, *args: bytes | str | int) -> Any:
        """EVALSHA on the key's node (value and generation share a slot), EVAL where the node lost its scripts."""
        sha = _SHAS.setdefault(source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())  # script id
        # redis-py types keys and arguments as str; bytes and ints are sent as they are.
        keys_and_args = cast("list[str]", [key, self._gen(key), *args])
        try:
            return self.client.evalsha(sha, 2, *keys_and_args)
        except NoScriptError:
            return self.client.eval(source, 2, *keys_and_args)

    def tag_key(self, tag: str) -> str:
        return f"{self.prefix}:tag:{tag}"

    def ttl(self, kind: str) -> int:
        return self.ttls.get(kind, self.default_ttl)

    def _gen_ttl(self) -> int:
        """Generations must outlive any value and any fill in flight: twice the longest TTL."""
        return 2 * max([self.default_ttl, *self.ttls.values()]) + TAG_TTL_MARGIN_SECONDS

    def close(self) -> None:
        """Stop the background worker (pending invalidations are dropped: their values expire by TTL)."""
        self._closed.set()
        if self._worker is not None:
            self._worker.join(timeout=5)

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- per-node failure handling ----

    def _node(self, key: str) -> str | None:
        """The node owning the key's slot. After a node dies, redis-py may drop it from its slot table; the last owner
        seen is kept, so the dead node's keys stay bypassed until it answers and has been replayed (a restarted node
        is reached through redis-py again only after that)."""
        slot = self.client.keyslot(key)
        try:
            node: ClusterNode | None = self.client.get_node_from_key(key)
        except CACHE_ERRORS:
            node = None
        if node is None:
            return self._slot_owners.get(slot)
        name = str(node.name)
        previous = self._slot_owners.get(slot)
        if previous is not None and previous != name and previous in self._down:
            # The slot moved (failover) while its old owner was down: the new primary may miss recent deletes too.
            self._mark_down(name)
        self._slot_owners[slot] = name
        return name

    def _available(self, key: str) -> bool:
        """False while the key's node is down (from its first error until it answers again AND every recent
        invalidation was re-applied on it), or while this key's own invalidation is pending."""
        node = self._node(key)
        with self._lock:
            usable = (node is None or node not in self._down) and key not in self._pending
        if not usable:
            self.stats.add(bypassed=1)
        return usable

    def _failed(self, operation: str, key: str | None, exc: Exception) -> None:
        self.stats.add(errors=1)
        node = self._node(key) if key is not None else None
        if node is not None:
            self._mark_down(node)
        log.warning(
            "cache unavailable, using the source of truth",
            extra={"operation": operation, "node": node, "error": f"{type(exc).__name__}: {exc}"[:300]},
        )

    def _mark_down(self, node: str) -> None:
        with self._lock:
            self._down.setdefault(node, self.clock())
        self._ensure_worker()

    def _recover(self, now: float) -> None:
        """Probe each down node; one that answers gets every pending and recent invalidation of its keys re-applied
        before its keys are read again (it may have restarted from older data, or be a promoted replica)."""
        with self._lock:
            due = [node for node, since in self._down.items() if now - since >= self.cooldown_seconds]
        for name in due:
            host, _, port = name.rpartition(":")
            try:
                # A direct probe: redis-py may have dropped a dead node from its topology while its slots still
                # point at it, and a node that answers must not serve its keys before the replay below.
                self.client.get_redis_connection(ClusterNode(host, int(port))).ping()
            except CACHE_ERRORS:
                continue
            with self._lock:
                horizon = now - self.replay_window_seconds
                candidates = [*self._pending, *(key for when, key in self._recent if when >= horizon)]
            keys = [key for key in dict.fromkeys(candidates) if self._node(key) == name]
            if all(self._apply(key) for key in keys):
                self.stats.add(invalidations_replayed=len(keys))
                with self._lock:
                    self._down.pop(name, None)

    # ---- reads and fills ----

    def get_or_load(
        self, kind: str, item_id: Hashable, loader: Loader[T], *, tags: Sequence[str] = (), ttl: int | None = None
    ) -> T | None:
        """The cached value, or `loader()` (cached afterwards unless it returned None or was invalidated since)."""
        key = self.key(kind, item_id)
        generation: bytes | None = None
        if self._available(key):
            try:
                found = self._script(_READ, key)
            except CACHE_ERRORS as exc:
                self._failed("get", key, exc)
            else:
                if found[0] is not None:
                    try:
                        decoded = cache_codec.decode(found[0])
                    except cache_codec.FormatError:  # written by another format version: a miss, never a crash
                        self.stats.add(misses=1)
                        return loader()
                    self.stats.add(hits=1)
                    return cast("T", decoded)
                self.stats.add(misses=1)
                generation = found[1]
        value = loader()
        if value is not None and generation is not None:
            self._guarded_fill(key, generation, value, ttl or self.ttl(kind), tags)
        return value

    def get_many(self, kind: str, ids: Sequence[str], loader: ManyLoader, *, ttl: int | None = None) -> dict[str, Any]:
        """Values for `ids`: cached ones by the read script per key, the rest from `loader(missing_ids)` (then filled,
        guarded like single reads)."""
        found: dict[str, Any] = {}
        generations: dict[str, bytes] = {}
        missing: list[str] = []
        for item_id in ids:
            key = self.key(kind, item_id)
            if not self._available(key):
                missing.append(item_id)
                continue
            try:
                result = self._script(_READ, key)
            except CACHE_ERRORS as exc:
                self._failed("mget", key, exc)
                missing.append(item_id)
                continue
            if result[0] is not None:
                try:
                    found[item_id] = cache_codec.decode(result[0])
                except cache_codec.FormatError:
                    missing.append(item_id)
            else:
                missing.append(item_id)
                generations[item_id] = result[1]
        self.stats.add(hits=len(found), misses=len(missing))
        if missing:
            loaded = dict(loader(missing))
            found.update(loaded)
            for item_id, value in loaded.items():
                if item_id in generations and value is not None:
                    self._guarded_fill(self.key(kind, item_id), generations[item_id], value, ttl or self.ttl(kind), ())
        return found

    def _guarded_fill(self, key: str, generation: bytes, value: Any, ttl: int, tags: Sequence[str]) -> None:
        """Tag membership first (a value is never cached outside its tags), then the fill, if nothing invalidated
        the key since `generation` was read."""
        if not self._available(key):
            return
        try:
            if tags:
                self._add_to_tags([key], tags, ttl)
            if not self._script(_FILL, key, generation, cache_codec.encode(value), ttl):
                self.stats.add(fills_refused=1)
        except CACHE_ERRORS as exc:
            self._failed("set", key, exc)

    def _add_to_tags(self, keys: Sequence[str], tags: Sequence[str], ttl: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        for tag in tags:
            tag_key = self.tag_key(tag)
            pipe.sadd(tag_key, *keys)
            # Extend the set's TTL, never shorten it (GT), and give a fresh set one (NX).
            pipe.expire(tag_key, ttl + TAG_TTL_MARGIN_SECONDS, gt=True)
            pipe.expire(tag_key, ttl + TAG_TTL_MARGIN_SECONDS, nx=True)
        pipe.execute()

    def set(
        self, kind: str, item_id: Hashable, value: Any, *, tags: Sequence[str] = (), ttl: int | None = None
    ) -> None:
        """Cache a value the caller just read (like warming: refused while the key has a recent invalidation)."""
        key = self.key(kind, item_id)
        self._warm_values({key: value}, ttl or self.ttl(kind), {tag: [key] for tag in tags})

    def warm(
        self,
        kind: str,
        items: Iterable[tuple[Hashable, Any]],
        *,
        tags_of: Callable[[Any], Sequence[str]] = lambda _: (),
        batch_size: int = 500,
    ) -> int:
        """Cache many (id, value) pairs (e.g. a query's rows); keys invalidated recently are left to the next miss."""
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
                self._warm_values(values, ttl, tagged)
                values, tagged = {}, {}
        self._warm_values(values, ttl, tagged)
        return count

    def _warm_values(self, values: Mapping[str, Any], ttl: int, tagged: Mapping[str, Sequence[str]]) -> None:
        for tag, keys in tagged.items():
            try:
                self._add_to_tags(keys, [tag], ttl)
            except CACHE_ERRORS as exc:
                self._failed("set", None, exc)
                return
        for key, value in values.items():
            if not self._available(key):
                continue
            try:
                self._script(_WARM, key, cache_codec.encode(value), ttl)
            except CACHE_ERRORS as exc:
                self._failed("set", key, exc)

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

    # ---- invalidation ----

    def invalidate(self, kind: str, *ids: Hashable) -> None:
        """Drop the values (after the write that changed them COMMITTED). Never skipped: a failure is retried."""
        for item_id in ids:
            self._invalidate_key(self.key(kind, item_id))

    def _invalidate_key(self, key: str) -> None:
        """Apply now, or (node down, or the attempt failed) keep it pending for the worker; never skipped."""
        node = self._node(key)
        with self._lock:
            down = node is not None and node in self._down
        if down or not self._apply(key):
            with self._lock:
                self._pending[key] = _Pending(key, self.clock() + self._gen_ttl())
        self._ensure_worker()

    def _apply(self, key: str) -> bool:
        """Set a fresh generation and drop the value; True once the node acknowledged it. Every acknowledged
        application (first try, retry or replay) is remembered for the replay window: an acknowledgment is exactly
        what a later restart from older data can undo."""
        try:
            self._script(_INVALIDATE, key, uuid.uuid4().hex, self._gen_ttl())
        except CACHE_ERRORS as exc:
            self._failed("delete", key, exc)
            return False
        with self._lock:
            self._pending.pop(key, None)
            self._recent.append((self.clock(), key))
        return True

    def invalidate_tag(self, tag: str) -> int:
        """Invalidate every value cached with `tag` (in any slot), then the tag set; returns how many were cached."""
        tag_key = self.tag_key(tag)
        try:
            members = [m.decode() for m in self.client.smembers(tag_key)]  # type: ignore[union-attr]
        except CACHE_ERRORS as exc:
            self._failed("invalidate_tag", tag_key, exc)
            with self._lock:
                self._pending_tags[tag] = self.clock() + self._gen_ttl()
            self._ensure_worker()
            return 0
        for member in members:
            self._invalidate_key(member)
        try:
            self.client.delete(tag_key)
        except CACHE_ERRORS as exc:
            self._failed("invalidate_tag", tag_key, exc)
        with self._lock:
            self._pending_tags.pop(tag, None)
        return len(members)

    @property
    def pending_invalidations(self) -> int:
        with self._lock:
            return len(self._pending)

    # ---- background: retries, node identity checks, replays ----

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._closed.clear()
                self._worker = threading.Thread(target=self._work, name="pat-cache-coherence", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        next_check = 0.0
        while not self._closed.wait(self.retry_interval_seconds):
            now = self.clock()
            if now >= next_check:
                next_check = now + self.monitor_interval_seconds
                for name in self._changed_identities():
                    self._mark_down(name)
            self._recover(now)
            self._retry_pending(now)
            with self._lock:
                horizon = now - self.replay_window_seconds
                while self._recent and self._recent[0][0] < horizon:
                    self._recent.popleft()
                if not (self._pending or self._pending_tags or self._recent or self._down):
                    self._worker = None
                    return

    def _retry_pending(self, now: float) -> None:
        """Pending invalidations of nodes that are up (a down node's are re-applied by its recovery)."""
        with self._lock:
            for key in [k for k, p in self._pending.items() if p.expires <= now]:
                del self._pending[key]
            for tag in [t for t, expires in self._pending_tags.items() if expires <= now]:
                del self._pending_tags[tag]
            candidates = list(self._pending)
            tags = list(self._pending_tags)
            down = set(self._down)
        for key in candidates:
            if self._node(key) not in down and self._apply(key):
                self.stats.add(invalidations_retried=1)
        for tag in tags:
            self.invalidate_tag(tag)

    def _changed_identities(self) -> list[str]:
        """Primaries with a new run id, or new primaries: they may hold data older than our acknowledged deletes."""
        changed: list[str] = []
        for node in self.client.get_primaries():
            try:
                info = self.client.info("server", target_nodes=node)
            except CACHE_ERRORS:
                continue
            run_id = str(info.get("run_id", "")) if isinstance(info, dict) else ""
            name = str(node.name)
            with self._lock:
                previous = self._identities.get(name)
                known = bool(self._identities)
                self._identities[name] = run_id
            if known and previous != run_id:
                changed.append(name)
        return changed
