"""pat_data.cache_codec: decode(encode(v)) is v again, equal and of the same types all the way down (hypothesis), for
every type the codec supports; anything else fails at encode, and bytes of another format are refused, not misread."""

from __future__ import annotations

import enum
import ipaddress
import math
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pat_data import cache_codec
from pat_data.cache_codec import FormatError, decode, encode

# No example database: the tree stays clean (.hypothesis/ is not ignored) and a failure prints its example anyway.
SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Fixed offsets as psycopg gives them for timetz (and as datetime.timezone allows: strictly inside ±24 h).
fixed_zones = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59))
)
named_fixed_zones = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-12), max_value=timedelta(hours=12)),
    st.text(min_size=1, max_size=8),
)
zones: st.SearchStrategy[tzinfo | None] = st.one_of(
    st.none(), st.just(UTC), st.timezones(), fixed_zones, named_fixed_zones
)

SCALARS: dict[type, st.SearchStrategy[object]] = {
    type(None): st.none(),
    bool: st.booleans(),
    int: st.integers() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
    float: st.floats(),  # NaN, ±inf and -0.0 included
    str: st.text() | st.sampled_from(["$t", "v", "", "é✓", "\x00"]),
    bytes: st.binary(),
    Decimal: st.decimals(allow_nan=True, allow_infinity=True) | st.decimals(places=2, min_value=-999, max_value=999),
    uuid.UUID: st.uuids(),
    datetime: st.datetimes(timezones=zones, allow_imaginary=True),
    date: st.dates(),
    time: st.times(timezones=zones),
    timedelta: st.timedeltas(),
}
scalars = st.one_of(*SCALARS.values())
keys = st.text(max_size=10) | st.sampled_from(["$t", "v", "tz", "fold"])
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.dictionaries(keys, inner, max_size=5),
    ),
    max_leaves=25,
)


def assert_same(a: object, b: object, path: str = "value") -> None:
    """Equal and of identical types, recursively (Decimal by value and as_tuple; zones by type, offset and name)."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} became {type(b).__name__}"
    if isinstance(a, dict):
        assert isinstance(b, dict)
        assert list(a) == list(b), f"{path}: keys {list(a)} became {list(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple)
        assert len(a) == len(b), f"{path}: length {len(a)} became {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, Decimal):
        assert isinstance(b, Decimal)
        assert a.as_tuple() == b.as_tuple(), f"{path}: {a!r} became {b!r}"
        assert str(a) == str(b)
        if not a.is_nan():  # NaN never equals itself, and comparing an sNaN raises
            assert a == b
    elif isinstance(a, float):
        assert isinstance(b, float)
        assert (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b)), path
    elif isinstance(a, datetime | time):
        assert isinstance(b, datetime | time)
        assert a == b, f"{path}: {a!r} became {b!r}"
        assert a.fold == b.fold, f"{path}: fold of {a!r} became {b.fold}"
        assert type(a.tzinfo) is type(b.tzinfo), f"{path}: zone {a.tzinfo!r} became {b.tzinfo!r}"
        assert (a.utcoffset(), a.tzname()) == (b.utcoffset(), b.tzname()), f"{path}: {a!r} became {b!r}"
    else:
        assert a == b, f"{path}: {a!r} became {b!r}"


@pytest.mark.parametrize("kind", list(SCALARS), ids=lambda kind: kind.__name__)
def test_every_supported_type_has_a_strategy(kind: type) -> None:
    assert kind in cache_codec.SUPPORTED_TYPES


def test_every_strategy_covers_the_supported_types() -> None:
    assert {*SCALARS, list, tuple, dict} == cache_codec.SUPPORTED_TYPES


@SETTINGS
@given(values)
def test_round_trip_keeps_values_and_types(value: object) -> None:
    raw = encode(value)
    assert raw[:1] == bytes([cache_codec.FORMAT_VERSION])
    assert_same(value, decode(raw))


@SETTINGS
@given(st.dictionaries(keys, values, min_size=1, max_size=8))
def test_round_trip_of_row_shaped_dicts(row: dict[str, object]) -> None:
    """Rows are dicts of column name -> value; JSONB columns nest further dicts that may use the tag key."""
    assert_same(row, decode(encode(row)))


@SETTINGS
@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_decimal_keeps_its_exponent(value: Decimal) -> None:
    back = decode(encode(value))
    assert isinstance(back, Decimal)
    assert back == value
    assert back.as_tuple() == value.as_tuple()
    assert str(back) == str(value)


@SETTINGS
@given(st.datetimes(timezones=st.timezones() | fixed_zones, allow_imaginary=False))
def test_aware_datetimes_keep_zone_offset_and_microseconds(value: datetime) -> None:
    back = decode(encode(value))
    assert isinstance(back, datetime)
    assert back.tzinfo is not None
    assert value.tzinfo is not None
    assert back.utcoffset() == value.utcoffset()
    assert back.microsecond == value.microsecond
    assert back.tzinfo == value.tzinfo
    assert back.astimezone(UTC) == value.astimezone(UTC)


def test_an_email_row_round_trips_exactly() -> None:
    row = {
        "id": uuid.UUID("0b7c9f1e-2f43-4c53-9d4a-4a3f2b1c0d9e"),
        "tenant_id": uuid.UUID("5d9b0c55-7a0e-4e1f-8c59-0d0f6a1c2b3a"),
        "received_at": datetime(2026, 11, 1, 9, 30, 0, 123456, tzinfo=ZoneInfo("UTC")),
        "recipients": ["inbox@acme.test", "ops@acme.test"],
        "spam_score": Decimal("0.50"),
        "size_bytes": 1024,
        "metadata": {"$t": "uuid", "v": "not a tag: a user's key", "nested": [1, 2.5, None, True]},
        "text_body": None,
    }
    assert_same(row, decode(encode(row)))


def test_the_format_is_stable() -> None:
    """The exact bytes of this version: changing them means a new FORMAT_VERSION (old values are then refused)."""
    value = {
        "id": uuid.UUID(int=1),
        "at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=ZoneInfo("Europe/Berlin")),
        "n": Decimal("1.50"),
        "t": ("a", b"\x00\xff"),
        "d": date(2026, 1, 2),
        "clock": time(1, 2, tzinfo=timezone(timedelta(hours=-5))),
        "td": timedelta(days=-1, seconds=5),
        "nan": math.inf,
        "json": {"$t": 1},
    }
    assert encode(value) == (
        b'\x01{"id":{"$t":"uuid","v":"00000000000000000000000000000001"},'
        b'"at":{"$t":"dt","v":"2026-01-02T03:04:05.000006","tz":"Europe/Berlin"},'
        b'"n":{"$t":"dec","v":"1.50"},"t":{"$t":"tuple","v":["a",{"$t":"bytes","v":"AP8="}]},'
        b'"d":{"$t":"date","v":"2026-01-02"},"clock":{"$t":"time","v":"01:02:00","tz":[-18000000000]},'
        b'"td":{"$t":"td","v":[-1,5,0]},"nan":{"$t":"float","v":"inf"},"json":{"$t":"map","v":{"$t":1}}}'
    )


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Text(str):
    pass


class Offset(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "OFF"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({1, 2}, "builtins.set"),
        (frozenset(), "builtins.frozenset"),
        (bytearray(b"x"), "builtins.bytearray"),
        (ipaddress.ip_address("10.0.0.1"), "ipaddress.IPv4Address"),
        (Colour.RED, "Colour"),
        (Level.HIGH, "Level"),  # an int subclass is refused, not flattened to 3
        (Text("x"), "Text"),
        ({"nested": [object()]}, "builtins.object"),
        ({1: "int key"}, "dict key of type int"),
        (datetime(2026, 1, 1, tzinfo=Offset()), "tzinfo tests.unit.test_cache_codec.Offset"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_unknown_types_fail_loudly_at_encode(value: object, named: str) -> None:
    with pytest.raises(TypeError, match=named):
        encode(value)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": "0b7c9f1e-2f43-4c53-9d4a-4a3f2b1c0d9e"}',  # the JSON the cache wrote before this codec
        b'\x02{"id":1}',  # a future format version
        b"",
        b"\x01{not json",
        b'\x01{"$t":"rational","v":"1/3"}',
        b'\x01{"$t":"uuid","v":"xyz"}',
        b'\x01{"$t":"dec","v":"1.2.3"}',
        b'\x01{"$t":"dt","v":"2026-01-02","tz":"Nowhere/City"}',
        b'\x01{"$t":"td","v":[1,2]}',
    ],
)
def test_bytes_of_another_format_are_refused_not_misread(raw: bytes) -> None:
    with pytest.raises(FormatError):
        decode(raw)
