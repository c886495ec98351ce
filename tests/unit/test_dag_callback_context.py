"""The context of DAG-level callbacks (``scheduler/callback_context.py``): which task instance
it is taken from, what ``dag_run`` and ``ti`` offer, and what happens when pieces are missing.
Pure: plain records in, a context out (the database side is in
``tests/integration/test_dag_callbacks.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import product
from types import SimpleNamespace
from typing import Any

import pytest

from tradewind import DAG, Param
from tradewind.errors import ConnectionNotFound, TradewindError, VariableNotFound, XComError
from tradewind.operators.empty import EmptyOperator
from tradewind.runtime.client import InMemoryTaskClient
from tradewind.runtime.task_runner import RuntimeTaskInstance, TaskInstanceInfo
from tradewind.scheduler.callback_context import (
    CallbackTaskInstance,
    build_callback_context,
    pick_task_instance,
    run_from_fields,
)
from tradewind.scheduler.callbacks import MAX_CONF_ARGUMENT, run_info
from tradewind.sdk.params import NOTSET

T0 = datetime(2024, 3, 5, 6, 0, tzinfo=UTC)


def ti_row(task_id: str, state: str, ended: int | None = None, map_index: int = -1) -> dict:
    return {
        "dag_id": "etl",
        "run_id": "manual__1",
        "task_id": task_id,
        "map_index": map_index,
        "state": state,
        "try_number": 1,
        "start_date": T0,
        "end_date": T0 + timedelta(minutes=ended) if ended is not None else None,
    }


def make_run(*rows: dict, **fields: Any) -> Any:
    base = {
        "dag_id": "etl",
        "run_id": "manual__1",
        "run_type": "manual",
        "state": "failed",
        "logical_date": T0,
        "data_interval_start": T0,
        "data_interval_end": T0 + timedelta(days=1),
        "start_date": T0,
        "end_date": T0 + timedelta(minutes=30),
        "conf": {},
    }
    return run_from_fields({**base, **fields}, rows)


def etl_dag() -> DAG:
    with DAG("etl", schedule=None, params={"limit": Param(5, type="integer")}) as dag:
        EmptyOperator(task_id="extract") >> EmptyOperator(task_id="load")
        EmptyOperator(task_id="report", params={"title": "daily"})
    return dag


# --- which task instance ---------------------------------------------------------------------


def test_a_failure_callback_gets_the_failed_instance_even_if_another_ended_later() -> None:
    run = make_run(
        ti_row("extract", "success", 1),
        ti_row("load", "failed", 5),
        ti_row("report", "upstream_failed", 9),
    )
    assert pick_task_instance(run.get_task_instances(), failure=True).task_id == "load"


def test_of_several_failed_instances_the_one_that_ended_last_is_taken() -> None:
    run = make_run(ti_row("a", "failed", 7), ti_row("b", "failed", 3), ti_row("c", "success", 9))
    assert pick_task_instance(run.get_task_instances(), failure=True).task_id == "a"


def test_otherwise_the_instance_furthest_downstream_is_taken_and_removed_ones_never() -> None:
    # given instances whose end dates do not follow the DAG (the scheduler stamps the ones
    # it finishes itself with its own clock)
    run = make_run(
        ti_row("extract", "success", 4),
        ti_row("split", "success", 9, map_index=0),
        ti_row("split", "success", 8, map_index=1),
        ti_row("load", "skipped", 2),
        ti_row("gone", "removed", 20),
    )
    order = ["extract", "split", "load", "gone"]
    tis = run.get_task_instances()
    # expect the last task of the DAG, whatever the clock said
    assert pick_task_instance(tis, failure=False, task_order=order).task_id == "load"
    # a deadlocked or timed-out run may have no failed instance: the last one counts then
    assert pick_task_instance(tis, failure=True, task_order=order).task_id == "load"
    # a mapped task's last instance is its highest map index
    picked = pick_task_instance(tis[:3], failure=False, task_order=order)
    assert (picked.task_id, picked.map_index) == ("split", 1)
    assert pick_task_instance([], failure=False) is None


# --- what the context holds ------------------------------------------------------------------


def test_the_context_is_the_template_context_of_the_instance_plus_the_reason() -> None:
    # given a failed run with a conf overriding a param
    dag = etl_dag()
    run = make_run(
        ti_row("extract", "success", 1),
        ti_row("load", "failed", 5),
        conf={"limit": 7},
    )
    # when the failure callback's context is built
    built = build_callback_context(
        dag,
        run=run,
        kind="failure",
        reason="task_failure",
        get_variable={"greeting": "hi"}.__getitem__,
        get_connection=lambda conn_id: SimpleNamespace(conn_id=conn_id, host="db.example"),
    )
    ctx = built.context
    # expect the failed instance, its task and the run, and every template key
    assert built.notes == []
    assert ctx["reason"] == "task_failure"
    assert ctx["ti"] is ctx["task_instance"] is built.ti
    assert (ctx["ti"].task_id, str(ctx["ti"].state)) == ("load", "failed")
    assert ctx["task"] is dag.task_dict["load"] and ctx["ti"].task is ctx["task"]
    assert ctx["dag"] is dag and ctx["dag_run"] is run and ctx["run_id"] == "manual__1"
    assert (ctx["ds"], ctx["ts"]) == ("2024-03-05", "2024-03-05T06:00:00+00:00")
    assert ctx["data_interval_end"] == T0 + timedelta(days=1)
    assert ctx["params"] == {"limit": 7}
    assert ctx["macros"].ds_add(ctx["ds"], 1) == "2024-03-06"
    assert ctx["var"].value.greeting == "hi" and ctx["var"].value.get("nope", "-") == "-"
    assert ctx["conn"].warehouse.host == "db.example"
    assert ctx["task_instance_key_str"] == "etl__load__20240305"
    assert ctx["ti"].get_template_context() is ctx
    assert ctx["ti"].get_dagrun() is run and ctx["ti"].logical_date == T0


def test_the_dag_run_lists_its_task_instances() -> None:
    run = make_run(
        ti_row("extract", "success", 1),
        ti_row("split", "success", 2, map_index=0),
        ti_row("split", "failed", 3, map_index=1),
        ti_row("load", "upstream_failed", 4),
    )
    assert [(t.task_id, t.map_index) for t in run.get_task_instances()] == [
        ("extract", -1),
        ("split", 0),
        ("split", 1),
        ("load", -1),
    ]
    assert [t.task_id for t in run.get_task_instances(state="failed")] == ["split"]
    assert len(run.get_task_instances(state=["success", "upstream_failed"], session=None)) == 3
    assert run.get_task_instance("split", map_index=1).state == "failed"
    assert run.get_task_instance("missing") is None
    assert run.execution_date == run.logical_date == T0 and run.external_trigger
    assert all(t.get_dagrun() is run for t in run.get_task_instances())


def test_a_run_without_task_instances_still_gets_the_run_keys() -> None:
    built = build_callback_context(etl_dag(), run=make_run(), kind="success", reason="success")
    assert built.ti is None and built.context["ti"] is None and built.context["task"] is None
    assert built.context["ds"] == "2024-03-05" and built.context["params"] == {"limit": 5}
    assert built.notes == ["the run has no task instance to take the context from"]


def test_a_task_gone_from_the_dag_leaves_the_context_without_a_task() -> None:
    run = make_run(ti_row("old_task", "success", 1), state="success")
    built = build_callback_context(etl_dag(), run=run, kind="success", reason="success")
    assert built.context["ti"].task_id == "old_task" and built.context["task"] is None
    assert built.notes == ["task 'old_task' is no longer in the DAG: the context has no task"]


def test_params_that_do_not_validate_leave_the_context_without_params() -> None:
    run = make_run(ti_row("load", "failed", 1), conf={"limit": "many"})
    built = build_callback_context(etl_dag(), run=run, kind="failure", reason="task_failure")
    assert built.context["params"] == {} and built.context["ti"].task_id == "load"
    assert len(built.notes) == 1 and built.notes[0].startswith("params do not validate")


def test_var_and_conn_default_to_the_secrets_lookup_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWIND_VAR_REGION", "eu")
    monkeypatch.setenv("TRADEWIND_CONN_WAREHOUSE", "postgres://u:pw@db.example:5432/dw")
    built = build_callback_context(etl_dag(), run=make_run(), kind="success", reason="success")
    assert built.context["var"].value.region == "eu"
    assert built.context["conn"].warehouse.host == "db.example"
    with pytest.raises(VariableNotFound):
        built.context["var"].value.missing_one
    with pytest.raises(ConnectionNotFound):
        built.context["conn"].missing_one


# --- XCom ----------------------------------------------------------------------------------


def _xcom_client() -> InMemoryTaskClient:
    client = InMemoryTaskClient()
    client.set_xcom("etl", "manual__1", "extract", "return_value", -1, {"rows": 3})
    client.set_xcom("etl", "manual__1", "extract", "count", -1, 3)
    for index, value in enumerate([10, None, 30]):
        if value is not None:
            client.set_xcom("etl", "manual__1", "split", "return_value", index, value)
    client.set_xcom("etl", "manual__1", "load", "return_value", -1, "done")
    return client


@pytest.mark.parametrize(("task_id", "map_index"), [("load", -1), ("split", 2)])
def test_xcom_pull_answers_exactly_as_in_a_running_task(task_id: str, map_index: int) -> None:
    # given the same stored XComs behind a task's ti and a DAG callback's ti
    client = _xcom_client()
    runtime = RuntimeTaskInstance(
        TaskInstanceInfo(dag_id="etl", task_id=task_id, run_id="manual__1", map_index=map_index),
        task=None,
        client=client,
        max_tries=0,
    )
    run = make_run(ti_row(task_id, "success", 1, map_index=map_index))
    build_callback_context(etl_dag(), run=run, kind="success", reason="success", xcom=client)
    callback_ti = run.get_task_instances()[0]
    task_ids: list[Any] = [None, "extract", "split", "nothing", ["extract", "split"], ["nothing"]]
    indexes: list[Any] = [NOTSET, None, -1, 1, 2, [0, 1, 2], [-1, 5]]
    # expect every combination of arguments to give the same answer
    for ids, idx, key, default in product(task_ids, indexes, [None, "count"], [None, "-"]):
        kwargs = {"task_ids": ids, "key": key, "map_indexes": idx, "default": default}
        assert callback_ti.xcom_pull(**kwargs) == runtime.xcom_pull(**kwargs), kwargs
    assert callback_ti.xcom_pull(task_ids="extract", dag_id="etl", run_id="manual__1") == {
        "rows": 3
    }


def test_xcom_needs_a_database_and_is_read_only() -> None:
    run = make_run(ti_row("load", "failed", 1))
    built = build_callback_context(
        etl_dag(),
        run=run,
        kind="failure",
        reason="task_failure",
        xcom_missing="the scheduler's database is in memory",
    )
    ti = built.context["ti"]
    with pytest.raises(TradewindError, match="cannot read XCom in this DAG callback: the sched"):
        ti.xcom_pull(task_ids="extract")
    with pytest.raises(XComError, match="may read XComs but not push them"):
        ti.xcom_push("k", 1)


# --- what the scheduler passes -----------------------------------------------------------------


def test_run_info_carries_the_row_fields_and_leaves_a_large_conf_to_the_database() -> None:
    row = SimpleNamespace(
        id=7,
        run_type="scheduled",
        clear_number=0,
        logical_date=T0,
        data_interval_start=T0,
        data_interval_end=T0 + timedelta(days=1),
        run_after=T0,
        queued_at=T0,
        start_date=T0,
        end_date=None,
        conf={"limit": 7},
    )
    info = run_info(row, state="success")
    assert info["state"] == "success" and info["conf"] == {"limit": 7}
    assert info["logical_date"] == "2024-03-05T06:00:00+00:00" and info["end_date"] is None
    run = run_from_fields({**info, "dag_id": "etl", "run_id": "scheduled__1"})
    assert (run.logical_date, run.run_type, run.conf, run.id) == (T0, "scheduled", {"limit": 7}, 7)
    row.conf = {"blob": "x" * MAX_CONF_ARGUMENT}
    assert "conf" not in run_info(row, state="failed")


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(TypeError, match="unknown task instance fields: colour"):
        CallbackTaskInstance(dag_id="d", run_id="r", task_id="t", colour="red")
