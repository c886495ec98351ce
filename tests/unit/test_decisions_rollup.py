"""Run state roll-up: leaves decide, teardowns are ignored, deadlocks and timeouts fail the run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tradewind import DAG
from tradewind.operators import PythonOperator
from tradewind.scheduler.decisions import (
    RunDecision,
    TaskAction,
    TaskDecision,
    TISnapshot,
    effective_leaf_ids,
    run_state_from_tasks,
)
from tradewind.serialization import SerializedDAG, deserialize_dag, serialize_dag
from tradewind.state import RunState, TaskState

START = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)


def _noop() -> None:
    return None


def work(task_id: str, **kwargs: Any) -> PythonOperator:
    return PythonOperator(task_id=task_id, python_callable=_noop, **kwargs)


def view(dag: DAG) -> SerializedDAG:
    return deserialize_dag(serialize_dag(dag))


def tis(spec: str) -> list[TISnapshot]:
    """``"a=success,b[0]=failed"`` -> snapshots."""
    out = []
    for item in filter(None, spec.split(",")):
        name, _, state = item.partition("=")
        index = -1
        if name.endswith("]"):
            name, _, rest = name.partition("[")
            index = int(rest[:-1])
        out.append(TISnapshot(task_id=name, map_index=index, state=TaskState(state)))
    return out


def rollup(dag: SerializedDAG, spec: str, **kwargs: Any) -> RunDecision:
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("run_start", NOW - timedelta(minutes=5))
    kwargs.setdefault("dagrun_timeout", None)
    return run_state_from_tasks(tis(spec), dag=dag, **kwargs)


@pytest.fixture(scope="module")
def chain() -> SerializedDAG:
    with DAG("d", start_date=START) as dag:
        work("a") >> work("b") >> work("c", trigger_rule="all_done")
    return view(dag)


@pytest.mark.parametrize(
    ("spec", "state", "callback"),
    [
        ("a=success,b=success,c=success", RunState.SUCCESS, "success"),
        ("a=success,b=skipped,c=skipped", RunState.SUCCESS, "success"),
        # a failure in the middle with an all_done leaf that succeeded: the run succeeds
        ("a=success,b=failed,c=success", RunState.SUCCESS, "success"),
        ("a=success,b=success,c=failed", RunState.FAILED, "task_failure"),
        ("a=failed,b=upstream_failed,c=upstream_failed", RunState.FAILED, "task_failure"),
        ("a=success,b=running,c=created", RunState.RUNNING, None),
        ("a=success,b=success,c=up_for_retry", RunState.RUNNING, None),
        # removed instances are ignored
        ("a=success,b=success,c=success,old=removed", RunState.SUCCESS, "success"),
    ],
)
def test_leaves_decide_the_run(
    chain: SerializedDAG, spec: str, state: RunState, callback: str | None
) -> None:
    decision = rollup(chain, spec)
    assert decision.state is state, decision.reason
    assert decision.callback_reason == callback
    assert decision.finished is (state is not RunState.RUNNING)


def test_reasons(chain: SerializedDAG) -> None:
    assert rollup(chain, "a=success,b=success,c=failed").reason == (
        "failed: leaf task instance(s) 'c' failed or are upstream_failed"
    )
    assert rollup(chain, "a=success,b=success,c=success").reason == (
        "success: every leaf task instance succeeded or was skipped (1 leaf instance)"
    )
    assert rollup(chain, "a=success,b=running,c=created").reason == (
        "running: 2 of 3 task instances unfinished"
    )


def test_every_mapped_leaf_instance_counts() -> None:
    with DAG("m", start_date=START) as dag:
        work("up") >> PythonOperator.partial(task_id="leaf", python_callable=_noop).expand(
            op_args=[[1], [2]]
        )
    decision = rollup(view(dag), "up=success,leaf[0]=success,leaf[1]=failed")
    assert decision.state is RunState.FAILED
    assert "'leaf'[1]" in decision.reason


# -- teardowns ---------------------------------------------------------------------------------


def teardown_dag(fail_run: bool) -> SerializedDAG:
    with DAG("td", start_date=START) as dag:
        create = work("create").as_setup()
        delete = work("delete").as_teardown(setups=create, on_failure_fail_dagrun=fail_run)
        create >> work("body") >> delete
    return view(dag)


def test_teardown_failure_does_not_fail_the_run() -> None:
    dag = teardown_dag(fail_run=False)
    assert effective_leaf_ids(dag) == {"body"}
    assert rollup(dag, "create=success,body=success,delete=failed").state is RunState.SUCCESS
    assert rollup(dag, "create=success,body=failed,delete=success").state is RunState.FAILED


def test_teardown_with_on_failure_fail_dagrun_counts() -> None:
    dag = teardown_dag(fail_run=True)
    assert effective_leaf_ids(dag) == {"delete"}
    assert rollup(dag, "create=success,body=success,delete=failed").state is RunState.FAILED


def test_dag_of_only_teardowns_falls_back_to_plain_leaves() -> None:
    with DAG("only", start_date=START) as dag:
        work("t").as_teardown()
    assert effective_leaf_ids(view(dag)) == {"t"}


# -- timeout -----------------------------------------------------------------------------------


def test_timeout_fails_the_run_and_skips_unfinished(chain: SerializedDAG) -> None:
    # given a run started 2 hours ago with a 1-hour dagrun_timeout and two unfinished instances
    decision = rollup(
        chain,
        "a=success,b=running,c=created",
        run_start=NOW - timedelta(hours=2),
        dagrun_timeout=timedelta(hours=1),
    )
    # expect it fails as timed out and lists what to mark skipped
    assert decision.state is RunState.FAILED
    assert decision.callback_reason == "timed_out"
    assert decision.to_skip == (("b", -1), ("c", -1))
    assert decision.reason.startswith("timed out: the run exceeded its dagrun_timeout of 1:00:00")
    assert decision.timeout_at == NOW - timedelta(hours=1)


def test_timeout_is_a_timer_before_it_expires(chain: SerializedDAG) -> None:
    decision = rollup(
        chain,
        "a=running,b=created,c=created",
        run_start=NOW - timedelta(minutes=10),
        dagrun_timeout=timedelta(hours=1),
    )
    assert decision.state is RunState.RUNNING
    assert decision.timeout_at == NOW + timedelta(minutes=50)


def test_a_finished_run_is_not_timed_out(chain: SerializedDAG) -> None:
    decision = rollup(
        chain,
        "a=success,b=success,c=success",
        run_start=NOW - timedelta(hours=2),
        dagrun_timeout=timedelta(hours=1),
    )
    assert decision.state is RunState.SUCCESS


def test_naive_times_mean_utc(chain: SerializedDAG) -> None:
    decision = rollup(
        chain,
        "a=running",
        now=NOW.replace(tzinfo=None),
        run_start=(NOW - timedelta(hours=2)).replace(tzinfo=None),
        dagrun_timeout=timedelta(hours=1),
    )
    assert decision.callback_reason == "timed_out"


# -- deadlock -----------------------------------------------------------------------------------


def wait(reason: str, **kwargs: Any) -> TaskDecision:
    return TaskDecision(TaskAction.WAIT, reason, **kwargs)


def test_deadlock_when_nothing_can_ever_run(chain: SerializedDAG) -> None:
    # given every unfinished instance is created and waits on something that cannot change
    decisions = {
        ("b", -1): wait("depends_on_past: in the previous run 'p', 'b' is failed"),
        ("c", -1): wait("waiting for 1 of 1 upstream task; trigger rule all_done"),
    }
    decision = rollup(chain, "a=success,b=created,c=created", decisions=decisions)
    # expect the run fails as deadlocked, naming the reasons
    assert decision.state is RunState.FAILED
    assert decision.callback_reason == "all_tasks_deadlocked"
    assert decision.reason.startswith(
        "deadlock: 2 task instances can never run: 'b' (depends_on_past"
    )


@pytest.mark.parametrize(
    ("spec", "decisions"),
    [
        # something is in flight
        ("a=success,b=running,c=created", {("c", -1): wait("waiting")}),
        # something is ready this round
        ("a=success,b=created,c=created",
         {("b", -1): TaskDecision(TaskAction.SCHEDULE, "ready"), ("c", -1): wait("waiting")}),
        # a wait on a timer
        ("a=success,b=created,c=created",
         {("b", -1): wait("retry", wake_at=NOW), ("c", -1): wait("waiting")}),
        # an instance without a decision this round
        ("a=success,b=created,c=created", {("c", -1): wait("waiting")}),
        # no decisions at all
        ("a=success,b=created,c=created", None),
    ],
)  # fmt: skip
def test_no_deadlock_while_progress_is_possible(
    chain: SerializedDAG, spec: str, decisions: dict[tuple[str, int], TaskDecision] | None
) -> None:
    assert rollup(chain, spec, decisions=decisions).state is RunState.RUNNING
