"""Typed values inside a serialized DAG document: the tagged JSON form and its reader.

JSON has strings, numbers, booleans, null, lists and string-keyed objects. Everything else a
DAG may hold in an argument is written as a *tagged* object ``{"__type": ..., "__value": ...}``:

=================  =====================================================================
``__type``         ``__value``
=================  =====================================================================
``datetime``       ISO 8601 text; a named zone adds ``"__tz": "Europe/Amsterdam"``
``date``/``time``  ISO 8601 text
``timedelta``      seconds (a float)
``tuple``          list of values
``set``            list of values, sorted by their canonical JSON (stable across processes)
``frozenset``      as ``set``
``decimal``        the exact decimal text
``float``          ``"nan"``, ``"inf"`` or ``"-inf"`` (JSON has no such numbers)
``bytes``          base64 text
``path``           the path text
``enum``           ``{"class": "module.Qualname", "value": <value>}``
``param``          ``{"value": ..., "description": ..., "schema": {...}}`` (``value`` absent
                   when the param is required)
``asset``          the asset's own ``to_dict()`` form
``dict``           ``[[key, value], ...]`` — a dict with non-string keys, or with a key this
                   table reserves (so user data can never be mistaken for a tag)
``callable``       the dotted name ``"module.qualname"`` (functions, methods, classes)
``templated``      ``{"class": "module.Qualname", "fields": {...}}`` — an object with its own
                   ``template_fields``, shown with the raw values of those fields
``repr``           the object's ``repr`` (display only; see below)
=================  =====================================================================

References to other tasks' results have their own keys so they stand out to readers:
``{"__xcomarg": {"task_id": ..., "key": ...}}`` for a task's output, and
``{"__xcomarg": {"type": "map" | "zip" | "concat", ...}}`` for the lazy transforms;
``{"__mapped_arg": {"group_id": ..., "key": ...}}`` for an argument of a mapped task group;
``{"__dag_param": {"name": ...}}`` for a ``@dag`` function argument.

**Strict and lenient encoding.** :func:`encode_value` with ``strict=True`` raises
:class:`~tradewind.errors.SerializationError` for an object it has no form for (the message
names the path inside the value, such as ``op_kwargs['when'][2]``). With ``strict=False`` such an
object becomes a ``repr`` tag instead. Memory addresses (``at 0x7f…``) are removed from the text
so that the document, and therefore the DAG hash, is the same in every process.

The reader (:func:`decode_value`) needs no imports from DAG files: enums of classes Tradewind
does not know, callables, templated objects and ``repr`` tags come back as small value objects
(:class:`EnumValue`, :class:`CallableRef`, :class:`TemplatedObject`, :class:`ReprValue`) and
references as :class:`XComRef` and friends. Every decoded value encodes back to exactly the same
JSON, so ``encode(decode(encode(v))) == encode(v)``.
"""

from __future__ import annotations

import base64
import decimal
import enum
import json
import math
import pathlib
import re
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from tradewind.errors import InvalidArgumentError, SerializationError

__all__ = [
    "DAG_PARAM_KEY",
    "MAPPED_ARG_KEY",
    "RESERVED_KEYS",
    "TYPE_KEY",
    "VALUE_KEY",
    "XCOM_KEY",
    "CallableRef",
    "ConcatXComRef",
    "EnumValue",
    "MapXComRef",
    "MappedArgumentRef",
    "ParamRef",
    "ReprValue",
    "TemplatedObject",
    "ValueEncodingError",
    "XComRef",
    "ZipXComRef",
    "canonical_json",
    "decode_param",
    "decode_value",
    "dotted_name",
    "encode_param",
    "encode_value",
    "is_reference",
    "iter_references",
]

TYPE_KEY = "__type"
VALUE_KEY = "__value"
TZ_KEY = "__tz"
XCOM_KEY = "__xcomarg"
MAPPED_ARG_KEY = "__mapped_arg"
DAG_PARAM_KEY = "__dag_param"
#: Keys that mark a tagged object; a user dict holding one of them is written in ``dict`` form.
RESERVED_KEYS = frozenset({TYPE_KEY, XCOM_KEY, MAPPED_ARG_KEY, DAG_PARAM_KEY})

_ADDRESS_RE = re.compile(r" at 0x[0-9a-fA-F]+")
_MAX_REPR = 2000


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the same text for equal documents in every process."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def dotted_name(obj: Any) -> str | None:
    """``"module.qualname"`` of a function, method or class (None when it has no name)."""
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(qualname, str):
        return None
    module = getattr(obj, "__module__", None)
    return f"{module}.{qualname}" if isinstance(module, str) and module else qualname


def safe_repr(value: Any) -> str:
    """``repr(value)`` without memory addresses, shortened, never raising."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break serialization
        text = f"<{type(value).__name__} (repr failed: {type(exc).__name__})>"
    text = _ADDRESS_RE.sub("", text)
    if len(text) > _MAX_REPR:
        text = text[: _MAX_REPR - 1] + "…"
    return text


# -- decoded value objects ---------------------------------------------------------------------


@dataclass(frozen=True)
class XComRef:
    """The value task ``task_id`` pushed under ``key`` (decoded ``{"__xcomarg": ...}``)."""

    task_id: str
    key: str = "return_value"

    def iter_references(self) -> Iterator[tuple[str, str]]:
        """(task_id, key) of every result this reference reads."""
        yield self.task_id, self.key


@dataclass(frozen=True)
class MapXComRef:
    """Another reference with functions (by dotted name) applied to each item."""

    arg: Any
    callables: tuple[str, ...]

    def iter_references(self) -> Iterator[tuple[str, str]]:
        """(task_id, key) of every result this reference reads."""
        yield from self.arg.iter_references()


@dataclass(frozen=True)
class ZipXComRef:
    """References paired item by item (``fillvalue`` used only when ``has_fillvalue``)."""

    args: tuple[Any, ...]
    fillvalue: Any = None
    has_fillvalue: bool = False

    def iter_references(self) -> Iterator[tuple[str, str]]:
        """(task_id, key) of every result this reference reads."""
        for arg in self.args:
            yield from arg.iter_references()


@dataclass(frozen=True)
class ConcatXComRef:
    """The items of several references one after the other."""

    args: tuple[Any, ...]

    def iter_references(self) -> Iterator[tuple[str, str]]:
        """(task_id, key) of every result this reference reads."""
        for arg in self.args:
            yield from arg.iter_references()


@dataclass(frozen=True)
class MappedArgumentRef:
    """Argument ``key`` of the mapped task group ``group_id``, for the current map index."""

    group_id: str
    key: str


@dataclass(frozen=True)
class ParamRef:
    """The run's value of the DAG param ``name`` (a ``@dag`` function argument)."""

    name: str


@dataclass(frozen=True)
class CallableRef:
    """A function, method or class, known only by its dotted name."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class EnumValue:
    """A member of an enum class Tradewind does not import, by class path and value."""

    class_path: str
    value: Any


@dataclass(frozen=True)
class ReprValue:
    """An object with no JSON form, kept as its ``repr`` for display."""

    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, eq=True)
class TemplatedObject:
    """An object with its own ``template_fields``: its class path and raw field values."""

    class_path: str
    fields: dict[str, Any] = field(default_factory=dict)


_REFERENCE_TYPES = (XComRef, MapXComRef, ZipXComRef, ConcatXComRef, MappedArgumentRef)


def is_reference(value: Any) -> bool:
    """Whether ``value`` is a decoded reference to task results (or a mapped-group argument)."""
    return isinstance(value, _REFERENCE_TYPES)


def iter_references(value: Any) -> Iterator[tuple[str, str]]:
    """(task_id, key) of every task result a decoded value (possibly nested) reads."""
    if isinstance(value, XComRef | MapXComRef | ZipXComRef | ConcatXComRef):
        yield from value.iter_references()
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from iter_references(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_references(item)
    elif isinstance(value, TemplatedObject):
        yield from iter_references(value.fields)


# -- encoding ----------------------------------------------------------------------------------


class _Unencodable(Exception):
    """Raised inside the encoder; ``path`` grows (innermost first) while it unwinds."""

    def __init__(self, value: Any, reason: str | None = None) -> None:
        super().__init__(reason)
        self.value = value
        self.reason = reason
        self.path: list[str] = []


def _tag(kind: str, value: Any) -> dict[str, Any]:
    return {TYPE_KEY: kind, VALUE_KEY: value}


def encode_param(param: Any) -> dict[str, Any]:
    """A :class:`~tradewind.sdk.params.Param` as ``{"value"?, "description", "schema"}``.

    The value and schema must be plain JSON (they are validated against each other at run time,
    and the trigger form shows them); anything else raises
    :class:`~tradewind.errors.SerializationError`.
    """
    from tradewind.sdk.params import NOTSET

    out: dict[str, Any] = {}
    if param.value is not NOTSET:
        out["value"] = _plain_json(param.value, "value")
    description = param.description
    if description is not None and not isinstance(description, str):
        raise SerializationError(
            f"the param description must be text, not {type(description).__name__}"
        )
    out["description"] = description
    out["schema"] = _plain_json(param.schema, "schema")
    return out


def decode_param(data: Mapping[str, Any]) -> Any:
    """The :class:`~tradewind.sdk.params.Param` that :func:`encode_param` wrote."""
    from tradewind.sdk.params import NOTSET, Param

    return Param(
        data.get("value", NOTSET),
        data.get("description"),
        schema=dict(data.get("schema") or {}),
    )


def _plain_json(value: Any, what: str) -> Any:
    t = type(value)
    if value is None or t is str or t is bool or t is int:
        return value
    try:
        # Tuples become lists here, exactly as they will after a trip through JSON text.
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"the param {what} is not plain JSON data: {exc}") from None


def encode_value(value: Any, *, strict: bool = True, argument: str = "value") -> Any:
    """The JSON form of ``value`` (see the module docstring).

    Args:
        value: anything a DAG argument may hold.
        strict: raise for objects with no JSON form (True), or write them as ``repr`` tags.
        argument: the name used in error messages (``op_kwargs`` gives ``op_kwargs['x'][0]``).

    Raises:
        SerializationError: ``strict`` and some part of the value has no JSON form; the
            error's ``argument`` is the path to that part.
    """
    try:
        return _encode(value, strict, set())
    except _Unencodable as exc:
        path = argument + "".join(reversed(exc.path))
        reason = exc.reason or (
            f"a value of type {_type_name(exc.value)} cannot be serialized; use JSON data "
            "(str, int, float, bool, None, list, dict), a date/time, a timedelta, an enum or a Param"
        )
        raise ValueEncodingError(path, reason) from None


class ValueEncodingError(SerializationError):
    """A value with no JSON form; ``path`` locates it (``op_kwargs['when'][2]``)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}", argument=path)


def _type_name(value: Any) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__


def _encode(value: Any, strict: bool, seen: set[int]) -> Any:
    t = type(value)
    if value is None or t is str or t is bool or t is int:
        return value
    if t is float:
        return value if math.isfinite(value) else _tag("float", repr(value))
    if t is list:
        return _encode_items(value, strict, seen)
    if t is dict:
        return _encode_dict(value, strict, seen)
    return _encode_other(value, strict, seen)


def _encode_items(items: Any, strict: bool, seen: set[int]) -> list[Any]:
    out = []
    for i, item in enumerate(items):
        try:
            out.append(_encode(item, strict, seen))
        except _Unencodable as exc:
            exc.path.append(f"[{i}]")
            raise
    return out


def _encode_dict(value: Mapping[Any, Any], strict: bool, seen: set[int]) -> Any:
    plain = all(type(k) is str and k not in RESERVED_KEYS for k in value)
    if plain:
        out: dict[str, Any] = {}
        for k, v in value.items():
            try:
                out[k] = _encode(v, strict, seen)
            except _Unencodable as exc:
                exc.path.append(f"[{k!r}]")
                raise
        return out
    pairs = []
    for k, v in value.items():
        try:
            pairs.append([_encode(k, strict, seen), _encode(v, strict, seen)])
        except _Unencodable as exc:
            exc.path.append(f"[{k!r}]")
            raise
    # Sorted so a dict built in hash-seed-dependent order still gives one document.
    pairs.sort(key=lambda pair: canonical_json(pair[0]))
    return _tag("dict", pairs)


def _encode_datetime(value: datetime) -> dict[str, Any]:
    out = _tag("datetime", value.isoformat())
    zone = value.tzinfo
    if zone is not None:
        from tradewind.sdk.timezone import tz_name

        try:
            name = tz_name(zone)
        except InvalidArgumentError:
            name = None
        # Offsets ("+02:00") and UTC are already in the ISO text; a named zone is not.
        if name and name != "UTC" and name[0] not in "+-":
            out[TZ_KEY] = name
    return out


def _encode_other(value: Any, strict: bool, seen: set[int]) -> Any:
    from tradewind.sdk.assets import BaseAsset
    from tradewind.sdk.params import Param
    from tradewind.sdk.xcom_arg import DagParamRef, MappedArgument, XComArg

    if isinstance(value, enum.Enum):
        class_path = dotted_name(type(value)) or type(value).__name__
        return _tag("enum", {"class": class_path, "value": _encode(value.value, strict, seen)})
    if isinstance(value, XComArg):
        return {XCOM_KEY: _encode_xcomarg(value, strict, seen)}
    if isinstance(value, MappedArgument):
        return {MAPPED_ARG_KEY: {"group_id": value.group.group_id, "key": value.key}}
    if isinstance(value, DagParamRef):
        return {DAG_PARAM_KEY: {"name": value.name}}
    if isinstance(value, bool | int):
        return int(value) if not isinstance(value, bool) else bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return _encode(float(value), strict, seen)
    if isinstance(value, datetime):
        return _encode_datetime(value)
    if isinstance(value, date):
        return _tag("date", value.isoformat())
    if isinstance(value, time):
        return _tag("time", value.isoformat())
    if isinstance(value, timedelta):
        return _tag("timedelta", value.total_seconds())
    if isinstance(value, tuple):
        return _tag("tuple", _encode_items(value, strict, seen))
    if isinstance(value, list):
        return _encode_items(value, strict, seen)
    if isinstance(value, set | frozenset):
        items = _encode_items(value, strict, seen)
        items.sort(key=canonical_json)
        return _tag("frozenset" if isinstance(value, frozenset) else "set", items)
    if isinstance(value, Mapping):
        return _encode_dict(value, strict, seen)
    if isinstance(value, decimal.Decimal):
        return _tag("decimal", str(value))
    if isinstance(value, bytes | bytearray):
        return _tag("bytes", base64.b64encode(bytes(value)).decode("ascii"))
    if isinstance(value, pathlib.PurePath):
        return _tag("path", str(value))
    if isinstance(value, Param):
        try:
            return _tag("param", encode_param(value))
        except SerializationError as exc:
            if strict:
                raise _Unencodable(value, str(exc)) from None
            return _tag("repr", safe_repr(value))
    if isinstance(value, BaseAsset):
        return _tag("asset", value.to_dict())
    decoded = _encode_decoded(value, strict, seen)
    if decoded is not None:
        return decoded
    if isinstance(value, types.FunctionType | types.BuiltinFunctionType | types.MethodType | type):
        name = dotted_name(value)
        if name is not None:
            return _tag("callable", name)
    nested_fields = getattr(type(value), "template_fields", None)
    if nested_fields is not None and id(value) not in seen:
        return _encode_templated(value, nested_fields, strict, seen)
    if strict:
        raise _Unencodable(value)
    return _tag("repr", safe_repr(value))


def _encode_templated(value: Any, names: Any, strict: bool, seen: set[int]) -> dict[str, Any]:
    seen.add(id(value))
    fields: dict[str, Any] = {}
    for name in (names,) if isinstance(names, str) else tuple(names):
        try:
            fields[name] = _encode(getattr(value, name, None), strict, seen)
        except _Unencodable as exc:
            exc.path.append(f".{name}")
            raise
    seen.discard(id(value))
    return _tag("templated", {"class": dotted_name(type(value)), "fields": fields})


def _encode_decoded(value: Any, strict: bool, seen: set[int]) -> Any:
    """The JSON of a value object made by :func:`decode_value` (so views re-serialize)."""
    if isinstance(value, XComRef | MapXComRef | ZipXComRef | ConcatXComRef):
        return {XCOM_KEY: _encode_xcomref(value, strict, seen)}
    if isinstance(value, MappedArgumentRef):
        return {MAPPED_ARG_KEY: {"group_id": value.group_id, "key": value.key}}
    if isinstance(value, ParamRef):
        return {DAG_PARAM_KEY: {"name": value.name}}
    if isinstance(value, CallableRef):
        return _tag("callable", value.name)
    if isinstance(value, EnumValue):
        return _tag(
            "enum", {"class": value.class_path, "value": _encode(value.value, strict, seen)}
        )
    if isinstance(value, ReprValue):
        return _tag("repr", value.text)
    if isinstance(value, TemplatedObject):
        fields = {k: _encode(v, strict, seen) for k, v in value.fields.items()}
        return _tag("templated", {"class": value.class_path, "fields": fields})
    return None


def _callable_names(callables: Any) -> list[str]:
    return [dotted_name(fn) or safe_repr(fn) for fn in callables]


def _encode_xcomarg(arg: Any, strict: bool, seen: set[int]) -> dict[str, Any]:
    from tradewind.sdk.xcom_arg import ConcatXComArg, MapXComArg, PlainXComArg, ZipXComArg

    if isinstance(arg, PlainXComArg):
        return {"task_id": arg.operator.task_id, "key": arg.key}
    if isinstance(arg, MapXComArg):
        return {
            "type": "map",
            "arg": _encode(arg.arg, strict, seen),
            "callables": _callable_names(arg.callables),
        }
    if isinstance(arg, ZipXComArg):
        out: dict[str, Any] = {"type": "zip", "args": [_encode(a, strict, seen) for a in arg.args]}
        if arg.has_fillvalue:
            out["fillvalue"] = _encode(arg.fillvalue, strict, seen)
        return out
    if isinstance(arg, ConcatXComArg):
        return {"type": "concat", "args": [_encode(a, strict, seen) for a in arg.args]}
    raise _Unencodable(arg, f"unknown kind of task-result reference {type(arg).__name__}")


def _encode_xcomref(ref: Any, strict: bool, seen: set[int]) -> dict[str, Any]:
    if isinstance(ref, XComRef):
        return {"task_id": ref.task_id, "key": ref.key}
    if isinstance(ref, MapXComRef):
        return {
            "type": "map",
            "arg": _encode(ref.arg, strict, seen),
            "callables": list(ref.callables),
        }
    if isinstance(ref, ZipXComRef):
        out: dict[str, Any] = {"type": "zip", "args": [_encode(a, strict, seen) for a in ref.args]}
        if ref.has_fillvalue:
            out["fillvalue"] = _encode(ref.fillvalue, strict, seen)
        return out
    return {"type": "concat", "args": [_encode(a, strict, seen) for a in ref.args]}


# -- decoding ----------------------------------------------------------------------------------


def decode_value(data: Any) -> Any:
    """The Python value for JSON written by :func:`encode_value`.

    Raises:
        SerializationError: a tag this version does not know, or a malformed tag.
    """
    t = type(data)
    if t is list:
        return [decode_value(item) for item in data]
    if t is dict:
        if TYPE_KEY in data:
            return _decode_tagged(data)
        if len(data) == 1:
            if XCOM_KEY in data:
                return _decode_xcom(data[XCOM_KEY])
            if MAPPED_ARG_KEY in data:
                ref = data[MAPPED_ARG_KEY]
                return MappedArgumentRef(ref["group_id"], ref["key"])
            if DAG_PARAM_KEY in data:
                return ParamRef(data[DAG_PARAM_KEY]["name"])
        return {k: decode_value(v) for k, v in data.items()}
    return data


def _decode_xcom(data: Mapping[str, Any]) -> Any:
    kind = data.get("type")
    if kind is None:
        return XComRef(data["task_id"], data.get("key", "return_value"))
    if kind == "map":
        return MapXComRef(decode_value(data["arg"]), tuple(data.get("callables", ())))
    if kind == "zip":
        args = tuple(decode_value(a) for a in data["args"])
        if "fillvalue" in data:
            return ZipXComRef(args, decode_value(data["fillvalue"]), True)
        return ZipXComRef(args)
    if kind == "concat":
        return ConcatXComRef(tuple(decode_value(a) for a in data["args"]))
    raise SerializationError(f"unknown kind of task-result reference {kind!r}")


def _known_enums() -> dict[str, type[enum.Enum]]:
    from tradewind.sdk.trigger_rule import TriggerRule, WeightRule
    from tradewind.state import RunState, TaskState

    return {
        dotted_name(cls) or cls.__name__: cls
        for cls in (TriggerRule, WeightRule, TaskState, RunState)
    }


def _decode_datetime(data: Mapping[str, Any]) -> datetime:
    value = datetime.fromisoformat(data[VALUE_KEY])
    zone = data.get(TZ_KEY)
    if zone:
        from tradewind.sdk.timezone import timezone_from_name

        value = value.astimezone(timezone_from_name(zone))
    return value


def _decode_enum(payload: Mapping[str, Any]) -> Any:
    cls = _known_enums().get(payload["class"])
    value = decode_value(payload["value"])
    if cls is not None:
        try:
            return cls(value)
        except ValueError:
            pass
    return EnumValue(payload["class"], value)


def _decode_dict_pairs(payload: list[Any]) -> dict[Any, Any]:
    return {decode_value(k): decode_value(v) for k, v in payload}


def _decode_set(payload: list[Any]) -> set[Any]:
    return {decode_value(v) for v in payload}


def _decode_frozenset(payload: list[Any]) -> frozenset[Any]:
    return frozenset(decode_value(v) for v in payload)


def _decode_float(payload: str) -> float:
    return float(payload)


def _decode_asset(payload: Mapping[str, Any]) -> Any:
    from tradewind.sdk.assets import asset_from_dict

    return asset_from_dict(payload)


def _decode_templated(payload: Mapping[str, Any]) -> TemplatedObject:
    fields = {k: decode_value(v) for k, v in payload["fields"].items()}
    return TemplatedObject(payload["class"], fields)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "timedelta": lambda seconds: timedelta(seconds=seconds),
    "tuple": lambda items: tuple(decode_value(v) for v in items),
    "set": _decode_set,
    "frozenset": _decode_frozenset,
    "decimal": decimal.Decimal,
    "float": _decode_float,
    "bytes": lambda text: base64.b64decode(text.encode("ascii")),
    "path": pathlib.PurePosixPath,
    "enum": _decode_enum,
    "param": decode_param,
    "asset": _decode_asset,
    "dict": _decode_dict_pairs,
    "callable": CallableRef,
    "templated": _decode_templated,
    "repr": ReprValue,
}


def _decode_tagged(data: Mapping[str, Any]) -> Any:
    kind = data[TYPE_KEY]
    if kind == "datetime":
        return _decode_datetime(data)
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise SerializationError(
            f"unknown value type {kind!r} in a serialized DAG (written by a newer Tradewind?)"
        )
    try:
        return decoder(data[VALUE_KEY])
    except SerializationError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise SerializationError(f"malformed serialized {kind} value {data!r}: {exc}") from None
