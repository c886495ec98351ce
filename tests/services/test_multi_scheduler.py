"""Several ``tradewind scheduler`` processes on one PostgreSQL database share the work.

Each running DAG run belongs to one scheduler (``dag_run.scheduler_job_id``); DAG rows are
locked while runs are created or started, and pool rows while tries are admitted, so two
schedulers never create the same run, never exceed ``max_active_runs`` together and never
start the same try. A scheduler that dies leaves its runs to the others, which recover its
tries as a restarted scheduler would.

Real processes, a real server: each test gets a database of its own on 127.0.0.1:5432.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import PostgresServer

# The helpers for real processes live with the end-to-end tests (tests/ is not a package).
_E2E = str(Path(__file__).resolve().parent.parent / "e2e")
if _E2E not in sys.path:
    sys.path.insert(0, _E2E)

import process_support  # noqa: E402
from process_support import kill_groups, run_cli, start_in_background, stop_gracefully  # noqa: E402

pytestmark = [pytest.mark.services, pytest.mark.timeout(240)]

WAIT = 90.0

DAG_FILE = """\
import os
import time
from datetime import datetime, timedelta
from pathlib import Path

from tradewind import DAG, task

OUT = Path(__file__).resolve().parent.parent / "out"


def note(line):
    fd = os.open(OUT / "journal", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\\n".encode())
    finally:
        os.close(fd)


def work(ti=None, run_id=None, dag_run=None):
    note(f"start {run_id} {ti.task_id} {ti.try_number} {os.getpid()}")
    time.sleep((dag_run.conf or {}).get("sleep", 0.4))
    note(f"end {run_id} {ti.task_id} {ti.try_number}")


with DAG("shared", schedule=None, start_date=datetime(2024, 1, 1), max_active_runs=2):
    heads = [task(work, task_id=f"a_{i}", retries=2, retry_delay=timedelta(0))() for i in range(3)]
    tail = task(work, task_id="b", retries=2, retry_delay=timedelta(0))()
    heads >> tail
"""


def _admin(server: PostgresServer) -> Any:
    import psycopg

    return psycopg.connect(
        host=server.host,
        port=server.port,
        dbname=server.dbname,
        user=server.user,
        autocommit=True,
        connect_timeout=5,
    )


class Cluster:
    """A home folder and a PostgreSQL database shared by several scheduler processes."""

    def __init__(self, root: Path, url: str, dsn: dict[str, Any]) -> None:
        self.root = root
        self.out = root / "out"
        (root / "dags").mkdir(parents=True)
        self.out.mkdir()
        (root / "dags" / "shared.py").write_text(textwrap.dedent(DAG_FILE))
        self.dsn = dsn
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND")}
        self.env.update(
            {
                "TRADEWIND_HOME": str(root),
                "TRADEWIND__DATABASE__URL": url,
                "TRADEWIND__CORE__LOAD_EXAMPLES": "false",
                "TRADEWIND__CORE__PARALLELISM": "4",
                "TRADEWIND__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
            }
        )
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def cli(self, *args: str) -> str:
        return run_cli(self.env, *args)

    def start_scheduler(self, name: str) -> subprocess.Popen[bytes]:
        proc = start_in_background(self.env, self.root / f"{name}.log", "scheduler")
        self.processes[name] = proc
        wait_for(f"scheduler {name} to start", lambda: "scheduler started" in self.log(name))
        return proc

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(**self.dsn, autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())

    def journal(self, kind: str) -> list[list[str]]:
        path = self.out / "journal"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line.split() for line in lines if line.startswith(kind + " ")]

    def job_id(self, name: str) -> int:
        pid = self.processes[name].pid
        (row,) = self.rows("SELECT id FROM job WHERE job_type='scheduler' AND pid=%s", pid)
        return int(row[0])

    def kill_all(self) -> None:
        kill_groups(self.processes.values())


@pytest.fixture
def cluster(tmp_path: Path, postgres_server: PostgresServer) -> Iterator[Cluster]:
    name = f"tradewind_multi_{uuid.uuid4().hex[:12]}"
    with _admin(postgres_server) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    server = postgres_server
    url = f"postgresql://{server.user}@{server.host}:{server.port}/{name}"
    dsn = {"host": server.host, "port": server.port, "dbname": name, "user": server.user}
    c = Cluster(tmp_path / "home", url, dsn)
    try:
        c.cli("db", "migrate")
        c.cli("dags", "reserialize")
        c.cli("dags", "unpause", "shared")
        yield c
    finally:
        c.kill_all()
        with _admin(postgres_server) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    return process_support.wait_for(what, check, timeout, interval=0.1)


def trigger(cluster: Cluster, day: int, sleep: float = 0.4) -> str:
    return cluster.cli(
        "dags", "trigger", "shared", "--logical-date", f"2024-01-{day:02d}",
        "--conf", f'{{"sleep": {sleep}}}',
    )  # fmt: skip


def assert_no_try_started_twice(cluster: Cluster) -> None:
    starts = Counter(tuple(fields[1:4]) for fields in cluster.journal("start"))
    twice = {key: n for key, n in starts.items() if n > 1}
    assert not twice, f"tries started more than once: {twice}"


def max_overlap(intervals: list[tuple[Any, Any]]) -> int:
    """The most intervals open at one moment."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = current = 0
    for _, step in points:
        current += step
        best = max(best, current)
    return best


def test_two_schedulers_share_runs_without_running_anything_twice(cluster: Cluster) -> None:
    # given two schedulers on one database
    first = cluster.start_scheduler("first")
    second = cluster.start_scheduler("second")
    # when six runs of a DAG limited to two active runs are triggered over a few seconds
    runs = []
    for day in range(1, 7):
        runs.append(trigger(cluster, day))
        time.sleep(0.4)
    # expect every run to succeed
    wait_for(
        "every run to succeed",
        lambda: cluster.rows("SELECT state FROM dag_run") == [("success",)] * len(runs),
    )
    # and every task to have run exactly once, on its first try
    assert_no_try_started_twice(cluster)
    ends = Counter((f[1], f[2]) for f in cluster.journal("end"))
    assert len(ends) == len(runs) * 4 and set(ends.values()) == {1}, ends
    assert {int(f[3]) for f in cluster.journal("start")} == {1}
    # and each run to belong to one of the two schedulers, never more than two running at once
    jobs = {cluster.job_id("first"), cluster.job_id("second")}
    owners = cluster.rows("SELECT scheduler_job_id, start_date, end_date FROM dag_run")
    assert {owner for owner, _, _ in owners} <= jobs, (owners, jobs)
    assert max_overlap([(start, end) for _, start, end in owners]) <= 2
    assert stop_gracefully(first) == 0, cluster.log("first")
    assert stop_gracefully(second) == 0, cluster.log("second")


def test_a_dead_schedulers_runs_are_taken_over_by_another(cluster: Cluster) -> None:
    # given one scheduler with tries running in two runs, and a second scheduler started after
    first = cluster.start_scheduler("first")
    runs = [trigger(cluster, day, sleep=4.0) for day in (1, 2)]
    wait_for(
        "both runs to be running and tries to be running",
        lambda: (
            len(cluster.rows("SELECT 1 FROM dag_run WHERE state='running'")) == 2
            and len(cluster.rows("SELECT 1 FROM task_instance WHERE state='running'")) >= 2
        ),
    )
    second = cluster.start_scheduler("second")
    first_job = cluster.job_id("first")
    time.sleep(1.5)  # a few polls: the second scheduler must leave a live scheduler's runs alone
    assert cluster.rows("SELECT DISTINCT scheduler_job_id FROM dag_run") == [(first_job,)]
    # when the first scheduler is killed with SIGKILL (its task processes die with it)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    # expect the second one to take its runs over and finish them
    wait_for(
        "every run to succeed",
        lambda: cluster.rows("SELECT state FROM dag_run") == [("success",)] * len(runs),
    )
    second_job = cluster.job_id("second")
    assert cluster.rows("SELECT DISTINCT scheduler_job_id FROM dag_run") == [(second_job,)]
    assert "taking over run" in cluster.log("second")
    # and the dead scheduler's job recorded as failed
    assert cluster.rows("SELECT state FROM job WHERE id=%s", first_job) == [("failed",)]
    # and no try to have started twice; interrupted tries were retried
    assert_no_try_started_twice(cluster)
    ends = Counter((f[1], f[2]) for f in cluster.journal("end"))
    assert len(ends) == len(runs) * 4 and set(ends.values()) == {1}, ends
    assert stop_gracefully(second) == 0, cluster.log("second")
