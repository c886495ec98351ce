"""Branching, short-circuit and latest-only operators: which downstream tasks they skip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tradewind.operators import (
    BaseBranchOperator,
    BranchPythonOperator,
    EmptyOperator,
    LatestOnlyOperator,
    ShortCircuitOperator,
)
from tradewind.operators.branch import SKIPMIXIN_KEY
from tradewind.runtime import InMemoryTaskClient, RunInfo, TaskInstanceInfo, TaskOutcome, run_task
from tradewind.sdk import DAG, TaskGroup, task
from tradewind.state import TaskState

START = datetime(2024, 1, 1, tzinfo=UTC)
DAY2 = datetime(2024, 1, 2, tzinfo=UTC)
DAY3 = datetime(2024, 1, 3, tzinfo=UTC)
SCHEDULED = RunInfo(
    dag_id="d",
    run_id="scheduled__2024-01-02",
    run_type="scheduled",
    logical_date=DAY2,
    data_interval_start=DAY2,
    data_interval_end=DAY3,
)
MANUAL = RunInfo(dag_id="d", run_id="manual__1", run_type="manual", logical_date=DAY2,
                 data_interval_start=DAY2, data_interval_end=DAY3)  # fmt: skip


def run(
    dag: DAG,
    task_id: str,
    client: InMemoryTaskClient | None = None,
    run_info: RunInfo = SCHEDULED,
    **kwargs: Any,
) -> TaskOutcome:
    info = TaskInstanceInfo(dag_id=dag.dag_id, task_id=task_id, run_id=run_info.run_id)
    return run_task(
        dag.get_task(task_id),
        dag=dag,
        run=run_info,
        ti=info,
        client=client or InMemoryTaskClient(),
        **kwargs,
    )


# -- branching ------------------------------------------------------------------------------------


def test_branch_to_a_task_skips_the_other_direct_downstreams() -> None:
    # given a branch with three direct downstream tasks
    with DAG("d", start_date=START) as dag:
        pick = BranchPythonOperator(task_id="pick", python_callable=lambda: "a")
        pick >> [EmptyOperator(task_id="a"), EmptyOperator(task_id="b"), EmptyOperator(task_id="c")]
    client = InMemoryTaskClient()
    # when it runs
    outcome = run(dag, "pick", client)
    # expect the others skipped, the choice recorded and returned
    assert outcome.state is TaskState.SUCCESS
    assert outcome.skipped_task_ids == ["b", "c"]
    assert client.get_xcom("d", SCHEDULED.run_id, "pick", SKIPMIXIN_KEY, -1) == {"followed": ["a"]}
    assert outcome.return_value == "a"


def test_branch_to_a_group_follows_the_groups_root_tasks() -> None:
    # given a branch in front of a task group and a plain task
    with DAG("d", start_date=START) as dag:
        pick = BranchPythonOperator(task_id="pick", python_callable=lambda: "load")
        with TaskGroup("load") as load:
            EmptyOperator(task_id="first") >> EmptyOperator(task_id="second")
        pick >> [load, EmptyOperator(task_id="other")]
    client = InMemoryTaskClient()
    # when it chooses the group
    outcome = run(dag, "pick", client)
    # expect the group's root followed and the other task skipped
    assert outcome.skipped_task_ids == ["other"]
    assert client.get_xcom("d", SCHEDULED.run_id, "pick", SKIPMIXIN_KEY, -1) == {
        "followed": ["load.first"]
    }


def test_branch_returning_none_skips_every_direct_downstream() -> None:
    with DAG("d", start_date=START) as dag:
        pick = BranchPythonOperator(task_id="pick", python_callable=lambda: None)
        pick >> [EmptyOperator(task_id="a"), EmptyOperator(task_id="b")]
    assert run(dag, "pick").skipped_task_ids == ["a", "b"]


def test_join_downstream_of_a_chosen_task_is_not_skipped() -> None:
    # given branch >> [a, b] >> join and also branch >> join directly
    with DAG("d", start_date=START) as dag:
        pick = BranchPythonOperator(task_id="pick", python_callable=lambda: ["a"])
        a, b, join = (
            EmptyOperator(task_id="a"),
            EmptyOperator(task_id="b"),
            EmptyOperator(task_id="join"),
        )
        pick >> [a, b]
        [a, b] >> join
        pick >> join
    # when it chooses a / expect join (downstream of a) kept, b skipped
    assert run(dag, "pick").skipped_task_ids == ["b"]


def test_branch_to_an_unknown_id_fails_naming_it() -> None:
    with DAG("d", start_date=START) as dag:
        pick = BranchPythonOperator(task_id="pick", python_callable=lambda: "nope")
        pick >> EmptyOperator(task_id="a")
    outcome = run(dag, "pick")
    assert outcome.state is TaskState.FAILED
    assert "'nope'" in (outcome.error or "")
    assert outcome.skipped_task_ids == []


def test_branch_returning_a_non_id_fails() -> None:
    with DAG("d", start_date=START) as dag:
        BranchPythonOperator(task_id="pick", python_callable=lambda: 42) >> EmptyOperator(
            task_id="a"
        )
    outcome = run(dag, "pick")
    assert outcome.state is TaskState.FAILED
    assert "42" in (outcome.error or "")


def test_task_branch_decorator_branches_with_context_values() -> None:
    # given a @task.branch choosing by param
    with DAG("d", start_date=START, params={"region": "us"}) as dag:

        @task.branch
        def route(params=None) -> str:
            return f"load_{params['region']}"

        route() >> [EmptyOperator(task_id="load_eu"), EmptyOperator(task_id="load_us")]
    # when it runs / expect the other region skipped
    assert run(dag, "route").skipped_task_ids == ["load_eu"]


def test_custom_branch_operator_uses_choose_branch() -> None:
    class Weekday(BaseBranchOperator):
        def choose_branch(self, context):
            return "weekday" if context["logical_date"].weekday() < 5 else "weekend"

    with DAG("d", start_date=START) as dag:
        Weekday(task_id="day") >> [
            EmptyOperator(task_id="weekday"),
            EmptyOperator(task_id="weekend"),
        ]
    # 2024-01-02 is a Tuesday
    assert run(dag, "day").skipped_task_ids == ["weekend"]


# -- short-circuit --------------------------------------------------------------------------------


def _short_circuit_dag(condition: Any, ignore: bool) -> DAG:
    with DAG("d", start_date=START) as dag:
        check = ShortCircuitOperator(
            task_id="check",
            python_callable=lambda: condition,
            ignore_downstream_trigger_rules=ignore,
        )
        check >> EmptyOperator(task_id="next") >> EmptyOperator(task_id="later")
    return dag


def test_short_circuit_truthy_skips_nothing() -> None:
    outcome = run(_short_circuit_dag([1], ignore=True), "check")
    assert outcome.state is TaskState.SUCCESS
    assert outcome.skipped_task_ids == []
    assert outcome.return_value == [1]


def test_short_circuit_falsy_skips_every_descendant_by_default() -> None:
    outcome = run(_short_circuit_dag(0, ignore=True), "check")
    assert outcome.skipped_task_ids == ["later", "next"]


def test_short_circuit_falsy_skips_only_direct_downstreams_when_trigger_rules_apply() -> None:
    outcome = run(_short_circuit_dag(False, ignore=False), "check")
    assert outcome.skipped_task_ids == ["next"]


def test_short_circuit_does_not_skip_teardowns() -> None:
    with DAG("d", start_date=START) as dag:
        check = ShortCircuitOperator(task_id="check", python_callable=lambda: False)
        cleanup = EmptyOperator(task_id="cleanup").as_teardown()
        check >> EmptyOperator(task_id="work") >> cleanup
    assert run(dag, "check").skipped_task_ids == ["work"]


def test_task_short_circuit_decorator() -> None:
    with DAG("d", start_date=START) as dag:

        @task.short_circuit(ignore_downstream_trigger_rules=False)
        def is_ready() -> bool:
            return False

        is_ready() >> EmptyOperator(task_id="next") >> EmptyOperator(task_id="later")
    assert run(dag, "is_ready").skipped_task_ids == ["next"]


# -- latest only ----------------------------------------------------------------------------------


def _latest_only_dag() -> DAG:
    with DAG("d", start_date=START, schedule="@daily") as dag:
        (
            LatestOnlyOperator(task_id="latest")
            >> EmptyOperator(task_id="notify")
            >> EmptyOperator(task_id="after")
        )
    return dag


def test_latest_only_lets_the_latest_scheduled_run_proceed() -> None:
    # given the run for [Jan 2, Jan 3) and now just after Jan 3
    outcome = run(_latest_only_dag(), "latest", now=DAY3 + timedelta(minutes=5))
    # expect nothing skipped
    assert outcome.state is TaskState.SUCCESS
    assert outcome.skipped_task_ids == []


def test_latest_only_skips_direct_downstreams_of_an_older_run() -> None:
    # given the same run but now two days later (a newer interval has completed)
    outcome = run(_latest_only_dag(), "latest", now=DAY3 + timedelta(days=2))
    # expect only the direct downstream skipped
    assert outcome.skipped_task_ids == ["notify"]


def test_latest_only_does_nothing_for_a_manual_run() -> None:
    outcome = run(_latest_only_dag(), "latest", run_info=MANUAL, now=DAY3 + timedelta(days=30))
    assert outcome.skipped_task_ids == []


def test_latest_only_uses_the_next_interval_end_given_by_the_runtime() -> None:
    # given the engine knows the next interval ends on Jan 10 (irregular schedule)
    outcome = run(
        _latest_only_dag(),
        "latest",
        now=DAY3 + timedelta(days=3),
        extra_context={"next_data_interval_end": datetime(2024, 1, 10, tzinfo=UTC)},
    )
    # expect the run still counts as the latest
    assert outcome.skipped_task_ids == []
