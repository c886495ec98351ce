"""``DAG.test()`` and the engine behind ``tradewind dags test``: one run through the real
scheduler code with the inline executor and a throw-away database."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from tradewind import DAG, Param, task
from tradewind.errors import ParamValidationError
from tradewind.operators.python import PythonOperator
from tradewind.scheduler import dag_test
from tradewind.sdk.trigger_rule import TriggerRule

RESULT_KEYS = {
    "dag_id",
    "run_id",
    "state",
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "task_instances",
}
TI_KEYS = {"task_id", "map_index", "state", "try_number", "start_date", "end_date", "return_value"}
DAY = datetime(2024, 3, 5, tzinfo=UTC)


def states(result: dag_test.DagTestResult) -> dict[tuple[str, int], str]:
    return {(t["task_id"], t["map_index"]): t["state"] for t in result.task_instances}


def test_a_successful_run_returns_every_instance_with_its_return_value() -> None:
    # given a chain of three tasks passing values along
    with DAG("chain", start_date=datetime(2024, 1, 1), schedule="@daily") as dag:

        @task
        def one() -> int:
            return 1

        @task
        def plus_one(x: int) -> int:
            return x + 1

        plus_one.override(task_id="three")(plus_one.override(task_id="two")(one()))
    progress: list[tuple[str, str]] = []
    # when it is tested for a logical date
    result = dag.test(
        logical_date=DAY,
        log_stream=io.StringIO(),
        on_progress=lambda task_id, state, _index, _run: progress.append((task_id, state)),
    )
    # expect success, the data interval of that date, and the values in order
    assert result.succeeded and result.state == "success"
    data = result.to_dict()
    assert set(data) == RESULT_KEYS
    assert json.loads(json.dumps(data)) == data
    assert data["run_id"] == "manual__2024-03-05T00:00:00+00:00"
    assert data["logical_date"] == "2024-03-05T00:00:00+00:00"
    # native data intervals: a daily run's logical date is the start of its interval
    assert (data["data_interval_start"], data["data_interval_end"]) == (
        "2024-03-05T00:00:00+00:00",
        "2024-03-06T00:00:00+00:00",
    )
    assert [set(t) for t in data["task_instances"]] == [TI_KEYS] * 3
    assert [(t["task_id"], t["return_value"]) for t in data["task_instances"]] == [
        ("one", 1),
        ("two", 2),
        ("three", 3),
    ]
    assert all(t["try_number"] == 1 and t["end_date"] for t in data["task_instances"])
    assert progress == [("one", "success"), ("two", "success"), ("three", "success")]


def test_a_failing_task_fails_the_run_and_its_downstream_is_upstream_failed() -> None:
    def boom() -> None:
        raise ValueError("boom in the task")

    with DAG("failing", schedule=None) as dag:
        first = PythonOperator(task_id="first", python_callable=boom)
        after = PythonOperator(task_id="after", python_callable=lambda: None)
        cleanup = PythonOperator(
            task_id="cleanup", python_callable=lambda: "cleaned", trigger_rule=TriggerRule.ALL_DONE
        )
        first >> after
        first >> cleanup
    logs = io.StringIO()
    result = dag_test.test_dag(dag, log_stream=logs)
    assert result.state == "failed" and not result.succeeded
    assert states(result) == {
        ("first", -1): "failed",
        ("after", -1): "upstream_failed",
        ("cleanup", -1): "success",
    }
    # and the task's log, with its traceback, went to the log stream
    assert "ValueError: boom in the task" in logs.getvalue()


def test_retries_run_again_in_the_same_test() -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first try fails")
        return "second try works"

    with DAG("flaky", schedule=None) as dag:
        PythonOperator(task_id="flaky", python_callable=flaky, retries=1, retry_delay=timedelta(0))
    result = dag.test(log_stream=io.StringIO())
    assert result.succeeded
    (ti,) = result.task_instances
    assert (ti["try_number"], ti["return_value"]) == (2, "second try works")


def test_mapped_tasks_expand_and_report_each_instance() -> None:
    with DAG("mapped", schedule=None) as dag:

        @task
        def numbers() -> list[int]:
            return [1, 2, 3]

        @task
        def double(n: int) -> int:
            return n * 2

        @task
        def total(values: list[int]) -> int:
            return sum(values)

        total(double.expand(n=numbers()))
    result = dag.test(log_stream=io.StringIO())
    assert result.succeeded
    doubled = sorted(
        (t["map_index"], t["return_value"])
        for t in result.task_instances
        if t["task_id"] == "double"
    )
    assert doubled == [(0, 2), (1, 4), (2, 6)]
    assert [t["return_value"] for t in result.task_instances if t["task_id"] == "total"] == [12]


def test_conf_overrides_params_and_bad_conf_is_rejected_before_running() -> None:
    ran: list[int] = []

    def show(**context: object) -> int:
        value = context["params"]["limit"]  # type: ignore[index]
        ran.append(value)
        return value

    with DAG("with_params", schedule=None, params={"limit": Param(10, type="integer")}) as dag:
        PythonOperator(task_id="show", python_callable=show)
    ok = dag.test(conf={"limit": 3}, log_stream=io.StringIO())
    assert ok.succeeded and ok.task_instances[0]["return_value"] == 3
    with pytest.raises(ParamValidationError) as caught:
        dag.test(conf={"limit": "many"}, log_stream=io.StringIO())
    assert caught.value.param == "limit"
    assert ran == [3]


def test_a_long_chain_runs_in_one_process_with_one_step_per_task() -> None:
    # given a chain of 20 tasks (the W5 workload's shape)
    with DAG("chain20", schedule=None) as dag:
        previous = None
        for i in range(20):
            current = PythonOperator(task_id=f"t{i}", python_callable=lambda i=i: i)
            if previous is not None:
                previous >> current
            previous = current
    result = dag.test(log_stream=io.StringIO())
    # expect every task to succeed in order
    assert result.succeeded
    assert [t["task_id"] for t in result.task_instances] == [f"t{i}" for i in range(20)]
    assert [t["return_value"] for t in result.task_instances] == list(range(20))
