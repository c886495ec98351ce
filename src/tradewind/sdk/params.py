"""DAG and task params: default values with a JSON schema, merged and validated per run.

A :class:`Param` is a default value plus JSON-schema keywords; a param without a default is
required. :class:`ParamsDict` maps names to params (plain values become ``Param(value)``).
At run time :func:`merge_params` layers DAG params < task params < ``dag_run.conf`` (the
Airflow-compatible precedence) and validates the result, which becomes ``params`` in the task
context::

    with DAG("report", params={"region": Param("eu", enum=["eu", "us"]), "limit": 10}):
        ...

    merge_params(dag.params, task.params, {"region": "us"})
    # -> {"region": "us", "limit": 10}

jsonschema is imported only when a param with a schema is validated.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from tradewind.errors import InvalidArgumentError, ParamValidationError, SerializationError

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = ["NOTSET", "ArgNotSet", "Param", "ParamsDict", "merge_params"]


class ArgNotSet:
    """Type of :data:`NOTSET`, the marker for "no value given" (``None`` is a valid value)."""

    _instance: ArgNotSet | None = None

    def __new__(cls) -> ArgNotSet:
        # A singleton, so `is NOTSET` keeps working after copy/deepcopy/pickle.
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOTSET"

    def __bool__(self) -> bool:
        return False

    def __copy__(self) -> ArgNotSet:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ArgNotSet:
        return self

    def __reduce__(self) -> str:
        return "NOTSET"


NOTSET: Final = ArgNotSet()
"""Marker for "no value": a :class:`Param` whose default is ``NOTSET`` is required."""


def _is_json_able(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _schema_path(path: Iterable[Any]) -> str:
    return "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in path)


class Param:
    """A param: a default value, an optional description and JSON-schema keywords.

    ``Param(5, type="integer", minimum=1)`` accepts integers from 1 up and defaults to 5;
    ``Param(type="string")`` has no default, so a value must come from the task or
    ``dag_run.conf``. The schema keywords are any of JSON schema's (``type``, ``enum``,
    ``minimum``, ``maximum``, ``minLength``, ``pattern``, ``format``, ``items``, ``const``,
    ``title``, ``examples`` ...); a whole schema may also be given as ``schema={...}``.
    The schema is treated as read-only once the param is built.
    """

    __slots__ = ("_validator", "description", "schema", "value")

    def __init__(self, default: Any = NOTSET, description: str | None = None, **schema: Any):
        self.value: Any = default
        self.description = description
        if "schema" in schema:
            whole = schema.pop("schema")
            if schema:
                raise InvalidArgumentError(
                    f"Param takes either schema={{...}} or schema keywords, not both "
                    f"(got schema and {sorted(schema)})",
                    argument="schema",
                    owner="Param",
                )
            schema = dict(whole or {})
        self.schema: dict[str, Any] = schema
        self._validator: Validator | None = None

    @property
    def has_value(self) -> bool:
        """True when the param has a default (it is not required)."""
        return self.value is not NOTSET

    def resolve(self, value: Any = NOTSET, *, name: str = "<param>") -> Any:
        """Return ``value`` (or the default when not given) after validating it.

        Raises :class:`~tradewind.errors.ParamValidationError` naming ``name`` when there is no
        value at all, when the value is not JSON-serializable, or when it fails the schema.
        """
        final = self.value if value is NOTSET else value
        if final is NOTSET:
            raise ParamValidationError(
                name, "no value was given and it has no default (the param is required)", None
            )
        if not _is_json_able(final):
            raise ParamValidationError(
                name, f"value of type {type(final).__name__} is not JSON-serializable", final
            )
        if self.schema:
            self._check(final, name)
        return final

    def _check(self, value: Any, name: str) -> None:
        import jsonschema

        if self._validator is None:
            cls = jsonschema.validators.validator_for(self.schema)
            try:
                cls.check_schema(self.schema)
            except jsonschema.SchemaError as exc:
                where = _schema_path(exc.path)
                raise ParamValidationError(
                    name, f"its schema is invalid{' at ' + where if where else ''}: {exc.message}"
                )
            self._validator = cls(self.schema, format_checker=jsonschema.FormatChecker())
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(value))
        if error is not None:
            where = _schema_path(error.absolute_path)
            raise ParamValidationError(
                name, f"{error.message}{' (at ' + where + ')' if where else ''}", value
            )

    # -- copies, equality, serialization --------------------------------------------------
    def copy(self, value: Any = NOTSET) -> Param:
        """A deep copy, with ``value`` as the new default when given."""
        clone = Param(
            copy.deepcopy(self.value) if value is NOTSET else value,
            self.description,
            schema=copy.deepcopy(self.schema),
        )
        return clone

    def dump(self) -> dict[str, Any]:
        """``{"value", "description", "schema"}``; ``value`` is None when there is no default."""
        return {
            "value": None if self.value is NOTSET else self.value,
            "description": self.description,
            "schema": self.schema,
        }

    def to_dict(self, name: str = "<param>") -> dict[str, Any]:
        """A JSON-able dict (``default`` is left out when there is none); see :meth:`from_dict`.

        Raises :class:`~tradewind.errors.SerializationError` naming ``name`` when the default or
        the schema holds a value JSON cannot represent.
        """
        if not _is_json_able(self.value if self.has_value else None):
            raise SerializationError(
                f"param {name!r} has a default of type {type(self.value).__name__}, "
                "which is not JSON-serializable",
                argument="params",
            )
        if not _is_json_able(self.schema):
            raise SerializationError(
                f"param {name!r} has a schema that is not JSON-serializable", argument="params"
            )
        data: dict[str, Any] = {"description": self.description, "schema": self.schema}
        if self.has_value:
            data["default"] = self.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Param:
        """Rebuild a param from :meth:`to_dict` output."""
        return cls(
            data.get("default", NOTSET),
            data.get("description"),
            schema=dict(data.get("schema") or {}),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Param):
            return NotImplemented
        return (self.value, self.description, self.schema) == (
            other.value,
            other.description,
            other.schema,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [repr(self.value)] if self.has_value else []
        if self.description is not None:
            parts.append(f"description={self.description!r}")
        parts.extend(f"{k}={v!r}" for k, v in self.schema.items())
        return f"Param({', '.join(parts)})"


class ParamsDict(MutableMapping[str, Param]):
    """Params by name, in declaration order.

    Built from a mapping whose plain values become ``Param(value)``. Item access returns the
    :class:`Param`; :meth:`validate` gives the resolved plain values. Assigning a plain value to
    an existing name keeps that param's schema and description and replaces its default;
    assigning a :class:`Param` replaces the entry.
    """

    __slots__ = ("_params",)

    def __init__(self, params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None):
        self._params: dict[str, Param] = {}
        if params:
            self.update(params)

    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __setitem__(self, name: str, value: Any) -> None:
        if not isinstance(name, str):
            raise InvalidArgumentError(
                f"param names must be strings, got {name!r}", argument="params"
            )
        if isinstance(value, Param):
            self._params[name] = value
        elif name in self._params:
            # A new Param, not an in-place change: the old one may be shared with a DAG.
            self._params[name] = self._params[name].copy(value)
        else:
            self._params[name] = Param(value)

    def __delitem__(self, name: str) -> None:
        del self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"ParamsDict({self._params!r})"

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set every entry of ``other`` (a mapping, a ParamsDict or pairs) and ``kwargs``."""
        items = other.items() if isinstance(other, Mapping) else other
        for name, value in items:
            self[name] = value
        for name, value in kwargs.items():
            self[name] = value

    def copy(self) -> ParamsDict:
        """A deep copy: params are copied too, so changing one never affects the other."""
        result = ParamsDict()
        result._params = {name: param.copy() for name, param in self._params.items()}
        return result

    def dump(self) -> dict[str, Any]:
        """Plain default values, unvalidated; a required param without a default gives None."""
        return {name: param.dump()["value"] for name, param in self._params.items()}

    def required_without_default(self) -> list[str]:
        """Names of the params that have no default, in declaration order."""
        return [name for name, param in self._params.items() if not param.has_value]

    def validate(self) -> dict[str, Any]:
        """Validate every param in declaration order and return ``{name: value}``.

        Raises :class:`~tradewind.errors.ParamValidationError` for the first param (in
        declaration order) that is missing or invalid. Mutable values are copied, so task code
        changing ``params["x"]`` never changes the declared default.
        """
        resolved: dict[str, Any] = {}
        for name, param in self._params.items():
            value = param.resolve(name=name)
            if isinstance(value, (list, dict, set)):
                value = copy.deepcopy(value)
            resolved[name] = value
        return resolved

    def to_schema(self) -> dict[str, Any]:
        """A JSON-schema object describing every param (for trigger forms and serialization).

        Each param becomes a property holding its schema keywords plus ``default`` and
        ``description`` when set; params without a default are listed under ``required``.
        Raises :class:`~tradewind.errors.SerializationError` for a value JSON cannot hold.
        """
        properties: dict[str, Any] = {}
        required: list[str] = []
        for name, param in self._params.items():
            data = param.to_dict(name)
            prop = dict(data["schema"])
            if "default" in data:
                prop["default"] = data["default"]
            else:
                required.append(name)
            if param.description is not None:
                prop.setdefault("description", param.description)
            properties[name] = prop
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return schema

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{name: Param.to_dict()}``, JSON-able; see :meth:`from_dict`."""
        return {name: param.to_dict(name) for name, param in self._params.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Any]]) -> ParamsDict:
        """Rebuild from :meth:`to_dict` output."""
        return cls({name: Param.from_dict(item) for name, item in data.items()})


def _overlay(target: ParamsDict, layer: Mapping[str, Any] | None) -> None:
    """Apply one precedence layer: a bare ``Param(value)`` (no schema, no description) over an
    existing param changes only the value, so a task's ``params={"x": 1}`` keeps the DAG's
    validation for ``x``; a Param with a schema or description replaces the entry."""
    if not layer:
        return
    for name, value in layer.items():
        if (
            isinstance(value, Param)
            and name in target
            and not value.schema
            and value.description is None
        ):
            target[name] = target[name].copy(value.value) if value.has_value else target[name]
        else:
            target[name] = value


def merge_params(
    dag_params: Mapping[str, Any] | None,
    task_params: Mapping[str, Any] | None,
    conf: Mapping[str, Any] | None,
    *,
    conf_overrides: bool = True,
) -> dict[str, Any]:
    """Merge params with DAG < task < ``dag_run.conf`` precedence and validate the result.

    ``conf`` values are plain values: they replace defaults and keep the declared schemas, and
    keys not declared as params are added as unvalidated params (as Airflow does). With
    ``conf_overrides=False`` conf is ignored. Returns ``{name: value}``; raises
    :class:`~tradewind.errors.ParamValidationError` naming the first invalid param.
    """
    merged = ParamsDict()
    _overlay(merged, dag_params)
    _overlay(merged, task_params)
    if conf_overrides and conf:
        if not isinstance(conf, Mapping):
            raise InvalidArgumentError(
                f"dag_run.conf must be a JSON object (a dict), got {type(conf).__name__}",
                argument="conf",
            )
        for name, value in conf.items():
            # conf comes from JSON: even a Param-looking object there is a value.
            existing = merged.get(name)
            merged[name] = existing.copy(value) if existing is not None else Param(value)
    return merged.validate()
