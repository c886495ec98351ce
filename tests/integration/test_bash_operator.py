"""BashOperator and @task.bash running real bash processes through the task runtime."""

from __future__ import annotations

import logging
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tradewind.errors import CommandFailed
from tradewind.operators import BashOperator
from tradewind.runtime import InMemoryTaskClient, RunInfo, TaskInstanceInfo, TaskOutcome, run_task
from tradewind.sdk import DAG, task
from tradewind.state import TaskState

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

START = datetime(2024, 1, 1, tzinfo=UTC)
RUN = RunInfo(
    dag_id="d",
    run_id="scheduled__2024-01-02",
    run_type="scheduled",
    logical_date=datetime(2024, 1, 2, tzinfo=UTC),
    data_interval_start=datetime(2024, 1, 2, tzinfo=UTC),
    data_interval_end=datetime(2024, 1, 3, tzinfo=UTC),
)


def run(dag: DAG, task_id: str = "t", client: InMemoryTaskClient | None = None) -> TaskOutcome:
    info = TaskInstanceInfo(dag_id=dag.dag_id, task_id=task_id, run_id=RUN.run_id)
    return run_task(
        dag.get_task(task_id), dag=dag, run=RUN, ti=info, client=client or InMemoryTaskClient()
    )


def bash_dag(command: str, **kwargs: Any) -> DAG:
    with DAG("d", start_date=START, **kwargs.pop("dag_kwargs", {})) as dag:
        BashOperator(task_id="t", bash_command=command, **kwargs)
    return dag


def test_last_output_line_is_the_return_value_and_pushed() -> None:
    client = InMemoryTaskClient()
    outcome = run(bash_dag("echo first; echo second"), client=client)
    assert (outcome.state, outcome.return_value) == (TaskState.SUCCESS, "second")
    assert client.get_xcom("d", RUN.run_id, "t", "return_value", -1) == "second"


def test_output_processor_transforms_the_last_line() -> None:
    outcome = run(bash_dag("echo 41", output_processor=lambda line: int(line) + 1))
    assert outcome.return_value == 42


def test_exit_99_skips_the_try() -> None:
    outcome = run(bash_dag("exit 99", retries=2))
    assert outcome.state is TaskState.SKIPPED
    assert "99" in (outcome.error or "")


def test_custom_skip_codes() -> None:
    assert run(bash_dag("exit 3", skip_on_exit_code=[3, 4])).state is TaskState.SKIPPED
    assert run(bash_dag("exit 99", skip_on_exit_code=None)).state is TaskState.FAILED


def test_non_zero_exit_fails_naming_the_exit_code() -> None:
    # given a command that fails, with a retry left
    outcome = run(bash_dag("echo oops; exit 1", retries=1))
    # expect a retryable failure that names the exit code
    assert outcome.state is TaskState.UP_FOR_RETRY
    assert CommandFailed.__name__ in (outcome.error or "")
    assert "exit code 1" in (outcome.error or "")


def test_env_replaces_the_environment_but_keeps_context_variables(monkeypatch) -> None:
    # given a worker variable and an explicit env
    monkeypatch.setenv("WORKER_ONLY", "from-worker")
    dag = bash_dag(
        'echo "${MINE}|${WORKER_ONLY:-unset}|${AIRFLOW_CTX_DAG_ID}|${TRADEWIND_CTX_TASK_ID}"',
        env={"MINE": "mine"},
    )
    # when it runs / expect only env plus the context variables
    assert run(dag).return_value == "mine|unset|d|t"


def test_append_env_adds_to_the_workers_environment(monkeypatch) -> None:
    monkeypatch.setenv("WORKER_ONLY", "from-worker")
    dag = bash_dag('echo "${MINE}|${WORKER_ONLY}"', env={"MINE": "mine"}, append_env=True)
    assert run(dag).return_value == "mine|from-worker"


def test_no_env_inherits_the_workers_environment(monkeypatch) -> None:
    monkeypatch.setenv("WORKER_ONLY", "from-worker")
    assert run(bash_dag('echo "$WORKER_ONLY"')).return_value == "from-worker"


def test_cwd_is_used_when_given(tmp_path: Path) -> None:
    assert run(bash_dag("pwd -P", cwd=str(tmp_path))).return_value == str(tmp_path.resolve())


def test_default_cwd_is_a_temporary_directory_removed_afterwards() -> None:
    outcome = run(bash_dag("pwd -P"))
    assert "tradewind-bash-" in outcome.return_value
    assert not os.path.exists(outcome.return_value)


def test_missing_cwd_fails() -> None:
    outcome = run(bash_dag("true", cwd="/no/such/dir"))
    assert outcome.state is TaskState.FAILED
    assert "/no/such/dir" in (outcome.error or "")


def test_command_is_rendered_with_the_context() -> None:
    dag = bash_dag("echo {{ ds }} {{ params.who }}", params={"who": "me"})
    assert run(dag).return_value == "2024-01-02 me"


def test_sh_file_is_a_template(tmp_path: Path) -> None:
    # given a script template on the DAG's template search path
    (tmp_path / "report.sh").write_text("echo report for {{ ds_nodash }}\n")
    dag = bash_dag("report.sh", dag_kwargs={"template_searchpath": str(tmp_path)})
    # when it runs / expect the file's rendered content executed
    assert run(dag).return_value == "report for 20240102"


def test_output_and_stderr_are_streamed_to_the_task_log(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="tradewind.task"):
        run(bash_dag("echo to-stdout; echo to-stderr >&2; echo last"))
    lines = [r.getMessage() for r in caplog.records if r.name == "tradewind.task"]
    assert lines.index("to-stdout") < lines.index("to-stderr") < lines.index("last")


def test_timeout_kills_the_command() -> None:
    # given a long command with a short execution_timeout
    dag = bash_dag("sleep 30; echo never", execution_timeout=timedelta(milliseconds=300))
    # when it runs / expect a timeout failure rather than a 30 s wait for the result
    outcome = run(dag)
    assert outcome.state is TaskState.FAILED
    assert "TaskTimeout" in (outcome.error or "")


# -- @task.bash -----------------------------------------------------------------------------------


def test_task_bash_runs_the_rendered_command_the_function_returns() -> None:
    # given a @task.bash whose command uses an argument, a context value and Jinja
    with DAG("d", start_date=START) as dag:

        @task.bash(env={"GREETING": "hello"})
        def greet(name: str, ti=None) -> str:
            return f'echo "$GREETING {name} from {ti.task_id} on {{{{ ds }}}}"'

        greet("world")
    # when it runs / expect the rendered command's output
    outcome = run(dag, "greet")
    assert outcome.state is TaskState.SUCCESS, outcome.error
    assert outcome.return_value == "hello world from greet on 2024-01-02"


def test_task_bash_reads_upstream_values() -> None:
    with DAG("d", start_date=START) as dag:

        @task
        def count() -> int:
            return 3

        @task.bash
        def show(n: int) -> str:
            return f"echo {n}"

        show(count())
    client = InMemoryTaskClient()
    run(dag, "count", client)
    assert run(dag, "show", client).return_value == "3"


@pytest.mark.parametrize("returned", ["", "   ", None, 5])
def test_task_bash_must_return_a_non_empty_string(returned: Any) -> None:
    with DAG("d", start_date=START) as dag:

        @task.bash
        def nothing() -> Any:
            return returned

        nothing()
    outcome = run(dag, "nothing")
    assert outcome.state is TaskState.FAILED
    assert "non-empty string" in (outcome.error or "")
