"""The task context: keys, accessors, the current-context variable and AIRFLOW_CTX_ vars."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pendulum
import pytest

from tradewind.errors import ConnectionNotFound, TradewindError, VariableNotFound
from tradewind.sdk.context import (
    Context,
    build_context,
    context_to_airflow_vars,
    get_current_context,
    set_current_context,
)
from tradewind.sdk.macros import macros

UTC = dt.UTC

# -- stand-ins for the SDK's DAG / task / task instance / DAG run -------------------------------


@dataclass
class StubDag:
    dag_id: str = "sales"


@dataclass
class StubTask:
    task_id: str = "load"
    inlets: list[Any] = field(default_factory=list)
    outlets: list[Any] = field(default_factory=lambda: ["asset://out"])
    map_index_template: str | None = None
    owner: Any = "data-team"
    email: Any = None


@dataclass
class StubTI:
    dag_id: str = "sales"
    task_id: str = "load"
    run_id: str = "scheduled__2024-01-02T00:00:00+00:00"
    map_index: int = -1
    try_number: int = 2

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value") -> Any:
        return {"extract": 42}.get(task_ids or "")

    def xcom_push(self, key: str, value: Any) -> None:
        pass


@dataclass
class StubDagRun:
    run_id: str = "scheduled__2024-01-02T00:00:00+00:00"
    run_type: str = "scheduled"
    logical_date: dt.datetime | None = dt.datetime(2024, 1, 1, tzinfo=UTC)
    data_interval_start: dt.datetime | None = dt.datetime(2024, 1, 1, tzinfo=UTC)
    data_interval_end: dt.datetime | None = dt.datetime(2024, 1, 2, tzinfo=UTC)
    conf: dict[str, Any] = field(default_factory=dict)
    start_date: dt.datetime | None = None


VARIABLES = {"env": "prod", "cfg": '{"limit": 10}'}
CONNECTIONS = {"warehouse": {"host": "db.internal"}}


def get_variable(key: str) -> Any:
    if key not in VARIABLES:
        raise VariableNotFound(key)
    return VARIABLES[key]


def make_context(dag_run: StubDagRun | None = None, **kwargs: Any) -> Context:
    defaults: dict[str, Any] = {
        "dag": StubDag(),
        "task": StubTask(),
        "ti": StubTI(),
        "dag_run": dag_run or StubDagRun(),
        "params": {"region": "eu"},
        "get_variable": get_variable,
        "get_connection": CONNECTIONS.get,
    }
    defaults.update(kwargs)
    return build_context(**defaults)


# -- build_context ----------------------------------------------------------------------------


def test_always_present_keys() -> None:
    # given a run / when the context is built
    ctx = make_context()
    # expect the Airflow 3 objects and accessors
    assert ctx["ti"] is ctx["task_instance"]
    assert ctx["run_id"] == "scheduled__2024-01-02T00:00:00+00:00"
    assert ctx["params"] == {"region": "eu"}
    assert ctx["macros"] is macros
    assert ctx["outlets"] == ["asset://out"]
    assert ctx["inlets"] == []
    assert ctx["map_index_template"] is None
    assert ctx["task_instance_key_str"] == "sales__load__20240101"
    assert isinstance(ctx, Context)


def test_date_keys_for_a_run_with_a_logical_date() -> None:
    ctx = make_context()
    assert ctx["ds"] == "2024-01-01"
    assert ctx["ds_nodash"] == "20240101"
    assert ctx["ts"] == "2024-01-01T00:00:00+00:00"
    assert ctx["ts_nodash"] == "20240101T000000"
    assert ctx["ts_nodash_with_tz"] == "20240101T000000+0000"
    assert isinstance(ctx["logical_date"], pendulum.DateTime)
    assert isinstance(ctx["data_interval_end"], pendulum.DateTime)
    assert ctx["data_interval_end"] == dt.datetime(2024, 1, 2, tzinfo=UTC)
    assert ctx["prev_data_interval_start_success"] is None
    assert ctx["prev_data_interval_end_success"] is None


def test_naive_and_non_utc_datetimes_become_utc_pendulum() -> None:
    # given a naive logical date (naive means UTC) and an interval given in another zone
    tz = dt.timezone(dt.timedelta(hours=2))
    run = StubDagRun(
        logical_date=dt.datetime(2024, 1, 1, 0, 30),
        data_interval_start=dt.datetime(2024, 1, 1, 2, 30, tzinfo=tz),
        data_interval_end=None,
    )
    ctx = make_context(run)
    # expect everything in UTC
    assert ctx["ts"] == "2024-01-01T00:30:00+00:00"
    assert ctx["data_interval_start"] == ctx["logical_date"]
    assert ctx["data_interval_start"].timezone_name == "UTC"
    assert ctx["logical_date"].add(days=1).day == 2  # pendulum methods work


def test_airflow2_keys_for_a_scheduled_run() -> None:
    ctx = make_context()
    assert ctx["execution_date"] == ctx["logical_date"]
    assert ctx["next_ds"] == "2024-01-02"
    assert ctx["next_ds_nodash"] == "20240102"
    assert ctx["prev_ds"] == "2023-12-31"
    assert ctx["prev_ds_nodash"] == "20231231"
    assert ctx["yesterday_ds"] == "2023-12-31"
    assert ctx["tomorrow_ds"] == "2024-01-02"
    assert ctx["yesterday_ds_nodash"] == "20231231"
    assert ctx["tomorrow_ds_nodash"] == "20240102"


def test_airflow2_neighbours_of_a_manual_run_are_its_own_date() -> None:
    ctx = make_context(StubDagRun(run_type="manual"))
    assert ctx["prev_ds"] == ctx["next_ds"] == ctx["ds"] == "2024-01-01"


def test_extra_can_give_exact_neighbour_dates() -> None:
    ctx = make_context(extra={"next_execution_date": dt.datetime(2024, 2, 1, tzinfo=UTC)})
    assert ctx["next_ds"] == "2024-02-01"
    assert isinstance(ctx["next_execution_date"], pendulum.DateTime)


def test_run_without_logical_date_has_no_date_keys() -> None:
    # given an Airflow-3-style manual run without a logical date
    ctx = make_context(
        StubDagRun(
            run_id="manual__x",
            run_type="manual",
            logical_date=None,
            data_interval_start=None,
            data_interval_end=None,
        )
    )
    # expect no date keys, and a key string built from the run id
    for key in ("logical_date", "ds", "ts", "data_interval_start", "execution_date", "next_ds"):
        assert key not in ctx
    assert ctx["task_instance_key_str"] == "sales__load__manual__x"


def test_extra_keys_are_added_last() -> None:
    ctx = make_context(extra={"prev_data_interval_start_success": "given", "templates_dict": {}})
    assert ctx["prev_data_interval_start_success"] == "given"
    assert ctx["templates_dict"] == {}


# -- var / conn / conf accessors ----------------------------------------------------------------


def test_var_accessor_reads_lazily() -> None:
    # given a getter that records its calls
    calls: list[str] = []

    def recording_getter(key: str) -> Any:
        calls.append(key)
        return get_variable(key)

    ctx = make_context(get_variable=recording_getter)
    # expect no look-up until the accessor is used
    assert calls == []
    assert ctx["var"].value.env == "prod"
    assert ctx["var"].json.cfg == {"limit": 10}
    assert ctx["var"].value.get("missing", "fallback") == "fallback"
    assert ctx["var"].get("cfg", deserialize_json=True) == {"limit": 10}
    assert calls == ["env", "cfg", "missing", "cfg"]


def test_missing_variable_raises_variable_not_found() -> None:
    ctx = make_context()
    with pytest.raises(VariableNotFound) as info:
        _ = ctx["var"].value.nope
    assert info.value.key == "nope"


def test_getter_returning_none_or_plain_key_error_means_missing() -> None:
    ctx = make_context(get_variable={}.__getitem__)
    with pytest.raises(VariableNotFound):
        ctx["var"].value.get("a")
    ctx = make_context(get_variable=lambda key: None)
    with pytest.raises(VariableNotFound):
        ctx["var"].json.get("a")


def test_conn_accessor() -> None:
    ctx = make_context()
    assert ctx["conn"].warehouse == {"host": "db.internal"}
    assert ctx["conn"].get("warehouse") == {"host": "db.internal"}
    assert ctx["conn"].get("nope", None) is None
    with pytest.raises(ConnectionNotFound):
        _ = ctx["conn"].nope


def test_conf_accessor_with_and_without_a_getter() -> None:
    ctx = make_context()
    assert ctx["conf"].get("core", "dags_folder", fallback="/dags") == "/dags"
    with pytest.raises(TradewindError, match=r"\[core\] dags_folder"):
        ctx["conf"].get("core", "dags_folder")
    settings = {("core", "parallelism"): "8", ("core", "debug"): "true"}
    ctx = make_context(get_config=lambda s, k: settings[(s, k)])
    assert ctx["conf"].getint("core", "parallelism") == 8
    assert ctx["conf"].getboolean("core", "debug") is True
    assert ctx["conf"].has_option("core", "debug")
    assert not ctx["conf"].has_option("core", "nope")


# -- current context -------------------------------------------------------------------------


def test_get_current_context_outside_a_task_raises() -> None:
    with pytest.raises(TradewindError, match="outside a running task"):
        get_current_context()


def test_get_current_context_inside_and_nested() -> None:
    outer, inner = make_context(), make_context(params={"n": 2})
    with set_current_context(outer):
        assert get_current_context() is outer
        with set_current_context(inner):
            assert get_current_context() is inner
        assert get_current_context() is outer
    with pytest.raises(TradewindError):
        get_current_context()


# -- AIRFLOW_CTX_ variables ------------------------------------------------------------------


def test_context_to_airflow_vars() -> None:
    env = context_to_airflow_vars(make_context(task=StubTask(email=["a@x.io", "b@x.io"])))
    assert env["AIRFLOW_CTX_DAG_ID"] == "sales"
    assert env["AIRFLOW_CTX_TASK_ID"] == "load"
    assert env["AIRFLOW_CTX_LOGICAL_DATE"] == "2024-01-01T00:00:00+00:00"
    assert env["AIRFLOW_CTX_TRY_NUMBER"] == "2"
    assert env["AIRFLOW_CTX_DAG_RUN_ID"] == "scheduled__2024-01-02T00:00:00+00:00"
    assert env["AIRFLOW_CTX_DAG_OWNER"] == "data-team"
    assert env["AIRFLOW_CTX_DAG_EMAIL"] == "a@x.io,b@x.io"
    assert {k.replace("TRADEWIND_", "AIRFLOW_"): v for k, v in env.items()} == {
        k: v for k, v in env.items() if k.startswith("AIRFLOW_")
    }
    assert all(isinstance(v, str) for v in env.values())


def test_context_to_airflow_vars_leaves_out_unknown_values() -> None:
    run = StubDagRun(logical_date=None, data_interval_start=None, data_interval_end=None)
    env = context_to_airflow_vars(make_context(run, task=StubTask(owner=None)))
    assert "AIRFLOW_CTX_LOGICAL_DATE" not in env
    assert "AIRFLOW_CTX_DAG_OWNER" not in env
    assert "TRADEWIND_CTX_DAG_EMAIL" not in env
