"""Tests for tradewind.sdk.assets: assets, aliases and asset conditions."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from tradewind.errors import InvalidArgumentError, SerializationError
from tradewind.sdk.assets import (
    Asset,
    AssetAlias,
    AssetAll,
    AssetAny,
    BaseAsset,
    Dataset,
    DatasetAll,
    DatasetAny,
    asset_from_dict,
    coerce_asset_expression,
)

ORDERS = Asset("s3://lake/orders")
FX = Asset("s3://lake/fx", name="fx")
REF = Asset(name="customers")


class TestAsset:
    def test_name_defaults_to_uri_and_uri_to_name(self) -> None:
        assert (ORDERS.uri, ORDERS.name) == ("s3://lake/orders", "s3://lake/orders")
        assert (REF.uri, REF.name) == ("customers", "customers")
        assert (FX.uri, FX.name) == ("s3://lake/fx", "fx")

    def test_needs_uri_or_name(self) -> None:
        with pytest.raises(InvalidArgumentError, match="needs a uri or a name"):
            Asset()

    def test_equal_by_uri_and_name_only(self) -> None:
        left = Asset("s3://x", group="raw", extra={"owner": "a"})
        right = Asset("s3://x", group="curated", extra={"owner": "b"})
        assert left == right
        assert hash(left) == hash(right)
        assert Asset("s3://x") != Asset("s3://x", name="other")
        assert len({left, right, Asset("s3://y")}) == 2

    def test_is_immutable(self) -> None:
        with pytest.raises(AttributeError, match="immutable"):
            ORDERS.uri = "s3://elsewhere"

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"uri": ""}, "must be non-empty"),
            ({"uri": " s3://x"}, "leading or trailing spaces"),
            ({"uri": "s3://bücher"}, "only ASCII"),
            ({"uri": 5}, "must be a string, not int"),
            ({"uri": "s3://x", "extra": ["no"]}, "extra must be a dict"),
            ({"uri": "x" * 1501}, "the limit is 1500"),
        ],
    )
    def test_invalid_values_are_named(self, kwargs: dict, message: str) -> None:
        with pytest.raises(InvalidArgumentError, match=message):
            Asset(**kwargs)

    def test_non_ascii_name_is_fine(self) -> None:
        assert Asset(uri="s3://books", name="bücher").name == "bücher"

    def test_dataset_is_the_same_class(self) -> None:
        assert Dataset is Asset
        assert DatasetAny is AssetAny
        assert DatasetAll is AssetAll

    def test_survives_pickle_and_deepcopy(self) -> None:
        asset = Asset("s3://x", name="x", group="raw", extra={"k": [1]})
        for clone in (pickle.loads(pickle.dumps(asset)), copy.deepcopy(asset)):
            assert clone == asset
            assert (clone.group, clone.extra) == ("raw", {"k": [1]})


class TestConditions:
    def test_or_and_and_build_flat_conditions(self) -> None:
        assert ORDERS | FX | REF == AssetAny(ORDERS, FX, REF)
        assert ORDERS & FX & REF == AssetAll(ORDERS, FX, REF)

    def test_mixed_operators_nest(self) -> None:
        condition = (ORDERS & FX) | REF
        assert condition == AssetAny(AssetAll(ORDERS, FX), REF)
        assert condition.describe() == "(s3://lake/orders & fx) | customers"

    def test_operators_reject_other_types(self) -> None:
        with pytest.raises(TypeError):
            ORDERS | "s3://x"

    def test_constructor_checks_children(self) -> None:
        with pytest.raises(InvalidArgumentError, match="argument 1 must be an Asset"):
            AssetAny(ORDERS, "fx")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="at least one"):
            AssetAll()

    @pytest.mark.parametrize(
        ("updated", "expected"),
        [
            (set(), False),
            ({"s3://lake/orders"}, False),
            ({"s3://lake/orders", "s3://lake/fx"}, True),
            ({"customers"}, True),
        ],
    )
    def test_evaluate(self, updated: set[str], expected: bool) -> None:
        condition = (ORDERS & FX) | REF
        statuses = {uri: True for uri in updated}
        assert condition.evaluate(statuses) is expected

    def test_false_status_counts_as_not_updated(self) -> None:
        assert (ORDERS | FX).evaluate({"s3://lake/orders": False}) is False

    def test_alias_holds_when_a_resolved_asset_is_updated(self) -> None:
        alias = AssetAlias("daily-exports")
        condition = alias & ORDERS
        statuses = {"s3://lake/orders": True, "s3://lake/fx": True}
        assert condition.evaluate(statuses) is False
        assert condition.evaluate(statuses, resolved_aliases={"daily-exports": [FX]}) is True
        assert condition.evaluate(statuses, resolved_aliases={"daily-exports": [REF]}) is False

    def test_iter_assets_yields_each_asset_once_in_order(self) -> None:
        condition = (ORDERS & FX) | (FX & REF) | AssetAlias("a")
        assert list(condition.iter_assets()) == [ORDERS, FX, REF]
        assert list(condition.iter_asset_aliases()) == [AssetAlias("a")]
        assert list(ORDERS.iter_assets()) == [ORDERS]


class TestSerialization:
    def test_round_trip_of_a_nested_condition(self) -> None:
        condition = (ORDERS & Asset("s3://x", group="raw", extra={"k": 1})) | AssetAlias("a")
        data = condition.to_dict()
        json.dumps(data)  # must be JSON-compatible
        again = BaseAsset.from_dict(data)
        assert again == condition
        assert list(again.iter_assets())[1].extra == {"k": 1}

    def test_asset_dict_shape(self) -> None:
        assert FX.to_dict() == {
            "type": "asset",
            "uri": "s3://lake/fx",
            "name": "fx",
            "group": "asset",
            "extra": {},
        }

    def test_from_dict_on_a_subclass_checks_the_type(self) -> None:
        assert AssetAny.from_dict((ORDERS | FX).to_dict()) == ORDERS | FX
        with pytest.raises(SerializationError, match="expected a serialized AssetAll"):
            AssetAll.from_dict((ORDERS | FX).to_dict())

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"type": "bucket"}, "unknown asset type 'bucket'"),
            ({"type": "asset"}, "missing the field 'uri'"),
            ({"type": "asset", "uri": ""}, "is invalid"),
            ([1], "must be a dict"),
        ],
    )
    def test_bad_dicts(self, data: object, message: str) -> None:
        with pytest.raises(SerializationError, match=message):
            asset_from_dict(data)  # type: ignore[arg-type]


class TestCoerce:
    def test_list_means_all(self) -> None:
        assert coerce_asset_expression([ORDERS, FX]) == AssetAll(ORDERS, FX)
        assert coerce_asset_expression((ORDERS,)) == AssetAll(ORDERS)

    def test_condition_is_kept(self) -> None:
        condition = ORDERS | FX
        assert coerce_asset_expression(condition) is condition

    def test_empty_list_is_rejected(self) -> None:
        with pytest.raises(InvalidArgumentError, match="at least one asset"):
            coerce_asset_expression([])
