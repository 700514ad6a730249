"""The one serializer for cached values: a hit decodes to exactly what a miss returned (same types, same equality).

`encode(value) -> bytes` and `decode(raw) -> value` round-trip every value the repositories return, with the same
Python types all the way down: a row (dict) of UUID, tz-aware datetime, Decimal, text[] (list), JSONB (dict/list),
and so on. Anything else fails at encode with a TypeError naming the type: never a silent `str()`.

Format: one version byte (`FORMAT_VERSION`), then compact UTF-8 JSON in which the types JSON lacks are tagged objects
`{"$t": <tag>, "v": <payload>}`:

    None, bool, int, str, list       as JSON            float      JSON number; NaN/±inf as {"$t": "float"}
    dict (str keys)                  JSON object        tuple      {"$t": "tuple", "v": [...]}
    decimal.Decimal                  {"$t": "dec", "v": "1.50"}  (str(): sign, digits and exponent kept)
    uuid.UUID                        {"$t": "uuid", "v": "<hex>"}
    bytes                            {"$t": "bytes", "v": "<base64>"}
    datetime.date                    {"$t": "date", "v": "2026-11-01"}
    datetime.datetime / time         {"$t": "dt" | "time", "v": "<wall-clock ISO>", "tz": <zone>, "fold": 1}
    datetime.timedelta               {"$t": "td", "v": [days, seconds, microseconds]}

A zone is a `zoneinfo.ZoneInfo` key (`"Europe/Berlin"`, what psycopg puts on a timestamptz) or a fixed
`datetime.timezone` as `[offset_microseconds]` (plus its name when it has one of its own); "tz" is absent when naive
and "fold" when 0. A user dict that itself has a "$t" key is escaped as `{"$t": "map", "v": {...}}`, whose keys are
taken literally. A value written in another format version (or by the pre-codec JSON cache) raises `FormatError`
instead of being misread: callers treat it as a miss.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import TypeAlias, TypeVar, cast
from zoneinfo import ZoneInfo

__all__ = ["FORMAT_VERSION", "SUPPORTED_TYPES", "FormatError", "Value", "decode", "encode"]

FORMAT_VERSION = 1
_PREFIX = bytes([FORMAT_VERSION])
TAG = "$t"
T = TypeVar("T")

Value: TypeAlias = (
    bool
    | int
    | float
    | str
    | bytes
    | Decimal
    | uuid.UUID
    | datetime
    | date
    | time
    | timedelta
    | list["Value"]
    | tuple["Value", ...]
    | dict[str, "Value"]
    | None
)
_Json: TypeAlias = bool | int | float | str | list["_Json"] | dict[str, "_Json"] | None


class FormatError(ValueError):
    """The bytes are not a value of this format version (another version, the legacy JSON cache, or corrupt)."""


def _tz_out(tz: tzinfo) -> _Json:
    if type(tz) is ZoneInfo:
        if tz.key is None:
            raise TypeError("cache_codec cannot encode a ZoneInfo without a key (made from a file)")
        return tz.key
    if type(tz) is timezone:
        offset = tz.utcoffset(None)
        spec: list[_Json] = [offset // timedelta(microseconds=1)]
        name = tz.tzname(None)
        if name != timezone(offset).tzname(None):
            spec.append(name)
        return spec
    raise TypeError(f"cache_codec cannot encode tzinfo {type(tz).__module__}.{type(tz).__qualname__}")


def _tz_in(spec: _Json) -> tzinfo:
    if isinstance(spec, str):
        return ZoneInfo(spec)
    if isinstance(spec, list) and spec and isinstance(spec[0], int):
        offset = timedelta(microseconds=spec[0])
        return timezone(offset, spec[1]) if len(spec) == 2 and isinstance(spec[1], str) else timezone(offset)
    raise FormatError(f"bad zone {spec!r}")


def _clock(tag: str, wall: str, tz: tzinfo | None, fold: int) -> dict[str, _Json]:
    out: dict[str, _Json] = {TAG: tag, "v": wall}
    if tz is not None:
        out["tz"] = _tz_out(tz)
    if fold:
        out["fold"] = fold
    return out


def _datetime_out(value: datetime) -> _Json:
    return _clock("dt", value.replace(tzinfo=None, fold=0).isoformat(), value.tzinfo, value.fold)


def _time_out(value: time) -> _Json:
    return _clock("time", value.replace(tzinfo=None, fold=0).isoformat(), value.tzinfo, value.fold)


def _timedelta_out(value: timedelta) -> _Json:
    return {TAG: "td", "v": [value.days, value.seconds, value.microseconds]}


def _float_out(value: float) -> _Json:
    return value if math.isfinite(value) else {TAG: "float", "v": repr(value)}


def _dict_out(value: dict[object, object]) -> _Json:
    out: dict[str, _Json] = {}
    for key, item in value.items():
        if type(key) is not str:
            raise TypeError(f"cache_codec cannot encode a dict key of type {type(key).__qualname__} ({key!r})")
        out[key] = _out(item)
    return {TAG: "map", "v": out} if TAG in out else out


def _scalar(value: object) -> _Json:
    return cast(_Json, value)  # None, bool, int, str: their own JSON (the exact type was the dispatch key)


_ENCODERS: dict[type, Callable[[object], _Json]] = {  # keyed by exact type: a subclass (an Enum) fails loudly
    type(None): _scalar,
    bool: _scalar,
    int: _scalar,
    str: _scalar,
    float: lambda value: _float_out(cast(float, value)),
    list: lambda value: [_out(item) for item in cast(list[object], value)],
    dict: lambda value: _dict_out(cast(dict[object, object], value)),
    tuple: lambda value: {TAG: "tuple", "v": [_out(item) for item in cast(tuple[object, ...], value)]},
    Decimal: lambda value: {TAG: "dec", "v": str(value)},
    uuid.UUID: lambda value: {TAG: "uuid", "v": cast(uuid.UUID, value).hex},
    datetime: lambda value: _datetime_out(cast(datetime, value)),
    date: lambda value: {TAG: "date", "v": cast(date, value).isoformat()},
    time: lambda value: _time_out(cast(time, value)),
    timedelta: lambda value: _timedelta_out(cast(timedelta, value)),
    bytes: lambda value: {TAG: "bytes", "v": base64.b64encode(cast(bytes, value)).decode("ascii")},
}


def _out(value: object) -> _Json:
    encoder = _ENCODERS.get(type(value))
    if encoder is None:
        kind = type(value)
        raise TypeError(f"cache_codec cannot encode {kind.__module__}.{kind.__qualname__}: add it to the codec first")
    return encoder(value)


def _payload(obj: dict[str, _Json], kind: type[T]) -> T:
    value = obj.get("v")
    if not isinstance(value, kind):
        raise FormatError(f"tag {obj[TAG]!r}: payload {value!r} is not {kind.__qualname__}")
    return value


def _fold(obj: dict[str, _Json]) -> int:
    fold = obj.get("fold", 0)
    if fold not in (0, 1):
        raise FormatError(f"bad fold {fold!r}")
    return 1 if fold else 0


def _zone(obj: dict[str, _Json]) -> tzinfo | None:
    return _tz_in(obj["tz"]) if "tz" in obj else None


def _timedelta_in(obj: dict[str, _Json]) -> timedelta:
    parts = _payload(obj, list)
    if len(parts) != 3 or not all(type(part) is int for part in parts):
        raise FormatError(f"bad interval {parts!r}")
    days, seconds, microseconds = parts
    return timedelta(days=days, seconds=seconds, microseconds=microseconds)


def _float_in(obj: dict[str, _Json]) -> float:
    text = _payload(obj, str)
    if text not in ("nan", "inf", "-inf"):
        raise FormatError(f"bad non-finite float {text!r}")
    return float(text)


_DECODERS: dict[str, Callable[[dict[str, _Json]], Value]] = {
    "map": lambda obj: {key: _in(item) for key, item in _payload(obj, dict).items()},
    "tuple": lambda obj: tuple(_in(item) for item in _payload(obj, list)),
    "float": _float_in,
    "dec": lambda obj: Decimal(_payload(obj, str)),
    "uuid": lambda obj: uuid.UUID(hex=_payload(obj, str)),
    "bytes": lambda obj: base64.b64decode(_payload(obj, str), validate=True),
    "date": lambda obj: date.fromisoformat(_payload(obj, str)),
    "dt": lambda obj: datetime.fromisoformat(_payload(obj, str)).replace(tzinfo=_zone(obj), fold=_fold(obj)),
    "time": lambda obj: time.fromisoformat(_payload(obj, str)).replace(tzinfo=_zone(obj), fold=_fold(obj)),
    "td": _timedelta_in,
}


def _in(tree: _Json) -> Value:
    if isinstance(tree, list):
        return [_in(item) for item in tree]
    if not isinstance(tree, dict):
        return tree
    tag = tree.get(TAG)
    if tag is None:
        return {key: _in(item) for key, item in tree.items()}
    decoder = _DECODERS.get(tag) if isinstance(tag, str) else None
    if decoder is None:
        raise FormatError(f"unknown tag {tag!r}")
    return decoder(tree)


def encode(value: object) -> bytes:
    """`value` as bytes of format `FORMAT_VERSION`; TypeError (naming the type) for anything not in SUPPORTED_TYPES.

    Types are matched exactly (a subclass such as an Enum or a `str` subclass is refused, not flattened), dict keys
    must be `str`, a tz-aware datetime/time needs a `zoneinfo.ZoneInfo` with a key or a `datetime.timezone`.
    """
    text = json.dumps(_out(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    # surrogatepass: a str with a lone surrogate (legal in Python, not in UTF-8) still round-trips.
    return _PREFIX + text.encode("utf-8", "surrogatepass")


def decode(raw: bytes) -> Value:
    """The value `encode` was given, with the same types; FormatError when `raw` is not of this format version."""
    if raw[:1] != _PREFIX:
        raise FormatError(f"not cache_codec format {FORMAT_VERSION} (first byte {raw[:1]!r})")
    try:
        tree: _Json = json.loads(raw[1:].decode("utf-8", "surrogatepass"))
        return _in(tree)
    except FormatError:
        raise
    except (ValueError, TypeError, KeyError, ArithmeticError) as exc:  # corrupt JSON, base64, ISO, zone, Decimal
        raise FormatError(f"corrupt cache_codec value: {type(exc).__name__}: {exc}") from exc


SUPPORTED_TYPES: frozenset[type] = frozenset(_ENCODERS)
"""Every Python type `encode` accepts (exactly these types, nested in list/tuple/dict values)."""
