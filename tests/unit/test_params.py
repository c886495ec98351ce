"""Params: defaults, JSON-schema validation, precedence and serialization."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import datetime

import pytest

from tradewind.errors import InvalidArgumentError, ParamValidationError, SerializationError
from tradewind.sdk.params import NOTSET, Param, ParamsDict, merge_params

# -- Param ------------------------------------------------------------------------------------


def test_param_without_default_is_required_and_error_names_it() -> None:
    # given a param with only a schema
    params = ParamsDict({"region": Param(type="string")})
    # when validated / expect the error names the param and says it is required
    with pytest.raises(ParamValidationError) as info:
        params.validate()
    assert info.value.param == "region"
    assert "'region'" in str(info.value)
    assert "required" in str(info.value)


@pytest.mark.parametrize(
    ("param", "value", "fragment"),
    [
        (Param(1, type="integer"), "x", "is not of type 'integer'"),
        (Param(6, type="integer", minimum=5), 3, "less than the minimum of 5"),
        (Param(1, type="integer", maximum=5), 9, "greater than the maximum of 5"),
        (Param("eu", enum=["eu", "us"]), "mars", "is not one of ['eu', 'us']"),
        (Param("abc", type="string", minLength=3), "ab", "is too short"),
        (Param("a1", type="string", pattern="^[a-z][0-9]$"), "zz", "does not match"),
        (Param("2024-01-01", type="string", format="date"), "2024-13-45", "is not a 'date'"),
        (Param([1], type="array", items={"type": "integer"}), [1, "two"], "(at [1])"),
        (Param("on", const="on"), "off", "'on' was expected"),
    ],
)
def test_every_schema_failure_names_the_param(param: Param, value: object, fragment: str) -> None:
    # given a param whose default is valid
    assert ParamsDict({"p": param}).validate() == {"p": param.value}
    # when a failing value is resolved
    with pytest.raises(ParamValidationError) as info:
        param.resolve(value, name="the_param")
    # expect the param name, the schema's reason and the value on the error
    assert info.value.param == "the_param"
    assert "'the_param'" in str(info.value)
    assert fragment in str(info.value)
    assert info.value.value == value


def test_param_accepts_a_valid_value_and_returns_it() -> None:
    param = Param(5, type="integer", minimum=1, description="how many")
    assert param.resolve(name="n") == 5
    assert param.resolve(7, name="n") == 7


def test_param_rejects_values_that_are_not_json_serializable() -> None:
    with pytest.raises(ParamValidationError) as info:
        Param(datetime(2024, 1, 1)).resolve(name="when")
    assert info.value.param == "when"
    assert "not JSON-serializable" in str(info.value)


def test_invalid_schema_is_reported_with_the_param_name() -> None:
    with pytest.raises(ParamValidationError) as info:
        Param(1, type="no-such-type").resolve(name="bad")
    assert info.value.param == "bad"
    assert "schema is invalid" in str(info.value)


def test_schema_may_be_given_whole_but_not_mixed_with_keywords() -> None:
    assert Param(1, schema={"type": "integer"}).schema == {"type": "integer"}
    with pytest.raises(InvalidArgumentError):
        Param(1, schema={"type": "integer"}, minimum=0)


def test_param_round_trips_through_json() -> None:
    # given params with and without defaults
    for param in (Param(3, "count", type="integer", minimum=0), Param(type="string")):
        # when serialized to JSON text and read back
        data = json.loads(json.dumps(param.to_dict("p")))
        # expect an equal param
        assert Param.from_dict(data) == param
    assert "default" not in Param(type="string").to_dict()


def test_to_dict_names_the_param_when_the_default_is_not_json() -> None:
    with pytest.raises(SerializationError) as info:
        Param({1, 2}).to_dict("tags")
    assert "'tags'" in str(info.value)


def test_notset_survives_copy_and_pickle() -> None:
    assert copy.deepcopy(NOTSET) is NOTSET
    assert pickle.loads(pickle.dumps(NOTSET)) is NOTSET
    assert not NOTSET
    assert repr(NOTSET) == "NOTSET"


# -- ParamsDict -----------------------------------------------------------------------------


def test_params_dict_wraps_plain_values_and_validates_in_declaration_order() -> None:
    # given two invalid params, declared b then a
    params = ParamsDict({"b": Param("x", type="integer"), "a": Param("y", type="integer")})
    # when validated / expect the first declared one is reported
    with pytest.raises(ParamValidationError) as info:
        params.validate()
    assert info.value.param == "b"
    assert isinstance(ParamsDict({"n": 1})["n"], Param)


def test_params_dict_validate_copies_mutable_values() -> None:
    params = ParamsDict({"items": [1, 2]})
    resolved = params.validate()
    resolved["items"].append(3)
    assert params.validate()["items"] == [1, 2]


def test_setting_a_plain_value_keeps_the_schema() -> None:
    original = Param(1, type="integer")
    params = ParamsDict({"n": original})
    params["n"] = "not a number"
    assert params["n"].schema == {"type": "integer"}
    assert original.value == 1  # the shared Param was not changed in place
    with pytest.raises(ParamValidationError):
        params.validate()


def test_params_dict_copy_is_independent() -> None:
    params = ParamsDict({"cfg": {"a": 1}})
    clone = params.copy()
    clone["cfg"].value["a"] = 2
    assert params["cfg"].value == {"a": 1}
    assert clone == ParamsDict({"cfg": {"a": 2}})


def test_update_dump_and_required_names() -> None:
    params = ParamsDict()
    params.update({"a": 1}, b=Param(type="string"))
    assert params.dump() == {"a": 1, "b": None}
    assert params.required_without_default() == ["b"]
    with pytest.raises(InvalidArgumentError):
        params[3] = 1  # type: ignore[index]


def test_to_schema_describes_all_params() -> None:
    params = ParamsDict(
        {
            "region": Param("eu", "where to run", enum=["eu", "us"], title="Region"),
            "limit": Param(type="integer"),
            "plain": 5,
        }
    )
    assert params.to_schema() == {
        "type": "object",
        "properties": {
            "region": {
                "enum": ["eu", "us"],
                "title": "Region",
                "default": "eu",
                "description": "where to run",
            },
            "limit": {"type": "integer"},
            "plain": {"default": 5},
        },
        "required": ["limit"],
    }


def test_params_dict_round_trips_through_json() -> None:
    params = ParamsDict({"a": Param(1, type="integer"), "b": "x", "c": Param(type="string")})
    assert ParamsDict.from_dict(json.loads(json.dumps(params.to_dict()))) == params


# -- merge_params -----------------------------------------------------------------------------


def test_precedence_is_dag_then_task_then_conf() -> None:
    # given a DAG param, a task override and a conf override
    dag_params = ParamsDict({"a": 1, "b": 1, "c": 1})
    task_params = ParamsDict({"b": 2, "c": 2})
    conf = {"c": 3, "extra": "from-conf"}
    # when merged
    result = merge_params(dag_params, task_params, conf)
    # expect the later layer wins, and undeclared conf keys are added
    assert result == {"a": 1, "b": 2, "c": 3, "extra": "from-conf"}


def test_conf_is_ignored_when_overrides_are_disabled() -> None:
    result = merge_params({"a": 1}, None, {"a": 9}, conf_overrides=False)
    assert result == {"a": 1}


def test_task_plain_value_keeps_the_dag_schema() -> None:
    dag_params = ParamsDict({"n": Param(5, type="integer", minimum=1)})
    with pytest.raises(ParamValidationError) as info:
        merge_params(dag_params, ParamsDict({"n": 0}), None)
    assert info.value.param == "n"
    assert "minimum of 1" in str(info.value)


def test_task_param_with_a_schema_replaces_the_dag_param() -> None:
    dag_params = ParamsDict({"n": Param(5, type="integer")})
    task_params = ParamsDict({"n": Param("five", type="string")})
    assert merge_params(dag_params, task_params, None) == {"n": "five"}


def test_conf_value_is_validated_against_the_declared_schema() -> None:
    dag_params = ParamsDict({"region": Param("eu", enum=["eu", "us"])})
    assert merge_params(dag_params, None, {"region": "us"}) == {"region": "us"}
    with pytest.raises(ParamValidationError) as info:
        merge_params(dag_params, None, {"region": "mars"})
    assert info.value.param == "region"
    assert info.value.value == "mars"


def test_conf_supplies_a_required_param() -> None:
    dag_params = ParamsDict({"date": Param(type="string", format="date")})
    assert merge_params(dag_params, None, {"date": "2024-02-29"}) == {"date": "2024-02-29"}
    with pytest.raises(ParamValidationError, match="required"):
        merge_params(dag_params, None, {})


def test_conf_must_be_a_mapping() -> None:
    with pytest.raises(InvalidArgumentError, match="conf"):
        merge_params({}, None, ["not", "a", "dict"])  # type: ignore[arg-type]
