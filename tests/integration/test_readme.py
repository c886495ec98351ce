"""The README stays true: its DAG example loads and runs, and CI runs its commands."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tradewind.dag_processing import load_dag_from_file
from tradewind.runtime.client import InMemoryTaskClient
from tradewind.runtime.task_runner import RunInfo, TaskInstanceInfo, run_task
from tradewind.state import TaskState

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_the_quick_start_has_exactly_two_commands_and_ci_runs_the_test_command() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick_start, flags=re.S)
    assert len(commands) == 2
    run_cmd, test_cmd = commands
    assert run_cmd.startswith("pip install") and "tradewind " in run_cmd
    assert test_cmd.startswith("pip install") and test_cmd.endswith("pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet -e '.[test]'" in ci
    assert "python -m pytest" in ci
    assert run_cmd.split("&& ", 1)[1] in ci  # CI starts it on a fresh home and stops it


def test_the_readme_dag_example_loads_and_runs(tmp_path: Path) -> None:
    # given the README's DAG file
    (source,) = [b for b in _code_blocks("python") if "with DAG(" in b]
    path = tmp_path / "daily_orders.py"
    path.write_text(source)
    dag = load_dag_from_file(path, "daily_orders")
    assert sorted(dag.task_ids) == ["extract", "report", "total"]
    # when its tasks run in order for one interval
    start = datetime(2024, 1, 1, tzinfo=UTC)
    run = RunInfo(
        dag_id="daily_orders",
        run_id="scheduled__2024-01-01",
        run_type="scheduled",
        logical_date=start,
        data_interval_start=start,
        data_interval_end=datetime(2024, 1, 2, tzinfo=UTC),
    )
    client = InMemoryTaskClient()
    outcomes = {}
    for task in dag.topological_sort():
        ti = TaskInstanceInfo(dag_id="daily_orders", task_id=task.task_id, run_id=run.run_id)
        outcomes[task.task_id] = run_task(task, dag=dag, run=run, ti=ti, client=client)
    # expect every task to succeed and the report to print the total for the date
    assert {k: o.state for k, o in outcomes.items()} == dict.fromkeys(outcomes, TaskState.SUCCESS)
    assert outcomes["report"].return_value == "total for 2024-01-01: 10"


def test_the_readme_config_example_is_a_valid_settings_file(tmp_path: Path) -> None:
    (toml,) = _code_blocks("toml")
    (tmp_path / "tradewind.toml").write_text(toml)
    code = "from tradewind.config import load_settings; s = load_settings(); print(s.core.load_examples)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"TRADEWIND_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert out.stdout.strip() == "False"
