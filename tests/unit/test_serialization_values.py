"""The tagged value codec of serialized DAG documents."""

from __future__ import annotations

import enum
import json
import math
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewind.errors import SerializationError
from tradewind.sdk.assets import Asset
from tradewind.sdk.params import Param
from tradewind.sdk.trigger_rule import TriggerRule
from tradewind.serialization.values import (
    CallableRef,
    EnumValue,
    ReprValue,
    TemplatedObject,
    ValueEncodingError,
    canonical_json,
    decode_value,
    encode_value,
)


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Query:
    template_fields = ("sql", "args")

    def __init__(self, sql: str, args: Any) -> None:
        self.sql = sql
        self.args = args


def cycle(value: Any) -> Any:
    """encode -> JSON text -> decode; and check the decoded value encodes to the same JSON."""
    encoded = encode_value(value)
    text = json.dumps(encoded, allow_nan=False)
    decoded = decode_value(json.loads(text))
    assert encode_value(decoded) == encoded
    return decoded


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        7,
        -1.5,
        "text",
        [1, "a", None],
        {"a": {"b": [1, 2]}},
        datetime(2024, 5, 1, 12, 30, 15, 123456),
        datetime(2024, 5, 1, 12, tzinfo=UTC),
        datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
        date(2024, 2, 29),
        time(6, 45, 1),
        timedelta(days=2, seconds=5, microseconds=250),
        (1, (2, 3)),
        {1, 2, 3},
        frozenset({"x", "y"}),
        Decimal("12.3400"),
        b"\x00\xffbytes",
        PurePosixPath("/data/in.csv"),
        {1: "int key", (2, 3): "tuple key"},
        {"__type": "user data", "__value": 1},
        {"__xcomarg": "user data"},
        Asset("s3://lake/a", extra={"k": 1}),
    ],
    ids=repr,
)
def test_values_survive_a_round_trip(value: Any) -> None:
    # given a value / when it goes through JSON / expect an equal value of the same type
    decoded = cycle(value)
    assert decoded == value
    assert type(decoded) is type(value) or isinstance(value, PurePosixPath)


def test_datetime_in_named_zone_keeps_the_zone() -> None:
    value = datetime(2024, 7, 1, 9, tzinfo=ZoneInfo("Europe/Amsterdam"))
    encoded = encode_value(value)
    assert encoded == {
        "__type": "datetime",
        "__value": "2024-07-01T09:00:00+02:00",
        "__tz": "Europe/Amsterdam",
    }
    decoded = cycle(value)
    assert decoded == value and str(decoded.tzinfo) == "Europe/Amsterdam"


def test_non_finite_floats_are_tagged_so_the_json_is_valid() -> None:
    for value in (math.inf, -math.inf):
        assert cycle(value) == value
    assert math.isnan(cycle(math.nan))
    assert encode_value(math.nan) == {"__type": "float", "__value": "nan"}


def test_sets_are_written_sorted() -> None:
    # given two sets equal but built in different orders
    assert encode_value({"b", "a", "c"}) == {"__type": "set", "__value": ["a", "b", "c"]}
    assert canonical_json(encode_value({3, 1, 2})) == canonical_json(encode_value({2, 3, 1}))


def test_user_dicts_that_look_like_tags_are_escaped() -> None:
    # given user data with a reserved key / expect the dict form, not a tag
    encoded = encode_value({"__type": "datetime", "__value": "x"})
    assert encoded["__type"] == "dict"
    assert decode_value(encoded) == {"__type": "datetime", "__value": "x"}


def test_enums_known_come_back_as_members_unknown_as_values() -> None:
    assert cycle(TriggerRule.ALL_DONE) is TriggerRule.ALL_DONE
    red = cycle(Color.RED)
    assert red == EnumValue(f"{Color.__module__}.Color", "red")
    assert cycle(Level.HIGH) == EnumValue(f"{Level.__module__}.Level", 3)


def test_params_are_tagged_and_rebuilt() -> None:
    param = Param(5, description="how many", type="integer", minimum=1)
    decoded = cycle(param)
    assert isinstance(decoded, Param) and decoded == param
    required = cycle(Param(type="string"))
    assert not required.has_value


def test_callables_by_dotted_name() -> None:
    assert cycle(json.dumps) == CallableRef("json.dumps")
    assert cycle(Query) == CallableRef(f"{Query.__module__}.Query")
    assert str(CallableRef("a.b")) == "a.b"


def test_templated_objects_show_their_fields() -> None:
    decoded = cycle(Query("select {{ ds }}", (1, 2)))
    assert decoded == TemplatedObject(
        f"{Query.__module__}.Query", {"sql": "select {{ ds }}", "args": (1, 2)}
    )


def test_strict_mode_raises_with_the_path_lenient_mode_uses_repr() -> None:
    class Thing:
        pass

    value = {"outer": [1, {"inner": Thing()}]}
    # strict: an error whose argument locates the object
    with pytest.raises(ValueEncodingError) as info:
        encode_value(value, argument="op_kwargs")
    assert isinstance(info.value, SerializationError)
    assert info.value.path == "op_kwargs['outer'][1]['inner']"
    assert "Thing" in info.value.reason
    # lenient: the object's repr, without its memory address
    decoded = cycle_lenient(value)
    text = decoded["outer"][1]["inner"]
    assert isinstance(text, ReprValue) and "Thing object" in text.text and "0x" not in text.text


def cycle_lenient(value: Any) -> Any:
    encoded = encode_value(value, strict=False)
    decoded = decode_value(json.loads(json.dumps(encoded)))
    assert encode_value(decoded, strict=False) == encoded
    return decoded


def test_unknown_tag_raises() -> None:
    with pytest.raises(SerializationError, match="unknown value type 'hologram'"):
        decode_value({"__type": "hologram", "__value": 1})
    with pytest.raises(SerializationError, match="malformed"):
        decode_value({"__type": "date", "__value": "not a date"})


json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
hashable = (
    json_leaves | st.dates() | st.datetimes() | st.timedeltas() | st.decimals(allow_nan=False)
)
typed_values = st.recursive(
    hashable,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
        | st.dictionaries(st.integers(), children, max_size=3)
        | st.frozensets(hashable, max_size=4)
        | st.sets(st.integers() | st.text(max_size=5), max_size=4)
    ),
    max_leaves=20,
)


@given(typed_values)
def test_any_supported_value_encodes_back_to_the_same_json(value: Any) -> None:
    # given any mix of supported values / expect JSON-clean output that decodes and re-encodes
    encoded = encode_value(value)
    text = json.dumps(encoded, allow_nan=False)
    assert encode_value(decode_value(json.loads(text))) == encoded
