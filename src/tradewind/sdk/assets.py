"""Assets (data a task produces or needs) and the conditions built from them.

An :class:`Asset` names a piece of data by ``uri`` and ``name``; tasks list assets in
``outlets`` (they update them) and DAGs use them in ``schedule`` (run when they are updated).
Conditions combine with ``|`` (any) and ``&`` (all) and nest freely::

    raw = Asset("s3://lake/raw/orders")
    fx = Asset("s3://lake/raw/fx")
    ref = Asset("s3://lake/ref/customers")
    schedule = (raw & fx) | ref          # AssetAny(AssetAll(raw, fx), ref)
    schedule.evaluate({"s3://lake/ref/customers": True})   # True

A list of assets in ``schedule`` means "all of them" (see :func:`coerce_asset_expression`).
Every expression serializes with :meth:`BaseAsset.to_dict` and reads back with
:meth:`BaseAsset.from_dict`. ``Dataset`` and friends are aliases kept for Airflow-2-style DAG
files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

from tradewind.errors import InvalidArgumentError, SerializationError

__all__ = [
    "Asset",
    "AssetAlias",
    "AssetAll",
    "AssetAny",
    "BaseAsset",
    "Dataset",
    "DatasetAlias",
    "DatasetAll",
    "DatasetAny",
    "asset_from_dict",
    "coerce_asset_expression",
]

_MAX_LENGTH = 1500  # the longest uri or name the metadata database stores

_T = TypeVar("_T", bound="BaseAsset")

ResolvedAliases = Mapping[str, Iterable["Asset"]]
"""Alias name -> the assets the alias currently stands for (filled in by the scheduler)."""


class BaseAsset:
    """Base of assets, aliases and the ``|``/``&`` conditions built from them."""

    __slots__ = ()

    type_name: ClassVar[str] = ""

    def __or__(self, other: object) -> AssetAny:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAny(*_flatten(AssetAny, self), *_flatten(AssetAny, other))

    def __and__(self, other: object) -> AssetAll:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAll(*_flatten(AssetAll, self), *_flatten(AssetAll, other))

    def iter_assets(self) -> Iterator[Asset]:
        """Yield every distinct :class:`Asset` in this condition, in first-seen order."""
        seen: set[Asset] = set()
        for asset in self._walk_assets():
            if asset not in seen:
                seen.add(asset)
                yield asset

    def iter_asset_aliases(self) -> Iterator[AssetAlias]:
        """Yield every distinct :class:`AssetAlias` in this condition, in first-seen order."""
        seen: set[AssetAlias] = set()
        for alias in self._walk_aliases():
            if alias not in seen:
                seen.add(alias)
                yield alias

    def evaluate(
        self, statuses: Mapping[str, bool], *, resolved_aliases: ResolvedAliases | None = None
    ) -> bool:
        """Whether the condition holds, given which assets were updated.

        Args:
            statuses: asset uri -> whether that asset has a new event. Missing uris count as
                not updated.
            resolved_aliases: alias name -> the assets it currently stands for. An alias holds
                when any of its assets is updated; an alias that resolves to nothing (or is not
                listed) does not hold.
        """
        raise NotImplementedError

    def describe(self) -> str:
        """A short human-readable form, such as ``"orders & (fx | rates)"``."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict that :meth:`from_dict` reads back."""
        raise NotImplementedError

    @classmethod
    def from_dict(cls: type[_T], data: Mapping[str, Any]) -> _T:
        """Rebuild an expression written by :meth:`to_dict`.

        Called on a subclass (``AssetAny.from_dict``) it also checks the result has that type.

        Raises:
            SerializationError: an unknown ``type`` or a malformed dict.
        """
        obj = asset_from_dict(data)
        if not isinstance(obj, cls):
            raise SerializationError(
                f"expected a serialized {cls.__name__}, got type {data.get('type')!r}"
            )
        return obj

    def _walk_assets(self) -> Iterator[Asset]:
        return iter(())

    def _walk_aliases(self) -> Iterator[AssetAlias]:
        return iter(())


def _flatten(kind: type[_AssetBoolean], expr: BaseAsset) -> tuple[BaseAsset, ...]:
    """Children of ``expr`` if it is already a ``kind`` (so ``a | b | c`` stays flat)."""
    if isinstance(expr, _AssetBoolean) and type(expr) is kind:
        return expr.objects
    return (expr,)


def _check_text(value: object, what: str, owner: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(
            f"{owner} {what} must be a string, not {type(value).__name__} {value!r}",
            argument=what,
            owner=owner,
        )
    if not value or value.strip() != value:
        raise InvalidArgumentError(
            f"{owner} {what} {value!r} must be non-empty, without leading or trailing spaces",
            argument=what,
            owner=owner,
        )
    if len(value) > _MAX_LENGTH:
        raise InvalidArgumentError(
            f"{owner} {what} is {len(value)} characters long; the limit is {_MAX_LENGTH}",
            argument=what,
            owner=owner,
        )
    return value


class Asset(BaseAsset):
    """A piece of data, identified by ``uri`` and ``name``.

    Either may be omitted and then defaults to the other, so ``Asset("s3://bucket/key")`` has
    that string as both. Two assets are equal when their uri and name are equal; ``group`` and
    ``extra`` are descriptive. Assets are immutable and hashable.

    Args:
        uri: where the data lives (ASCII, for example ``"s3://bucket/orders.parquet"``).
        name: a human-readable unique name.
        group: a free-form category shown in the UI (default ``"asset"``).
        extra: JSON-compatible metadata.

    Note:
        The first positional argument is ``uri``. Airflow 3's ``Asset`` takes ``name`` first;
        with one positional argument both behave the same, and with two, use keywords.
    """

    __slots__ = ("extra", "group", "name", "uri")
    type_name: ClassVar[str] = "asset"

    uri: str
    name: str
    group: str
    extra: dict[str, Any]

    def __init__(
        self,
        uri: str | None = None,
        name: str | None = None,
        group: str = "asset",
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if uri is None and name is None:
            raise InvalidArgumentError(
                "Asset needs a uri or a name (or both)", argument="uri", owner="Asset"
            )
        name = _check_text(name if name is not None else uri, "name", "Asset")
        uri = _check_text(uri if uri is not None else name, "uri", "Asset")
        if not uri.isascii():
            raise InvalidArgumentError(
                f"Asset uri {uri!r} must contain only ASCII characters",
                argument="uri",
                owner="Asset",
            )
        group = _check_text(group, "group", "Asset")
        if extra is not None and not isinstance(extra, Mapping):
            raise InvalidArgumentError(
                f"Asset extra must be a dict, not {type(extra).__name__}",
                argument="extra",
                owner="Asset",
            )
        object.__setattr__(self, "uri", uri)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "extra", dict(extra or {}))

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"Asset is immutable; cannot set {key!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Slots plus a blocking __setattr__ defeat the default pickling; rebuild via __init__.
        return (Asset, (self.uri, self.name, self.group, self.extra))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Asset):
            return NotImplemented
        return self.uri == other.uri and self.name == other.name

    def __hash__(self) -> int:
        return hash(("asset", self.uri, self.name))

    def __repr__(self) -> str:
        if self.name == self.uri:
            return f"Asset({self.uri!r})"
        return f"Asset(uri={self.uri!r}, name={self.name!r})"

    def evaluate(
        self, statuses: Mapping[str, bool], *, resolved_aliases: ResolvedAliases | None = None
    ) -> bool:
        """Whether this asset is marked updated in ``statuses`` (keyed by uri)."""
        return bool(statuses.get(self.uri, False))

    def describe(self) -> str:
        """The asset's name."""
        return self.name

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "asset", "uri": …, "name": …, "group": …, "extra": {…}}``."""
        return {
            "type": self.type_name,
            "uri": self.uri,
            "name": self.name,
            "group": self.group,
            "extra": dict(self.extra),
        }

    def _walk_assets(self) -> Iterator[Asset]:
        yield self


class AssetAlias(BaseAsset):
    """A placeholder for assets that tasks decide at run time.

    A task names the alias in its outlets and, while running, attaches concrete assets to it.
    In a schedule the alias holds when any asset it resolves to is updated.
    """

    __slots__ = ("group", "name")
    type_name: ClassVar[str] = "asset_alias"

    name: str
    group: str

    def __init__(self, name: str, group: str = "asset") -> None:
        object.__setattr__(self, "name", _check_text(name, "name", "AssetAlias"))
        object.__setattr__(self, "group", _check_text(group, "group", "AssetAlias"))

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"AssetAlias is immutable; cannot set {key!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (AssetAlias, (self.name, self.group))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AssetAlias):
            return NotImplemented
        return self.name == other.name

    def __hash__(self) -> int:
        return hash(("asset_alias", self.name))

    def __repr__(self) -> str:
        return f"AssetAlias({self.name!r})"

    def evaluate(
        self, statuses: Mapping[str, bool], *, resolved_aliases: ResolvedAliases | None = None
    ) -> bool:
        """True when any asset this alias resolves to is updated."""
        if not resolved_aliases:
            return False
        return any(a.evaluate(statuses) for a in resolved_aliases.get(self.name, ()))

    def describe(self) -> str:
        """``alias:<name>``."""
        return f"alias:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "asset_alias", "name": …, "group": …}``."""
        return {"type": self.type_name, "name": self.name, "group": self.group}

    def _walk_aliases(self) -> Iterator[AssetAlias]:
        yield self


class _AssetBoolean(BaseAsset):
    """Shared behaviour of :class:`AssetAny` and :class:`AssetAll`."""

    __slots__ = ("objects",)
    _joiner: ClassVar[str] = ""

    objects: tuple[BaseAsset, ...]

    def __init__(self, *objects: BaseAsset) -> None:
        kind = type(self).__name__
        if not objects:
            raise InvalidArgumentError(f"{kind} needs at least one asset", owner=kind)
        for position, obj in enumerate(objects):
            if not isinstance(obj, BaseAsset):
                raise InvalidArgumentError(
                    f"{kind} argument {position} must be an Asset, AssetAlias or asset "
                    f"condition, not {type(obj).__name__} {obj!r}",
                    owner=kind,
                )
        object.__setattr__(self, "objects", tuple(objects))

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot set {key!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self.objects)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _AssetBoolean):
            return NotImplemented
        return type(self) is type(other) and self.objects == other.objects

    def __hash__(self) -> int:
        return hash((self.type_name, self.objects))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.objects))})"

    def describe(self) -> str:
        """Children joined by ``|`` or ``&``; nested conditions in parentheses."""
        parts = []
        for obj in self.objects:
            text = obj.describe()
            if isinstance(obj, _AssetBoolean) and len(obj.objects) > 1:
                text = f"({text})"
            parts.append(text)
        return f" {self._joiner} ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "asset_any" | "asset_all", "objects": [ … ]}``."""
        return {"type": self.type_name, "objects": [obj.to_dict() for obj in self.objects]}

    def _walk_assets(self) -> Iterator[Asset]:
        for obj in self.objects:
            yield from obj._walk_assets()

    def _walk_aliases(self) -> Iterator[AssetAlias]:
        for obj in self.objects:
            yield from obj._walk_aliases()


class AssetAny(_AssetBoolean):
    """Holds when any of its assets or conditions holds (``a | b``)."""

    __slots__ = ()
    type_name: ClassVar[str] = "asset_any"
    _joiner: ClassVar[str] = "|"

    def evaluate(
        self, statuses: Mapping[str, bool], *, resolved_aliases: ResolvedAliases | None = None
    ) -> bool:
        """True when at least one child holds."""
        return any(o.evaluate(statuses, resolved_aliases=resolved_aliases) for o in self.objects)


class AssetAll(_AssetBoolean):
    """Holds when all of its assets and conditions hold (``a & b``)."""

    __slots__ = ()
    type_name: ClassVar[str] = "asset_all"
    _joiner: ClassVar[str] = "&"

    def evaluate(
        self, statuses: Mapping[str, bool], *, resolved_aliases: ResolvedAliases | None = None
    ) -> bool:
        """True when every child holds."""
        return all(o.evaluate(statuses, resolved_aliases=resolved_aliases) for o in self.objects)


def asset_from_dict(data: Mapping[str, Any]) -> BaseAsset:
    """Rebuild any asset or condition from :meth:`BaseAsset.to_dict` output.

    Raises:
        SerializationError: an unknown ``type`` or missing fields.
    """
    if not isinstance(data, Mapping):
        raise SerializationError(f"a serialized asset must be a dict, not {type(data).__name__}")
    kind = data.get("type")
    try:
        if kind == Asset.type_name:
            return Asset(
                uri=data["uri"],
                name=data.get("name"),
                group=data.get("group", "asset"),
                extra=data.get("extra"),
            )
        if kind == AssetAlias.type_name:
            return AssetAlias(data["name"], group=data.get("group", "asset"))
        if kind in (AssetAny.type_name, AssetAll.type_name):
            cls = AssetAny if kind == AssetAny.type_name else AssetAll
            return cls(*(asset_from_dict(child) for child in data["objects"]))
    except KeyError as exc:
        raise SerializationError(
            f"serialized {kind} is missing the field {exc.args[0]!r}"
        ) from None
    except InvalidArgumentError as exc:
        raise SerializationError(f"serialized {kind} is invalid: {exc}") from None
    raise SerializationError(
        f"unknown asset type {kind!r}; expected one of asset, asset_alias, asset_any, asset_all"
    )


def coerce_asset_expression(value: BaseAsset | Iterable[BaseAsset]) -> BaseAsset:
    """Turn a ``schedule`` value made of assets into one condition.

    A single asset or condition is returned as is; a list or tuple means all of its items
    (``[a, b]`` is ``AssetAll(a, b)``).

    Raises:
        InvalidArgumentError: an empty list or an item that is not an asset.
    """
    if isinstance(value, BaseAsset):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            raise InvalidArgumentError("an asset schedule needs at least one asset")
        return AssetAll(*value)
    raise InvalidArgumentError(
        f"expected an asset, an asset condition or a list of assets, not {type(value).__name__}"
    )


# Names used by Airflow-2-style DAG files.
Dataset = Asset
DatasetAlias = AssetAlias
DatasetAny = AssetAny
DatasetAll = AssetAll
