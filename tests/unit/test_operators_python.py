"""PythonOperator and @task, run through the task runtime with an in-memory client."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from tradewind.errors import InvalidArgumentError
from tradewind.operators.python import (
    DecoratedPythonOperator,
    PythonOperator,
    determine_kwargs,
    determine_task_kwargs,
)
from tradewind.runtime import InMemoryTaskClient, RunInfo, TaskInstanceInfo, TaskOutcome, run_task
from tradewind.sdk import DAG, task
from tradewind.sdk.context import get_current_context
from tradewind.state import TaskState

START = datetime(2024, 1, 1, tzinfo=UTC)
SCHEDULED = RunInfo(
    dag_id="d",
    run_id="scheduled__2024-01-02",
    run_type="scheduled",
    logical_date=datetime(2024, 1, 2, tzinfo=UTC),
    data_interval_start=datetime(2024, 1, 2, tzinfo=UTC),
    data_interval_end=datetime(2024, 1, 3, tzinfo=UTC),
)


def run(
    dag: DAG, task_id: str, client: InMemoryTaskClient, run_info: RunInfo = SCHEDULED, **ti: Any
) -> TaskOutcome:
    info = TaskInstanceInfo(dag_id=dag.dag_id, task_id=task_id, run_id=run_info.run_id, **ti)
    return run_task(dag.get_task(task_id), dag=dag, run=run_info, ti=info, client=client)


def pull(
    client: InMemoryTaskClient, task_id: str, key: str = "return_value", map_index: int = -1
) -> Any:
    return client.get_xcom("d", SCHEDULED.run_id, task_id, key, map_index)


# -- TaskFlow -------------------------------------------------------------------------------------


def test_taskflow_value_passes_from_upstream_to_downstream_through_xcom() -> None:
    # given two TaskFlow tasks, the second taking the first's result
    with DAG("d", start_date=START) as dag:

        @task
        def extract() -> list[int]:
            return [1, 2, 3]

        @task
        def total(values: list[int]) -> int:
            return sum(values)

        total(extract())
    client = InMemoryTaskClient()
    # when the upstream runs, then the downstream, with the same client
    first = run(dag, "extract", client)
    second = run(dag, "total", client)
    # expect the downstream read the upstream's value, and both values are stored
    assert (first.state, second.state) == (TaskState.SUCCESS, TaskState.SUCCESS)
    assert second.return_value == 6
    assert pull(client, "extract") == [1, 2, 3]
    assert pull(client, "total") == 6


def test_multiple_outputs_pushes_each_key_and_the_whole_dict() -> None:
    # given a task whose annotation asks for multiple outputs, and one reading a single key
    with DAG("d", start_date=START) as dag:

        @task
        def split() -> dict[str, int]:
            return {"low": 1, "high": 9}

        @task
        def spread(low: int, high: int) -> int:
            return high - low

        parts = split()
        spread(parts["low"], parts["high"])
    client = InMemoryTaskClient()
    # when both run
    run(dag, "split", client)
    outcome = run(dag, "spread", client)
    # expect each key stored separately as well as the dict, and the keys resolved downstream
    assert pull(client, "split", "low") == 1
    assert pull(client, "split", "high") == 9
    assert pull(client, "split") == {"low": 1, "high": 9}
    assert outcome.return_value == 8


def test_context_named_parameters_receive_context_values() -> None:
    # given a task asking for ti, ds, params and dag_run by name
    seen: dict[str, Any] = {}
    with DAG("d", start_date=START, params={"limit": 5}) as dag:

        @task
        def inspect_context(ti=None, ds=None, params=None, dag_run=None) -> None:
            seen.update(ti=ti, ds=ds, params=params, dag_run=dag_run)

        inspect_context()
    # when it runs
    outcome = run(dag, "inspect_context", InMemoryTaskClient())
    # expect each parameter filled from the context
    assert outcome.state is TaskState.SUCCESS
    assert seen["ti"].task_id == "inspect_context"
    assert seen["ds"] == "2024-01-02"
    assert seen["params"] == {"limit": 5}
    assert seen["dag_run"].run_id == SCHEDULED.run_id


def test_context_parameter_absent_from_this_runs_context_receives_none() -> None:
    # given a task asking for logical_date (no default), in a run without a logical date
    seen: dict[str, Any] = {}
    with DAG("d", start_date=START) as dag:

        @task
        def when(logical_date) -> None:
            seen["logical_date"] = logical_date

        when()
    manual = RunInfo(dag_id="d", run_id="manual__x", run_type="manual")
    # when it runs / expect it gets None rather than a missing-argument error
    outcome = run(dag, "when", InMemoryTaskClient(), run_info=manual)
    assert outcome.state is TaskState.SUCCESS, outcome.error
    assert seen == {"logical_date": None}


def test_call_arguments_win_over_context_values_of_the_same_name() -> None:
    with DAG("d", start_date=START) as dag:

        @task
        def echo(ds=None) -> str:
            return ds

        echo(ds="given")
    assert run(dag, "echo", InMemoryTaskClient()).return_value == "given"


def test_xcom_value_with_template_markup_is_passed_unrendered() -> None:
    # given an upstream value that looks like a template
    with DAG("d", start_date=START) as dag:

        @task
        def produce() -> str:
            return "{{ not_a_context_key }}"

        @task
        def consume(text: str) -> str:
            return text

        consume(produce())
    client = InMemoryTaskClient()
    run(dag, "produce", client)
    # when the downstream runs / expect it receives the text as data, not as a template
    outcome = run(dag, "consume", client)
    assert outcome.state is TaskState.SUCCESS, outcome.error
    assert outcome.return_value == "{{ not_a_context_key }}"


def test_string_arguments_of_a_task_call_are_rendered() -> None:
    with DAG("d", start_date=START) as dag:

        @task
        def echo(day: str) -> str:
            return day

        echo("day={{ ds }}")
    assert run(dag, "echo", InMemoryTaskClient()).return_value == "day=2024-01-02"


def test_get_current_context_inside_a_task_returns_the_running_context() -> None:
    with DAG("d", start_date=START) as dag:

        @task
        def who() -> str:
            return get_current_context()["ti"].task_id

        who()
    assert run(dag, "who", InMemoryTaskClient()).return_value == "who"


def test_async_task_function_is_run_to_completion() -> None:
    with DAG("d", start_date=START) as dag:

        @task
        async def fetch(n: int) -> int:
            return n * 2

        fetch(21)
    outcome = run(dag, "fetch", InMemoryTaskClient())
    assert (outcome.state, outcome.return_value) == (TaskState.SUCCESS, 42)


# -- PythonOperator -------------------------------------------------------------------------------


def test_python_operator_passes_rendered_op_args_op_kwargs_and_templates_dict() -> None:
    # given a callable taking positional, keyword and templates_dict arguments
    def report(prefix, *, limit, templates_dict):
        return f"{prefix}:{limit}:{templates_dict['day']}"

    with DAG("d", start_date=START) as dag:
        PythonOperator(
            task_id="report",
            python_callable=report,
            op_args=["{{ ds_nodash }}"],
            op_kwargs={"limit": "{{ params.limit }}"},
            templates_dict={"day": "{{ ds }}"},
            params={"limit": 3},
        )
    # when it runs / expect every templated argument rendered before the call
    outcome = run(dag, "report", InMemoryTaskClient())
    assert outcome.return_value == "20240102:3:2024-01-02"
    assert outcome.rendered_fields["op_args"] == "['20240102']"


def test_python_operator_with_var_kwargs_receives_the_whole_context() -> None:
    seen: dict[str, Any] = {}

    def everything(**kwargs):
        seen.update(kwargs)

    with DAG("d", start_date=START) as dag:
        PythonOperator(task_id="all", python_callable=everything, op_kwargs={"extra": 1})
    run(dag, "all", InMemoryTaskClient())
    assert seen["extra"] == 1
    assert seen["ds"] == "2024-01-02"
    assert {"ti", "task", "params", "templates_dict"} <= set(seen)


def test_positional_argument_filling_a_context_name_fails_the_try() -> None:
    # given op_args filling a parameter named like a context key
    def bad(ds):
        return ds

    with DAG("d", start_date=START) as dag:
        PythonOperator(task_id="bad", python_callable=bad, op_args=["x"])
    # when it runs / expect a failure naming the parameter
    outcome = run(dag, "bad", InMemoryTaskClient())
    assert outcome.state is TaskState.FAILED
    assert "'ds'" in (outcome.error or "")


def test_python_operator_template_file_extension(tmp_path) -> None:
    # given a templates_exts entry and a template file on the DAG's search path
    (tmp_path / "query.sql").write_text("SELECT '{{ ds }}'")
    with DAG("d", start_date=START, template_searchpath=str(tmp_path)) as dag:
        PythonOperator(
            task_id="q",
            python_callable=lambda templates_dict: templates_dict["query"],
            templates_dict={"query": "query.sql"},
            templates_exts=[".sql"],
        )
    # when it runs / expect the file's rendered content
    assert run(dag, "q", InMemoryTaskClient()).return_value == "SELECT '2024-01-02'"


def test_return_value_hidden_from_logs_when_asked(caplog) -> None:
    with DAG("d", start_date=START) as dag:
        PythonOperator(
            task_id="quiet",
            python_callable=lambda: "s3cr3t-result",
            show_return_value_in_logs=False,
        )
        PythonOperator(task_id="loud", python_callable=lambda: "visible-result")
    with caplog.at_level(logging.INFO, logger="tradewind.task"):
        run(dag, "quiet", InMemoryTaskClient())
        run(dag, "loud", InMemoryTaskClient())
    assert "s3cr3t-result" not in caplog.text
    assert "visible-result" in caplog.text


def test_python_callable_must_be_callable() -> None:
    with DAG("d", start_date=START), pytest.raises(InvalidArgumentError) as info:
        PythonOperator(task_id="x", python_callable="not callable")
    assert "python_callable" in str(info.value)


# -- determine_kwargs -----------------------------------------------------------------------------


def test_determine_kwargs_gives_only_declared_names() -> None:
    def f(a, b=None, *, c=None):
        return None

    assert determine_kwargs(f, [], {"a": 1, "c": 3, "ds": "x"}) == {"a": 1, "c": 3}


def test_determine_kwargs_gives_everything_to_var_kwargs() -> None:
    def f(a, **kwargs):
        return None

    assert determine_kwargs(f, [1], {"x": 1, "y": 2}) == {"x": 1, "y": 2}


def test_determine_kwargs_rejects_positional_slot_named_like_an_offered_key() -> None:
    def f(ti, other):
        return None

    with pytest.raises(InvalidArgumentError) as info:
        determine_kwargs(f, ["value"], {"ti": object()})
    assert info.value.argument == "ti"


def test_determine_task_kwargs_fills_absent_context_names_with_none() -> None:
    def f(x, ti, logical_date=None, other=None):
        return None

    assert determine_task_kwargs(f, [1], {"ti": "TI"}) == {"ti": "TI", "logical_date": None}


def test_decorated_operator_is_the_python_task_operator() -> None:
    with DAG("d", start_date=START) as dag:

        @task
        def f() -> None:
            return None

        f()
    assert isinstance(dag.get_task("f"), DecoratedPythonOperator)


def test_templates_pull_xcom_through_ti_and_legacy_reference_strings() -> None:
    # given a downstream reading the upstream's value in templates, both the explicit way and
    # through the string an XComArg formats into (as older DAG files do)
    with DAG("d", start_date=START) as dag:
        up = PythonOperator(task_id="up", python_callable=lambda: "v1")
        down = PythonOperator(
            task_id="down",
            python_callable=lambda a, b: f"{a}/{b}",
            op_args=["{{ ti.xcom_pull(task_ids='up') }}", f"{up.output}"],
        )
        up >> down
    client = InMemoryTaskClient()
    run(dag, "up", client)
    # when the downstream runs / expect both templates to read the value
    assert run(dag, "down", client).return_value == "v1/v1"
