"""The engine commands run as users run them: real ``tradewind`` subprocesses (a scheduler and
a standalone stack in the background), a temporary ``$TRADEWIND_HOME``, and the SQLite file
read directly to check what they did.

Waiting is done by polling with generous limits; nothing here asserts how fast it happens
(speed lives in ``benchmarks/``).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import process_support
import pytest

DAGS = {
    "pipeline.py": """
        from datetime import datetime
        from tradewind import DAG, Param, task

        print("a DAG file printing to stdout at import")

        with DAG(
            "pipeline",
            schedule=None,
            start_date=datetime(2024, 1, 1),
            params={"rows": Param(3, type="integer", minimum=1)},
        ):

            @task
            def extract(params=None):
                print("extracting")
                return list(range(params["rows"]))

            @task
            def total(values):
                return sum(values)

            total(extract())
    """,
    "daily.py": """
        from datetime import datetime
        from tradewind import DAG, task

        with DAG("daily", schedule="@daily", start_date=datetime(2024, 1, 1)):

            @task
            def stamp(ds=None):
                return ds

            stamp()
    """,
    "slow.py": """
        import time
        from pathlib import Path
        from tradewind import DAG, task

        RELEASE = Path(__file__).resolve().parent.parent / "release"

        with DAG("slow", schedule=None):

            @task
            def wait_for_release(ti=None):
                # Runs until the test creates the release file (or is killed): a try that
                # were not stopped would outlast the test's patience.
                deadline = time.monotonic() + 300
                while not RELEASE.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                return ti.try_number

            wait_for_release()
    """,
    "failing.py": """
        from tradewind import DAG, task

        with DAG("failing", schedule=None):

            @task
            def boom():
                raise RuntimeError("this task always fails")

            @task
            def after(value):
                return value

            after(boom())
    """,
}

RESULT_KEYS = [
    "dag_id",
    "run_id",
    "state",
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "task_instances",
]
TI_KEYS = ["task_id", "map_index", "state", "try_number", "start_date", "end_date", "return_value"]
WAIT_SECONDS = 90.0


class Cli:
    """Runs ``python -m tradewind.cli.main`` with a private home and DAGs folder."""

    def __init__(self, home: Path, *, examples: bool = False) -> None:
        self.home = home
        self.dags = home / "dags"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND")}
        self.env.update(
            {
                "TRADEWIND_HOME": str(home),
                "TRADEWIND__CORE__LOAD_EXAMPLES": "true" if examples else "false",
                "TRADEWIND__CORE__PARALLELISM": "4",
                "TRADEWIND__CORE__DAG_FILE_PROCESSOR_TIMEOUT": "30",
            }
        )

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tradewind.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self(*args)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--output", "json").stdout)

    def background(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tradewind.cli.main", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.home / "tradewind.db") as conn:
            return conn.execute(sql, params).fetchall()


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_SECONDS) -> Any:
    return process_support.wait_for(what, check, timeout, interval=0.2)


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    """Stop a background command; returns its exit code and stderr."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    c = Cli(tmp_path / "home")
    c.dags.mkdir(parents=True)
    for name, source in DAGS.items():
        (c.dags / name).write_text(textwrap.dedent(source).lstrip())
    return c


@pytest.fixture
def synced(cli: Cli) -> Cli:
    """The CLI with its DAGs written to a migrated database."""
    cli.ok("db", "migrate")
    cli.ok("dags", "reserialize")
    return cli


@pytest.fixture
def scheduler(synced: Cli) -> Iterator[subprocess.Popen[str]]:
    proc = synced.background("scheduler")
    yield proc
    code, err = stop(proc)
    assert code == 0, err
    assert "Scheduler stopped." in err


def run_state(cli: Cli, dag_id: str, run_id: str) -> str:
    return cli.ok("dags", "state", dag_id, run_id).stdout.strip()


def wait_for_run(cli: Cli, dag_id: str, run_id: str) -> str:
    return wait_for(
        f"run {run_id} of {dag_id} to finish",
        lambda: (s := run_state(cli, dag_id, run_id)) in ("success", "failed") and s,
    )


# --- dags test ---------------------------------------------------------------------------------


def test_dags_test_json_holds_only_the_result_and_exit_code_0(cli: Cli) -> None:
    # when testing a DAG whose file prints at import and whose task prints
    proc = cli("dags", "test", "pipeline", "--conf", '{"rows": 4}', "--output", "json")
    # expect exit 0 and stdout holding only the JSON result, in the documented shape
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert list(data) == RESULT_KEYS
    assert data["dag_id"] == "pipeline" and data["state"] == "success"
    assert data["run_id"].startswith("manual__")
    assert [list(t) for t in data["task_instances"]] == [TI_KEYS, TI_KEYS]
    assert [(t["task_id"], t["return_value"]) for t in data["task_instances"]] == [
        ("extract", [0, 1, 2, 3]),
        ("total", 6),
    ]
    # and the prints, task logs and progress on stderr
    assert "a DAG file printing to stdout at import" in proc.stderr
    assert "extracting" in proc.stderr
    assert "success" in proc.stderr and "total" in proc.stderr
    # and nothing written to the real metadata database
    assert not (cli.home / "tradewind.db").exists()


def test_dags_test_exit_codes_for_failure_and_bad_input(cli: Cli) -> None:
    failed = cli("dags", "test", "failing", "--logical-date", "2024-02-01")
    assert failed.returncode == 1
    assert "this task always fails" in failed.stderr
    assert "failed" in failed.stdout and "upstream_failed" in failed.stdout

    unknown = cli("dags", "test", "pipelin")
    assert unknown.returncode == 2
    assert "'pipelin' not found" in unknown.stderr and "pipeline" in unknown.stderr

    bad_json = cli("dags", "test", "pipeline", "--conf", "{rows: 1}")
    assert bad_json.returncode == 2 and "--conf" in bad_json.stderr

    not_object = cli("dags", "test", "pipeline", "--conf", "[1, 2]")
    assert not_object.returncode == 2 and "JSON object" in not_object.stderr

    bad_param = cli("dags", "test", "pipeline", "--conf", '{"rows": 0}')
    assert bad_param.returncode == 2 and "'rows'" in bad_param.stderr

    bad_date = cli("dags", "test", "pipeline", "--logical-date", "yesterday")
    assert bad_date.returncode == 2 and "--logical-date" in bad_date.stderr


# --- pause, trigger, state, runs, clear, why -----------------------------------------------------


def test_pause_and_unpause_are_audited(synced: Cli) -> None:
    # given a DAG that starts paused, as new DAGs do
    assert synced.rows("SELECT is_paused FROM dag WHERE dag_id='pipeline'") == [(1,)]
    synced.ok("dags", "unpause", "pipeline")
    assert synced.rows("SELECT is_paused FROM dag WHERE dag_id='pipeline'") == [(0,)]
    again = synced.ok("dags", "unpause", "pipeline")
    assert "already unpaused" in again.stderr
    synced.ok("dags", "pause", "pipeline")
    assert synced.rows("SELECT is_paused FROM dag WHERE dag_id='pipeline'") == [(1,)]
    events = synced.rows("SELECT event, dag_id, actor FROM audit_log WHERE event LIKE 'cli.dags.%'")
    assert [(e, d) for e, d, _ in events if e != "cli.dags.reserialize"] == [
        ("cli.dags.unpause", "pipeline"),
        ("cli.dags.pause", "pipeline"),
    ]
    assert all(actor for _, _, actor in events)
    # an unknown DAG is a usage error with a suggestion
    unknown = synced("dags", "pause", "pipelin")
    assert unknown.returncode == 2 and "did you mean: pipeline" in unknown.stderr


def test_a_triggered_run_of_a_paused_dag_waits_and_tasks_why_says_so(synced: Cli) -> None:
    # given a paused DAG with a queued run
    trigger = synced.ok("dags", "trigger", "pipeline")
    run_id = trigger.stdout.strip()
    assert "paused" in trigger.stderr
    # when asking why its first task does not run
    why = synced.ok("tasks", "why", "pipeline", run_id, "extract")
    # expect the reasons: the run is only queued, and the DAG is paused
    assert "queued, not running" in why.stdout
    assert "the DAG is paused" in why.stdout
    data = synced.json("tasks", "why", "pipeline", run_id, "total")
    assert data["state"] == "created" and data["upstream"] == [
        {"task_id": "extract", "map_index": -1, "state": "created"}
    ]
    assert data["reasons"]


def test_bad_trigger_input_is_rejected(synced: Cli) -> None:
    bad_param = synced("dags", "trigger", "pipeline", "--conf", '{"rows": "many"}')
    assert bad_param.returncode == 2 and "'rows'" in bad_param.stderr
    unknown = synced("dags", "trigger", "nope")
    assert unknown.returncode == 2 and "not in the metadata database" in unknown.stderr
    assert synced.rows("SELECT count(*) FROM dag_run") == [(0,)]


def test_trigger_run_clear_and_run_again(synced: Cli, scheduler: subprocess.Popen[str]) -> None:
    # given an unpaused DAG and a running scheduler
    synced.ok("dags", "unpause", "pipeline")
    # when a run is triggered with conf
    run_id = synced.ok("dags", "trigger", "pipeline", "--conf", '{"rows": 5}').stdout.strip()
    # expect the scheduler to run it to success
    assert wait_for_run(synced, "pipeline", run_id) == "success"
    total = synced.json("tasks", "state", "pipeline", run_id, "total")
    assert (total["state"], total["try_number"]) == ("success", 1)
    assert synced.rows("SELECT value FROM xcom WHERE task_id='total'") == [("10",)]
    # and runs list shows it with its start and end times
    runs = synced.json("runs", "list", "--dag-id", "pipeline")
    assert [(r["run_id"], r["state"]) for r in runs] == [(run_id, "success")]
    assert runs[0]["start_date"] and runs[0]["end_date"] and runs[0]["duration"] is not None
    assert synced.json("runs", "list", "--state", "failed") == []
    # and tasks why explains that a finished task does not run again
    why = synced.ok("tasks", "why", "pipeline", run_id, "total")
    assert "already finished with state success" in why.stdout

    # when the last task is cleared
    cleared = synced.json(
        "tasks", "clear", "pipeline", "--run-id", run_id, "-t", "^total$", "--yes"
    )
    assert cleared == [{"run_id": run_id, "task_id": "total", "map_index": -1, "state": "success"}]
    # expect it to run again (a second try) and the run to succeed again
    wait_for(
        "the cleared task to run again",
        lambda: (
            synced.json("tasks", "state", "pipeline", run_id, "total")["try_number"] == 2
            and run_state(synced, "pipeline", run_id) == "success"
        ),
    )
    extract = synced.json("tasks", "state", "pipeline", run_id, "extract")
    assert extract["try_number"] == 1  # not cleared, not re-run
    events = [e for (e,) in synced.rows("SELECT event FROM audit_log ORDER BY id")]
    assert events[-2:] == ["cli.dags.trigger", "cli.tasks.clear"]


def test_mark_a_failed_task_success(synced: Cli, scheduler: subprocess.Popen[str]) -> None:
    synced.ok("dags", "unpause", "failing")
    run_id = synced.ok("dags", "trigger", "failing").stdout.strip()
    assert wait_for_run(synced, "failing", run_id) == "failed"
    assert synced.ok("tasks", "state", "failing", run_id, "after").stdout.strip() == (
        "upstream_failed"
    )
    synced.ok("tasks", "mark", "failing", run_id, "boom", "--state", "success")
    assert synced.ok("tasks", "state", "failing", run_id, "boom").stdout.strip() == "success"
    assert synced.rows(
        "SELECT event, task_id, extra FROM audit_log WHERE event='cli.tasks.mark'"
    ) == [
        ("cli.tasks.mark", "boom", '{"before": {"state": "failed"}, "after": {"state": "success"}}')
    ]
    # and clearing only the failed ones re-runs the upstream_failed downstream task
    synced.ok("tasks", "clear", "failing", "--only-failed", "--yes")
    wait_for(
        "the downstream task to run",
        lambda: synced.json("tasks", "state", "failing", run_id, "after")["state"] == "success",
    )
    assert wait_for_run(synced, "failing", run_id) == "success"


def test_a_task_cleared_while_running_is_stopped_and_run_again(
    synced: Cli, scheduler: subprocess.Popen[str]
) -> None:
    # given a run whose task is running
    synced.ok("dags", "unpause", "slow")
    run_id = synced.ok("dags", "trigger", "slow").stdout.strip()
    wait_for(
        "the task to run",
        lambda: (
            synced.json("tasks", "state", "slow", run_id, "wait_for_release")["state"] == "running"
        ),
    )
    # when it is cleared
    synced.ok("tasks", "clear", "slow", "--run-id", run_id, "--yes")
    # expect its try stopped and a second try started
    wait_for(
        "the second try",
        lambda: (
            (ti := synced.json("tasks", "state", "slow", run_id, "wait_for_release"))["try_number"]
            == 2
            and ti["state"] == "running"
        ),
    )
    (synced.home / "release").touch()
    assert wait_for_run(synced, "slow", run_id) == "success"
    assert synced.rows("SELECT value FROM xcom WHERE dag_id='slow'") == [("2",)]


def test_a_queued_run_of_a_paused_dag_starts_only_once_unpaused(
    synced: Cli, scheduler: subprocess.Popen[str]
) -> None:
    # given a run of a paused DAG, queued before a run of an unpaused one
    held = synced.ok("dags", "trigger", "pipeline").stdout.strip()
    synced.ok("dags", "unpause", "daily")
    other = synced.ok("dags", "trigger", "daily").stdout.strip()
    # when the scheduler has started and finished the other run
    assert wait_for_run(synced, "daily", other) == "success"
    # expect the paused DAG's run still queued
    assert run_state(synced, "pipeline", held) == "queued"
    # and it runs once the DAG is unpaused
    synced.ok("dags", "unpause", "pipeline")
    assert wait_for_run(synced, "pipeline", held) == "success"


def test_scheduler_and_dag_processor_refuse_a_database_that_is_not_migrated(cli: Cli) -> None:
    for command in ("scheduler", "dag-processor"):
        proc = cli(command)
        assert proc.returncode == 1, proc.stderr
        assert "has no Tradewind schema" in proc.stderr
        assert "tradewind db migrate" in proc.stderr


def test_dag_processor_once_writes_dags_and_import_errors(cli: Cli) -> None:
    cli.ok("db", "migrate")
    (cli.dags / "broken.py").write_text("from tradewind import DAG\nraise ValueError('nope')\n")
    proc = cli.ok("dag-processor", "--once")
    assert "import error" in proc.stderr
    assert sorted(r[0] for r in cli.rows("SELECT dag_id FROM dag WHERE is_active")) == [
        "daily",
        "failing",
        "pipeline",
        "slow",
    ]
    assert cli.rows("SELECT filename, message FROM import_error") == [
        (str(cli.dags / "broken.py"), "ValueError: nope")
    ]


# --- backfill -----------------------------------------------------------------------------------


def test_backfill_of_three_days_creates_three_runs_that_finish(
    synced: Cli, scheduler: subprocess.Popen[str]
) -> None:
    # when backfilling three days and waiting for them
    proc = synced("dags", "backfill", "daily", "-s", "2024-01-01", "-e", "2024-01-03", "--wait")
    # expect three backfill runs, all succeeded, with the interval start as each logical date
    assert proc.returncode == 0, proc.stderr
    assert "all 3 run(s) succeeded" in proc.stderr
    rows = synced.rows(
        "SELECT run_id, run_type, state, backfill_id FROM dag_run WHERE dag_id='daily' "
        "ORDER BY logical_date"
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (f"backfill__2024-01-0{d}T00:00:00+00:00", "backfill", "success") for d in (1, 2, 3)
    ]
    assert synced.rows("SELECT value FROM xcom WHERE dag_id='daily' ORDER BY run_id") == [
        ('"2024-01-01"',),
        ('"2024-01-02"',),
        ('"2024-01-03"',),
    ]
    (backfill_id,) = {r[3] for r in rows}
    completed = synced.rows("SELECT completed_at FROM backfill WHERE id=?", backfill_id)
    assert completed[0][0] is not None
    # and a second backfill over the same days skips them all
    again = synced.json("dags", "backfill", "daily", "-s", "2024-01-01", "-e", "2024-01-03",
                        "--no-wait")  # fmt: skip
    assert [p["action"] for p in again["plan"]] == ["skip", "skip", "skip"]


# --- standalone ---------------------------------------------------------------------------------


def test_standalone_loads_the_examples_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    # given a fresh home with examples on
    cli = Cli(tmp_path / "fresh", examples=True)
    proc = cli.background("standalone")
    try:
        # expect the database created and the example DAGs processed into it
        examples = wait_for(
            "the example DAGs in the database",
            lambda: (cli.home / "tradewind.db").exists() and _example_dags(cli),
        )
        assert len(examples) >= 5
        assert (cli.home / "fernet.key").exists()
        wait_for(
            "a running scheduler job",
            lambda: cli.rows("SELECT count(*) FROM job WHERE job_type='scheduler'") == [(1,)],
        )
    finally:
        # when Ctrl-C arrives
        code, err = stop(proc, signal.SIGINT)
    # expect a clean stop
    assert code == 0, err
    assert f"home:      {cli.home}" in err
    assert "stopped" in err
    states = cli.rows("SELECT job_type, state FROM job ORDER BY job_type")
    assert states == [("dag_processor", "success"), ("scheduler", "success")]


def _example_dags(cli: Cli) -> list[str]:
    try:
        rows = cli.rows("SELECT dag_id FROM dag WHERE dag_id LIKE 'example_%' AND is_active")
    except sqlite3.OperationalError:
        return []  # the schema is being created
    return [r[0] for r in rows]
