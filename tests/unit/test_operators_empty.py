"""EmptyOperator and the operators package's public surface."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import tradewind.operators
from tradewind.operators import EmptyOperator
from tradewind.runtime import InMemoryTaskClient, RunInfo, TaskInstanceInfo, run_task
from tradewind.sdk import DAG
from tradewind.sdk.decorators import TASK_DECORATORS, _operator_class
from tradewind.state import TaskState


def test_operators_exports_are_pinned_and_importable() -> None:
    assert tradewind.operators.__all__ == [
        "BaseBranchOperator",
        "BashOperator",
        "BranchPythonOperator",
        "EmptyOperator",
        "LatestOnlyOperator",
        "PythonOperator",
        "SQLExecuteQueryOperator",
        "ShortCircuitOperator",
    ]
    for name in tradewind.operators.__all__:
        assert isinstance(getattr(tradewind.operators, name), type)


def test_every_task_decorator_target_exists() -> None:
    # the SDK looks decorator operators up by name; each must resolve to a class
    for name in TASK_DECORATORS:
        assert isinstance(_operator_class(name), type), name


def test_importing_the_operators_package_loads_no_operator_module() -> None:
    code = (
        "import sys, tradewind.operators; "
        "print(sorted(m for m in sys.modules if m.startswith('tradewind.operators.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_empty_operator_succeeds_and_pushes_nothing() -> None:
    # given an empty task
    with DAG("d", start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:
        EmptyOperator(task_id="noop")
    client = InMemoryTaskClient()
    run = RunInfo(dag_id="d", run_id="r")
    # when it runs
    outcome = run_task(
        dag.get_task("noop"), dag=dag, run=run, ti=TaskInstanceInfo("d", "noop", "r"), client=client
    )
    # expect success and no XCom
    assert outcome.state is TaskState.SUCCESS
    assert client.xcom_keys() == []
    # and the marker the scheduler reads is there (also for subclasses)
    assert EmptyOperator.inherits_from_empty_operator is True
    assert type("Mine", (EmptyOperator,), {}).inherits_from_empty_operator is True
