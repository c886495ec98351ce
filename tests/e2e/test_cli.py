"""The ``tradewind`` CLI run as users run it: a real subprocess, a temporary home and DAGs folder.

Checks what scripts rely on: exit codes, ``--output json`` printing only JSON on stdout, error
messages on stderr, and ``--help`` staying light.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

DAG_FILE = """
from datetime import datetime
from tradewind import DAG, Label, TaskGroup, task
from tradewind.operators.empty import EmptyOperator

print("a DAG file printing to stdout")

with DAG("etl", schedule="@daily", start_date=datetime(2024, 1, 1), tags=["team", "daily"]):
    start = EmptyOperator(task_id="start")
    with TaskGroup("transform") as transform:
        clean = EmptyOperator(task_id="clean")
        join = EmptyOperator(task_id="join", trigger_rule="all_done")
        clean >> join

    @task
    def load(part):
        return part

    start >> Label("ready") >> transform >> load.expand(part=[1, 2])

with DAG("report"):
    EmptyOperator(task_id="only")
"""


class Cli:
    """Runs ``python -m tradewind.cli.main`` with a private home and DAGs folder."""

    def __init__(self, home: Path, dags: Path) -> None:
        self.home = home
        self.dags = dags
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("TRADEWIND")
        }
        self.env.update(
            {
                "TRADEWIND_HOME": str(home),
                "TRADEWIND__CORE__DAGS_FOLDER": str(dags),
                "TRADEWIND__CORE__LOAD_EXAMPLES": "false",
                "TRADEWIND__CORE__DAG_FILE_PROCESSOR_TIMEOUT": "20",
            }
        )

    def __call__(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tradewind.cli.main", *args],
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            timeout=120,
            check=False,
        )

    def json(self, *args: str, code: int = 0) -> object:
        proc = self(*args)
        assert proc.returncode == code, proc.stderr
        return json.loads(proc.stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home, dags = tmp_path / "home", tmp_path / "dags"
    home.mkdir()
    dags.mkdir()
    (dags / "etl.py").write_text(textwrap.dedent(DAG_FILE).lstrip())
    return Cli(home, dags)


def add_broken_file(cli: Cli) -> None:
    (cli.dags / "broken.py").write_text("from tradewind import DAG\n\nraise ValueError('nope')\n")


def test_help_lists_commands_without_importing_heavy_modules(cli: Cli) -> None:
    # given the help output and the modules loaded while producing it
    proc = cli("--help")
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom tradewind.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(sys.modules)), file=sys.stderr)",
        ],
        capture_output=True,
        text=True,
        env=cli.env,
        check=True,
    )
    loaded = set(probe.stderr.split())
    # expect
    assert proc.returncode == 0
    for command in ("config", "dags", "tasks", "version"):
        assert command in proc.stdout
    heavy = {
        "rich",
        "pydantic",
        "tradewind.sdk",
        "tradewind.serialization",
        "tradewind.dag_processing",
    }
    assert not heavy & loaded
    assert "tradewind.cli.dags" not in loaded


def test_version_plain_and_json(cli: Cli) -> None:
    from tradewind import __version__

    assert cli("version").stdout.strip() == __version__
    assert cli.json("version", "--output", "json")["version"] == __version__  # type: ignore[index]


def test_unknown_command_is_a_usage_error_with_a_suggestion(cli: Cli) -> None:
    proc = cli("dag", "list")
    assert proc.returncode == 2
    assert "dags" in proc.stderr


def test_config_show_json_reflects_environment_and_redacts_secrets(cli: Cli) -> None:
    key = "A" * 43 + "="  # 32 zero-ish bytes, url-safe base64
    proc = cli("config", "show", "--output", "json", env={"TRADEWIND__CORE__FERNET_KEY": key})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["core"]["dags_folder"] == str(cli.dags)
    assert data["core"]["fernet_key"] == "***"
    assert key not in proc.stdout
    toml = cli("config", "show").stdout
    assert "[core]" in toml and f'dags_folder = "{cli.dags}"' in toml


def test_bad_config_value_exits_2_naming_the_key(cli: Cli) -> None:
    env = {"TRADEWIND__SCHEDULER__PARSING_PROCESSES": "many"}
    for args in (("config", "show"), ("dags", "list", "--output", "json")):
        proc = cli(*args, env=env)
        assert proc.returncode == 2
        assert proc.stderr.startswith("error: ")
        assert "scheduler.parsing_processes" in proc.stderr and "'many'" in proc.stderr
        assert proc.stdout == ""


def test_dags_list_json_is_the_only_thing_on_stdout(cli: Cli) -> None:
    # given a DAG file that prints while it is imported
    proc = cli("dags", "list", "--output", "json")
    # expect stdout to be exactly one JSON document
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["dag_id"] for r in rows] == ["etl", "report"]
    etl = rows[0]
    assert etl["file"] == "etl.py"
    assert etl["schedule"] == "0 0 * * *"
    assert etl["tags"] == ["daily", "team"]
    assert etl["tasks"] == 4
    assert "a DAG file printing to stdout" in proc.stderr


def test_dags_list_table(cli: Cli) -> None:
    proc = cli("dags", "list")
    assert proc.returncode == 0
    header, _rule, *rows = proc.stdout.splitlines()
    assert header.split() == ["dag_id", "file", "schedule", "tags", "tasks"]
    assert rows[0].split()[:2] == ["etl", "etl.py"]


def test_dags_folder_option_and_subdir_override_the_setting(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "solo.py").write_text("from tradewind import DAG\nDAG('solo')\n")
    assert [
        r["dag_id"] for r in cli.json("--dags-folder", str(other), "dags", "list", "-o", "json")
    ] == ["solo"]  # type: ignore[union-attr]
    assert [
        r["dag_id"] for r in cli.json("dags", "list", "--subdir", str(other), "-o", "json")
    ] == ["solo"]  # type: ignore[union-attr]


def test_no_examples_overrides_load_examples(cli: Cli) -> None:
    env = {"TRADEWIND__CORE__LOAD_EXAMPLES": "true"}
    with_examples = json.loads(cli("dags", "list", "-o", "json", env=env).stdout)
    without = json.loads(cli("--no-examples", "dags", "list", "-o", "json", env=env).stdout)
    assert len(with_examples) > len(without)
    assert [r["dag_id"] for r in without] == ["etl", "report"]


def test_list_import_errors_exit_codes_and_json_tracebacks(cli: Cli) -> None:
    # given no broken file: empty list and success
    assert cli.json("dags", "list-import-errors", "--output", "json") == []
    # when a broken file is added
    add_broken_file(cli)
    errors = cli.json("dags", "list-import-errors", "--output", "json", code=1)
    # expect exit code 1 and the error with its line and traceback
    (error,) = errors  # type: ignore[misc]
    assert error["relative_path"] == "broken.py"
    assert error["line"] == 3
    assert error["message"] == "ValueError: nope"
    assert "raise ValueError('nope')" in error["traceback"]
    table = cli("dags", "list-import-errors")
    assert table.returncode == 1
    assert "broken.py" in table.stdout and "ValueError: nope" in table.stdout
    # and dags list still works, warning about the broken file on stderr
    listing = cli("dags", "list", "-o", "json")
    assert listing.returncode == 0
    assert "list-import-errors" in listing.stderr


def test_dags_show_tree(cli: Cli) -> None:
    proc = cli("dags", "show", "etl")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("etl (schedule: 0 0 * * *, 4 tasks")
    text = proc.stdout
    assert "├── start [EmptyOperator]" in text
    assert "transform/ (task group)" in text
    assert '│   ├── transform.clean [EmptyOperator]  <- start "ready"' in text
    assert "transform.join [EmptyOperator] {all_done}  <- transform.clean" in text
    assert "└── load [@task] (mapped)  <- transform.join" in text


def test_dags_show_dot(cli: Cli) -> None:
    proc = cli("dags", "show", "etl", "--format", "dot")
    assert proc.returncode == 0, proc.stderr
    dot = proc.stdout
    assert dot.startswith('digraph "etl" {') and dot.rstrip().endswith("}")
    assert 'subgraph "cluster_transform" {' in dot
    assert '"start" -> "transform.clean" [label="ready"];' in dot
    assert '"transform.join" -> "load";' in dot
    assert "peripheries=2" in dot  # the mapped task


def test_unknown_dag_exits_2_naming_it_and_close_matches(cli: Cli) -> None:
    for args in (("dags", "show", "etll"), ("tasks", "list", "etll")):
        proc = cli(*args)
        assert proc.returncode == 2
        assert "'etll'" in proc.stderr and "did you mean: etl" in proc.stderr
        assert proc.stdout == ""


def test_tasks_list_json_in_dependency_order(cli: Cli) -> None:
    tasks = cli.json("tasks", "list", "etl", "--output", "json")
    assert [t["task_id"] for t in tasks] == ["start", "transform.clean", "transform.join", "load"]  # type: ignore[union-attr]
    load = tasks[-1]  # type: ignore[index]
    assert load["is_mapped"] is True
    assert load["upstream_task_ids"] == ["transform.join"]
    clean = tasks[1]  # type: ignore[index]
    assert clean["upstream_edge_labels"] == {"start": "ready"}
    assert clean["task_group_id"] == "transform"


def test_tasks_list_table_and_tree(cli: Cli) -> None:
    table = cli("tasks", "list", "report")
    assert table.returncode == 0
    assert table.stdout.splitlines()[2].split()[:2] == ["only", "EmptyOperator"]
    tree = cli.json("tasks", "list", "etl", "--tree", "--output", "json")
    group = tree["children"][1]  # type: ignore[index]
    assert group["type"] == "group" and group["group_id"] == "transform"
    assert [c["task_id"] for c in group["children"]] == ["transform.clean", "transform.join"]
    assert "transform/ (task group)" in cli("tasks", "list", "etl", "--tree").stdout
