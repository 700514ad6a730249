"""The types the cache codec must carry, derived from the database rather than guessed.

Every repository read the cache serves or could serve (EmailRepository.get, TenantRepository.settings, and the row
shapes of EmailRepository.page and .search) runs against the migrated schema through a cursor that records
`cursor.description`. Each result column's type OID is named by psycopg's type registry and mapped to the Python
types psycopg loads it as; an OID outside that table, or mapped to a type `cache_codec` does not support, fails the
test, so a new column type cannot slip into the cache unnoticed. Then real rows from the same reads (a row exercising
every column, numeric and tz-aware timestamps included, in UTC and in a +05:30 session) round-trip through the codec
with identical values and types, and a cache wired to the codec returns on a hit exactly what the miss returned.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import Row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from pat_data import cache_codec, repositories
from pat_data.cache import Cache, CacheSettings, cluster_client
from pat_data.connect import Target, connect, pool, target_from_dsn
from pat_data.local import LocalPgBouncer, LocalPostgres, LocalRedisCluster
from pat_data.repositories import Database, EmailRepository, NewEmail, TenantRepository
from tests.unit.test_cache_codec import assert_same

DataTier = tuple[LocalPostgres, LocalPgBouncer]
JSON_TYPES = (dict, list, str, int, float, bool, type(None))
IP_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Interface, ipaddress.IPv6Interface)
# PostgreSQL type name (psycopg's registry) -> the Python types psycopg 3 loads it as. The allowlist: a result column
# of a type not named here fails the test until it is added here and, if its Python type is new, to the codec.
PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "int2": (int,),
    "int4": (int,),
    "int8": (int,),
    "oid": (int,),
    "float4": (float,),
    "float8": (float,),
    "numeric": (Decimal,),
    "text": (str,),
    "varchar": (str,),
    "bpchar": (str,),
    "name": (str,),
    "uuid": (uuid.UUID,),
    "bytea": (bytes,),
    "date": (date,),
    "time": (time,),
    "timetz": (time,),
    "timestamp": (datetime,),
    "timestamptz": (datetime,),
    "interval": (timedelta,),
    "json": JSON_TYPES,
    "jsonb": JSON_TYPES,
    # Known, and not supported by the codec: a read returning one of these must fail until the codec learns it.
    "inet": IP_TYPES,
    "cidr": (ipaddress.IPv4Network, ipaddress.IPv6Network),
}
# What the repositories return today (checked below, so this list stays true): the report's OID table.
EXPECTED_OIDS = {
    "int8": 20,
    "text": 25,
    "float4": 700,
    "_text": 1009,
    "timestamptz": 1184,
    "numeric": 1700,
    "uuid": 2950,
    "jsonb": 3802,
}


class RecordingCursor(psycopg.Cursor[Row]):
    """Records the result columns of every statement that returns rows (the tenant scope aside)."""

    seen: ClassVar[list[tuple[str, tuple[psycopg.Column, ...]]]] = []

    def execute(self, *args: Any, **kwargs: Any) -> RecordingCursor[Row]:
        super().execute(*args, **kwargs)
        columns = tuple(self.description or ())
        if columns and any(column.name != "set_request_context" for column in columns):
            RecordingCursor.seen.append((str(args[0])[:60], columns))
        return self


class RecordingClientCursor(psycopg.ClientCursor[Row]):
    """The same, for Database.read's one-message reads (client-side binding; the query is the second result)."""

    def nextset(self) -> bool | None:
        found = super().nextset()
        columns = tuple(self.description or ())
        if found and columns and any(column.name != "set_request_context" for column in columns):
            RecordingCursor.seen.append(("Database.read", columns))
        return found


@pytest.fixture(autouse=True)
def record_one_message_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repositories, "ClientCursor", RecordingClientCursor)


def python_types(adapters: psycopg.adapt.AdaptersMap, oid: int) -> tuple[str, tuple[type, ...]]:
    """The type's name and what psycopg loads it as; arrays load as lists of their element's types."""
    info = adapters.types.get(oid)
    if info is None:
        raise AssertionError(f"type OID {oid} is not in psycopg's registry: an unknown type reaches the cache")
    is_array = info.array_oid == oid and info.oid != oid
    name = f"_{info.name}" if is_array else info.name
    if info.name not in PYTHON_TYPES:
        raise AssertionError(f"type {name} (OID {oid}) is not mapped: add it to PYTHON_TYPES and to the codec")
    element = PYTHON_TYPES[info.name]
    return name, ((list, *element) if is_array else element)


@pytest.fixture(scope="module")
def recording_pool(data_tier: DataTier, pat_database: Target) -> Iterator[ConnectionPool]:
    _, bouncer = data_tier
    target = target_from_dsn(bouncer.dsn("pat_app", pat_database.dbname), pooled=True)
    created = pool(target, min_size=1, max_size=2, cursor_factory=RecordingCursor)
    yield created
    created.close()


@pytest.fixture(scope="module")
def kolkata_pool(data_tier: DataTier, pat_database: Target) -> Iterator[ConnectionPool]:
    """pat_app straight to PostgreSQL with session TimeZone +05:30 (PgBouncer would refuse the startup option)."""
    postgres, bouncer = data_tier
    dsn = postgres.dsn("pat_app", bouncer.users["pat_app"], pat_database.dbname)
    created = pool(target_from_dsn(dsn), min_size=1, max_size=1, options="-c TimeZone=Asia/Kolkata")
    yield created
    created.close()


@pytest.fixture(scope="module")
def tenant(pat_database: Target) -> uuid.UUID:
    with connect(pat_database) as conn:
        row = conn.execute(
            "INSERT INTO pat.tenants (slug, name, plan, settings) VALUES (%s, 'Typed Ltd', 'team', %s) RETURNING id",
            (
                f"typed-{uuid.uuid4().hex[:8]}",
                Jsonb({"theme": "dark", "$t": "uuid", "limits": {"daily": 5000, "ratio": 0.25}, "flags": [True, None]}),
            ),
        ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


WORD = "zanzibar"


@pytest.fixture(scope="module")
def email_id(recording_pool: ConnectionPool, tenant: uuid.UUID) -> uuid.UUID:
    """One email exercising every column the reads return (numeric spam score, microseconds, a non-UTC offset)."""
    repo = EmailRepository(Database(recording_pool))
    received = datetime.now(timezone(timedelta(hours=-3, minutes=-30))).replace(microsecond=654321)
    new = NewEmail(
        idempotency_key=f"typed-{uuid.uuid4()}",
        received_at=received,
        message_id="<typed@mail.test>",
        sender="Zoë <zoe@example.com>",
        recipients=["inbox@acme.test", "ops@acme.test", "ünïcode@acme.test"],
        subject=f"Typed values {WORD} ✓",
        text_body=f"Body about {WORD}.",
        html_body="<p>hi</p>",
        headers={"x-mailer": "typed", "received": ["a", "b"]},
        metadata={"$t": "dec", "v": "not a tag", "score": 1.5, "nested": {"ids": [1, 2, 3], "none": None}},
        size_bytes=150 * 2**20,
        spam_score=12.3,
    )
    assert repo.ingest(tenant, [new]).inserted == 1
    page = repo.page(tenant, limit=1)
    assert page.items
    return uuid.UUID(str(page.items[0]["id"]))


def read_paths(db: Database, tenant: uuid.UUID, email_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """Every read the cache serves or could serve, each with the rows it returned."""
    emails, tenants = EmailRepository(db), TenantRepository(db)
    email, settings = emails.get(tenant, email_id), tenants.settings(tenant)
    assert email is not None
    assert settings is not None
    return {
        "EmailRepository.get": [email],
        "TenantRepository.settings": [settings],
        "EmailRepository.page": emails.page(tenant, limit=10).items,
        "EmailRepository.search": emails.search(tenant, WORD),
    }


def test_every_result_column_type_is_one_the_codec_supports(
    recording_pool: ConnectionPool, tenant: uuid.UUID, email_id: uuid.UUID
) -> None:
    db = Database(recording_pool)
    found: dict[str, int] = {}
    for path, read in [
        ("EmailRepository.get", lambda: EmailRepository(db).get(tenant, email_id)),
        ("TenantRepository.settings", lambda: TenantRepository(db).settings(tenant)),
        ("EmailRepository.page", lambda: EmailRepository(db).page(tenant, limit=10).items),
        ("EmailRepository.search", lambda: EmailRepository(db).search(tenant, WORD)),
    ]:
        RecordingCursor.seen.clear()
        result = read()
        assert result, f"{path} returned nothing: the row exercising every column is missing"
        assert RecordingCursor.seen, f"{path}: no result columns recorded"
        rows = result if isinstance(result, list) else [result]
        with recording_pool.connection() as conn:
            adapters = conn.adapters
        for _, columns in RecordingCursor.seen:
            for column in columns:
                name, types = python_types(adapters, column.type_code)
                unsupported = [t.__qualname__ for t in types if t not in cache_codec.SUPPORTED_TYPES]
                assert not unsupported, f"{path}.{column.name}: {name} loads as {unsupported}, not in the codec"
                for row in rows:  # the table says what psycopg really loads
                    value = row[column.name]
                    assert value is None or type(value) in types, f"{path}.{column.name}: {type(value)} for {name}"
                found[name] = column.type_code
    assert found == EXPECTED_OIDS, "the repositories' column types changed: update EXPECTED_OIDS (and the report)"


def test_an_unmapped_column_type_fails(recording_pool: ConnectionPool) -> None:
    """The check above can fail: inet (mapped, not supported) and tsvector (not mapped) are both refused."""
    with recording_pool.connection() as conn:
        columns = conn.execute("SELECT '10.0.0.1'::inet AS ip, to_tsvector('simple', 'x') AS search").description
        assert columns is not None
        name, types = python_types(conn.adapters, columns[0].type_code)
        assert name == "inet"
        assert not set(types) & cache_codec.SUPPORTED_TYPES
        with pytest.raises(AssertionError, match=r"type tsvector \(OID 3614\) is not mapped"):
            python_types(conn.adapters, columns[1].type_code)


@pytest.mark.parametrize("session_zone", ["default", "Asia/Kolkata"])
def test_real_rows_round_trip_with_identical_types(
    request: pytest.FixtureRequest, session_zone: str, tenant: uuid.UUID, email_id: uuid.UUID
) -> None:
    db = Database(request.getfixturevalue("recording_pool" if session_zone == "default" else "kolkata_pool"))
    for path, rows in read_paths(db, tenant, email_id).items():
        assert rows, path
        for row in rows:
            assert_same(row, cache_codec.decode(cache_codec.encode(row)), path)
    email = EmailRepository(db).get(tenant, email_id)
    assert email is not None
    assert email["spam_score"] == Decimal("12.30")
    assert email["spam_score"].as_tuple().exponent == -2
    assert email["received_at"].microsecond == 654321
    assert email["received_at"].tzinfo is not None
    if session_zone != "default":
        assert email["received_at"].tzinfo == ZoneInfo("Asia/Kolkata")


def test_a_hit_equals_the_miss(
    redis_cluster: LocalRedisCluster, recording_pool: ConnectionPool, tenant: uuid.UUID, email_id: uuid.UUID
) -> None:
    client = cluster_client(
        CacheSettings(host="127.0.0.1", port=redis_cluster.ports[0], password=redis_cluster.password, tls=False)
    )
    try:
        cache = Cache(client, namespace=f"codec{uuid.uuid4().hex[:6]}")
        db = Database(recording_pool)
        emails, tenants = EmailRepository(db, cache=cache), TenantRepository(db, cache=cache)
        email_miss, settings_miss = emails.get(tenant, email_id), tenants.settings(tenant)
        email_hit, settings_hit = emails.get(tenant, email_id), tenants.settings(tenant)
        assert (cache.stats.misses, cache.stats.hits, cache.stats.errors) == (2, 2, 0)
        assert_same(email_miss, email_hit, "email")
        assert_same(settings_miss, settings_hit, "settings")
        assert email_hit is not None
        assert email_hit["id"] == email_id
    finally:
        client.close()
