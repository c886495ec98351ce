"""The XCom codec: task values <-> JSON text, the only form XCom values are stored and sent in.

Plain JSON values (str, int, float, bool, None, lists, dicts with str keys) are written as
they are, so stored XComs stay readable by people, the UI and other languages. Other values
are written as tagged objects ``{"__tw_type__": <tag>, ...}`` and come back as the same type:

=====================  =========================================================
value                  decoded as
=====================  =========================================================
datetime (aware)       aware datetime, same instant and timezone (a naive one is
                       taken to be UTC); pendulum ``DateTime`` comes back as a
                       standard-library datetime
date, time             date, time (pendulum ``Date``/``Time`` as standard ones)
timedelta              timedelta, exactly (pendulum ``Duration`` too)
Decimal                Decimal, exactly
tuple, set, frozenset  tuple, set, frozenset
bytes, bytearray       bytes (base64 in the JSON)
UUID                   UUID
NaN, +/-infinity       float
dict with non-str      dict with the original keys
keys (or a key named
``__tw_type__``)
=====================  =========================================================

Anything else (objects, functions, cycles) raises :class:`~tradewind.errors.XComError`
naming the task and key, as does a value whose JSON is larger than ``max_size`` bytes.
Values are never pickled: XCom crosses process and machine boundaries and a pickle would run
code when read.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from tradewind.errors import XComError

__all__ = ["DEFAULT_MAX_SIZE", "TYPE_KEY", "decode", "encode"]

#: Default largest encoded value, in bytes (1 MiB).
DEFAULT_MAX_SIZE = 1024 * 1024
#: The key that marks a tagged (non-JSON) value.
TYPE_KEY = "__tw_type__"


class _Unencodable(Exception):
    def __init__(self, reason: str, path: str) -> None:
        self.reason = reason
        self.path = path


def _tz_name(tz: Any) -> str | None:
    from tradewind.sdk.timezone import tz_name

    try:
        return tz_name(tz)
    except Exception:
        return None  # an exotic tzinfo: the offset in the ISO string still fixes the instant


def _to_json(value: Any, path: str, active: set[int]) -> Any:
    # Exact type checks first: bool is an int, and pendulum types subclass the stdlib ones.
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return {TYPE_KEY: "float", "value": repr(value)}
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=UTC)
        tagged: dict[str, Any] = {TYPE_KEY: "datetime", "value": value.isoformat()}
        name = _tz_name(value.tzinfo)
        if name is not None:
            tagged["tz"] = name
        return tagged
    if isinstance(value, date):
        return {TYPE_KEY: "date", "value": date(value.year, value.month, value.day).isoformat()}
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise _Unencodable("a time of day with a timezone is ambiguous", path)
        return {TYPE_KEY: "time", "value": value.isoformat()}
    if isinstance(value, timedelta):
        return {
            TYPE_KEY: "timedelta",
            "days": value.days,
            "seconds": value.seconds,
            "microseconds": value.microseconds,
        }
    if isinstance(value, Decimal):
        return {TYPE_KEY: "decimal", "value": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {TYPE_KEY: "bytes", "value": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, uuid.UUID):
        return {TYPE_KEY: "uuid", "value": str(value)}
    if isinstance(value, list | tuple | set | frozenset | dict):
        if id(value) in active:
            raise _Unencodable("the value contains itself (a reference cycle)", path)
        active.add(id(value))
        try:
            return _container_to_json(value, path, active)
        finally:
            active.discard(id(value))
    raise _Unencodable(
        f"values of type {type(value).__module__}.{type(value).__qualname__} "
        "cannot be stored as XCom (JSON-like values only)",
        path,
    )


def _container_to_json(value: Any, path: str, active: set[int]) -> Any:
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TYPE_KEY not in value:
            return {k: _to_json(v, f"{path}[{k!r}]", active) for k, v in value.items()}
        items = [
            [_to_json(k, f"{path} key {k!r}", active), _to_json(v, f"{path}[{k!r}]", active)]
            for k, v in value.items()
        ]
        return {TYPE_KEY: "dict", "items": items}
    items = [_to_json(v, f"{path}[{i}]", active) for i, v in enumerate(value)]
    if isinstance(value, list):
        return items
    if isinstance(value, tuple):
        return {TYPE_KEY: "tuple", "items": items}
    try:
        # Sorted where possible so equal sets always encode the same way.
        items = [json_item for _, json_item in sorted(zip(value, items, strict=True))]
    except TypeError:
        pass
    tag = "frozenset" if isinstance(value, frozenset) else "set"
    return {TYPE_KEY: tag, "items": items}


def encode(
    value: Any,
    *,
    task_id: str | None = None,
    key: str | None = None,
    max_size: int | None = DEFAULT_MAX_SIZE,
) -> str:
    """``value`` as JSON text (see the module docstring).

    Raises :class:`XComError` (naming ``task_id`` and ``key``) when the value holds something
    that cannot be encoded, or when the text is longer than ``max_size`` bytes (None: no
    limit).
    """
    try:
        tree = _to_json(value, "value", set())
    except _Unencodable as exc:
        where = "" if exc.path == "value" else f" at {exc.path}"
        raise XComError(
            f"cannot encode XCom value{where}: {exc.reason}", task_id=task_id, key=key
        ) from None
    except RecursionError:
        raise XComError(
            "cannot encode XCom value: it is nested too deeply", task_id=task_id, key=key
        ) from None
    text = json.dumps(tree, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    if max_size is not None:
        size = len(text.encode("utf-8"))
        if size > max_size:
            raise XComError(
                f"XCom value is {size} bytes once encoded, more than the limit of {max_size} bytes; "
                "store large data elsewhere (a file or table) and pass its location instead",
                task_id=task_id,
                key=key,
            )
    return text


def _from_tagged(obj: dict[str, Any]) -> Any:
    tag = obj[TYPE_KEY]
    if tag == "datetime":
        result = datetime.fromisoformat(obj["value"])
        name = obj.get("tz")
        if name is not None:
            from tradewind.sdk.timezone import timezone_from_name

            result = result.astimezone(timezone_from_name(name))
        return result
    if tag == "date":
        return date.fromisoformat(obj["value"])
    if tag == "time":
        return time.fromisoformat(obj["value"])
    if tag == "timedelta":
        return timedelta(days=obj["days"], seconds=obj["seconds"], microseconds=obj["microseconds"])
    if tag == "decimal":
        return Decimal(obj["value"])
    if tag == "bytes":
        return base64.b64decode(obj["value"])
    if tag == "uuid":
        return uuid.UUID(obj["value"])
    if tag == "float":
        return float(obj["value"])
    if tag == "tuple":
        return tuple(_from_json(v) for v in obj["items"])
    if tag == "set":
        return {_from_json(v) for v in obj["items"]}
    if tag == "frozenset":
        return frozenset(_from_json(v) for v in obj["items"])
    if tag == "dict":
        return {_from_json(k): _from_json(v) for k, v in obj["items"]}
    raise XComError(f"cannot decode XCom value: unknown type tag {tag!r}")


def _from_json(tree: Any) -> Any:
    if isinstance(tree, list):
        return [_from_json(v) for v in tree]
    if isinstance(tree, dict):
        if TYPE_KEY in tree:
            return _from_tagged(tree)
        return {k: _from_json(v) for k, v in tree.items()}
    return tree


def decode(text: str | bytes) -> Any:
    """The value :func:`encode` wrote as ``text``.

    Raises :class:`XComError` when ``text`` is not valid JSON or holds an unknown tag.
    """
    try:
        tree = json.loads(text)
    except ValueError as exc:
        raise XComError(f"cannot decode XCom value: not valid JSON ({exc})") from None
    try:
        return _from_json(tree)
    except XComError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise XComError(f"cannot decode XCom value: malformed tagged value ({exc})") from None
