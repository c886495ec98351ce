"""The local executor with real processes: DAG files on disk, warm workers, a task process per
try, and an in-memory TaskDataService standing in for the database."""

from __future__ import annotations

import os
import re
import signal
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tradewind.errors import ConnectionNotFound, VariableNotFound
from tradewind.executors import (
    EventKind,
    ExecuteTask,
    ExecutorEvent,
    LocalExecutor,
    RunSpec,
    TaskInstanceKey,
)
from tradewind.sdk.connection import Connection
from tradewind.serialization import xcom as codec
from tradewind.state import TaskState

pytestmark = pytest.mark.timeout(120)


# --- a TaskDataService over dictionaries -----------------------------------------------------------


class FakeData:
    """The TaskDataService protocol over dicts.

    ``start_task`` says yes once per try (and no for keys listed in ``refuse``). XCom values
    are kept as the codec's text, as a database would.
    """

    def __init__(
        self,
        *,
        variables: dict[str, str] | None = None,
        connections: dict[str, Connection] | None = None,
    ) -> None:
        self.variables = dict(variables or {})
        self.connections = dict(connections or {})
        self.started: dict[TaskInstanceKey, dict[str, Any]] = {}
        self.refuse: set[TaskInstanceKey] = set()
        self.xcoms: dict[tuple[str, str, str, str, int], str] = {}

    def start_task(
        self, ti_id: str, key: TaskInstanceKey, *, pid: int, hostname: str, now: datetime
    ) -> bool:
        if key in self.refuse or key in self.started:
            return False
        self.started[key] = {"ti_id": ti_id, "pid": pid, "hostname": hostname, "now": now}
        return True

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> Any:
        return codec.decode(self.xcoms[(dag_id, run_id, task_id, key, map_index)])

    def get_xcom_map_indexes(self, dag_id: str, run_id: str, task_id: str, key: str) -> list[int]:
        return sorted(k[4] for k in self.xcoms if k[:4] == (dag_id, run_id, task_id, key))

    def set_xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int, value: Any
    ) -> None:
        self.xcoms[(dag_id, run_id, task_id, key, map_index)] = codec.encode(value)

    def get_variable(self, key: str) -> str:
        if key not in self.variables:
            raise VariableNotFound(key)
        return self.variables[key]

    def get_connection(self, conn_id: str) -> Connection:
        if conn_id not in self.connections:
            raise ConnectionNotFound(conn_id)
        return self.connections[conn_id]

    def value(self, dag_id: str, task_id: str, run_id: str = "r1", map_index: int = -1) -> Any:
        return self.get_xcom(dag_id, run_id, task_id, "return_value", map_index)


# --- helpers ------------------------------------------------------------------------------------------


def write_dag(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    header = "from datetime import datetime, timedelta\nfrom tradewind import DAG, task\n"
    path.write_text(header + textwrap.dedent(body).lstrip("\n"))
    return path


def write_sleepy_dag(folder: Path) -> Path:
    """DAG "sleepy": one task "forever" that sleeps until it is killed."""
    return write_dag(
        folder,
        "sleepy.py",
        """
        import time
        with DAG("sleepy", schedule=None, start_date=datetime(2024, 1, 1)):
            @task
            def forever():
                time.sleep(600)
            forever()
        """,
    )


def workload(
    fileloc: Path,
    dag_id: str,
    task_id: str,
    *,
    run_id: str = "r1",
    try_number: int = 1,
    map_index: int = -1,
    max_tries: int = 0,
    version: int = 1,
    execution_timeout: float | None = None,
) -> ExecuteTask:
    return ExecuteTask(
        key=TaskInstanceKey(dag_id, run_id, task_id, map_index, try_number),
        ti_id=uuid.uuid4().hex,
        dag_version_id=version,
        fileloc=str(fileloc),
        run=RunSpec(run_type="manual"),
        max_tries=max_tries,
        execution_timeout=execution_timeout,
    )


def wait_for(
    executor: LocalExecutor,
    done: Callable[[list[ExecutorEvent]], bool],
    *,
    within: float = 60.0,
) -> list[ExecutorEvent]:
    """Drive process_io until ``done(all events so far)``; fail after ``within`` seconds."""
    events: list[ExecutorEvent] = []
    deadline = time.monotonic() + within
    while not done(events):
        assert time.monotonic() < deadline, f"gave up waiting; events so far: {events}"
        events.extend(executor.process_io(0.2))
    return events


def final_events(events: list[ExecutorEvent]) -> dict[TaskInstanceKey, ExecutorEvent]:
    return {e.key: e for e in events if e.kind is not EventKind.STARTED}


def run_to_end(
    executor: LocalExecutor, items: list[ExecuteTask]
) -> dict[TaskInstanceKey, ExecutorEvent]:
    executor.submit(items)
    keys = {w.key for w in items}
    events = wait_for(executor, lambda ev: keys <= set(final_events(ev)))
    return final_events(events)


def wait_for_file(path: Path, *, within: float = 60.0) -> str:
    deadline = time.monotonic() + within
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return path.read_text()


def pid_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent from /proc, or a zombie not ours to reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_gone(pids: list[int], *, within: float = 20.0) -> list[int]:
    deadline = time.monotonic() + within
    alive = [p for p in pids if not pid_gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if not pid_gone(p)]
    return alive


def our_children() -> list[tuple[int, str]]:
    """(pid, state) of every process whose parent is this test process."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == me:
            found.append((int(entry.name), fields[0]))
    return found


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


linux_only = pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs Linux /proc")


@pytest.fixture
def data() -> FakeData:
    return FakeData()


@pytest.fixture
def make_executor(data: FakeData, tmp_path: Path) -> Iterator[Callable[..., LocalExecutor]]:
    made: list[LocalExecutor] = []

    def make(**options: Any) -> LocalExecutor:
        options.setdefault("parallelism", 2)
        options.setdefault("kill_grace", 2.0)
        executor = LocalExecutor(
            data=options.pop("data", data), log_folder=tmp_path / "logs", **options
        )
        executor.start()
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.end(timeout=10, grace=0)


CHAIN = """
with DAG("chain", schedule=None, start_date=datetime(2024, 1, 1)):
    @task
    def extract():
        return {"rows": [1, 2, 3]}

    @task
    def transform(data):
        return sum(data["rows"])

    @task
    def load(total):
        print(f"loaded {total}")
        return total * 10

    load(transform(extract()))
"""


# --- scenarios --------------------------------------------------------------------------------------


@pytest.mark.parametrize("start_method", ["forkserver", "fork"])
def test_chain_reads_upstream_xcoms(
    tmp_path: Path, data: FakeData, make_executor: Callable[..., LocalExecutor], start_method: str
) -> None:
    # given a 3-task chain in a DAG file
    dag_file = write_dag(tmp_path, "chain.py", CHAIN)
    executor = make_executor(start_method=start_method)

    # when each task is submitted after its upstream finished
    outcomes = {}
    for task_id in ("extract", "transform", "load"):
        outcomes.update(run_to_end(executor, [workload(dag_file, "chain", task_id)]))

    # expect every try to succeed, each reading its upstream's value
    assert {k.task_id: e.state for k, e in outcomes.items()} == {
        "extract": TaskState.SUCCESS,
        "transform": TaskState.SUCCESS,
        "load": TaskState.SUCCESS,
    }
    assert data.value("chain", "transform") == 6
    assert data.value("chain", "load") == 60
    finished = outcomes[TaskInstanceKey("chain", "r1", "load")]
    assert finished.pid is not None and finished.pid != os.getpid()
    assert finished.start_date is not None and finished.end_date is not None
    # and every try went through the start handshake exactly once, from its own process
    assert len({info["pid"] for info in data.started.values()}) == 3


def test_started_event_precedes_finished_and_names_the_process(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a DAG file
    dag_file = write_dag(tmp_path, "chain.py", CHAIN)
    executor = make_executor()
    item = workload(dag_file, "chain", "extract")

    # when the try runs
    executor.submit([item])
    events = wait_for(executor, lambda ev: item.key in final_events(ev))

    # expect STARTED then FINISHED, both naming the task process
    kinds = [e.kind for e in events if e.key == item.key]
    assert kinds == [EventKind.STARTED, EventKind.FINISHED]
    started, finished = (e for e in events if e.key == item.key)
    assert started.pid == finished.pid
    assert started.hostname


def test_parallel_tries_run_at_most_parallelism_at_once(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given tasks that each record when they run, and two workers
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    dag_file = write_dag(
        tmp_path,
        "slow.py",
        f"""
        import os, time
        with DAG("slow", schedule=None, start_date=datetime(2024, 1, 1)):
            @task
            def nap(n):
                start = time.time()
                time.sleep(0.4)
                with open(os.path.join({str(stamps)!r}, str(n)), "w") as f:
                    f.write(f"{{start}} {{time.time()}}")
                return n
            nap.expand(n=[0, 1, 2, 3, 4])
        """,
    )
    executor = make_executor(parallelism=2)

    # when five tries are submitted at once
    items = [workload(dag_file, "slow", "nap", map_index=i) for i in range(5)]
    executor.submit(items)

    # expect no free slot while they wait, and all five to succeed
    assert executor.slots_available() == 0
    outcomes = final_events(wait_for(executor, lambda ev: len(final_events(ev)) == 5))
    assert {e.state for e in outcomes.values()} == {TaskState.SUCCESS}
    # and never more than two running at the same time, but two at a time indeed
    intervals = [tuple(map(float, p.read_text().split())) for p in stamps.iterdir()]
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak == 2
    assert executor.slots_available() == 2


def test_a_task_process_killed_with_sigkill_is_lost_naming_the_signal(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a try that runs until killed
    dag_file = write_sleepy_dag(tmp_path)
    executor = make_executor()
    item = workload(dag_file, "sleepy", "forever")
    executor.submit([item])
    events = wait_for(executor, lambda ev: any(e.kind is EventKind.STARTED for e in ev))
    pid = events[0].pid
    assert pid is not None

    # when its process is killed with SIGKILL
    os.kill(pid, signal.SIGKILL)

    # expect a LOST event that names the signal
    lost = final_events(wait_for(executor, lambda ev: item.key in final_events(ev)))[item.key]
    assert lost.kind is EventKind.LOST
    assert lost.state is None
    assert "task process exited with signal 9 (SIGKILL)" in (lost.error or "")
    # and the worker is free again for the next try
    ok = run_to_end(
        executor, [workload(write_dag(tmp_path, "chain.py", CHAIN), "chain", "extract")]
    )
    assert next(iter(ok.values())).state is TaskState.SUCCESS


@linux_only
@pytest.mark.parametrize("start_method", ["forkserver", "fork"])
def test_a_dead_worker_is_replaced_and_its_try_lost(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor], start_method: str
) -> None:
    # given a try running in a worker
    dag_file = write_sleepy_dag(tmp_path)
    executor = make_executor(parallelism=1, start_method=start_method)
    item = workload(dag_file, "sleepy", "forever")
    executor.submit([item])
    started = wait_for(executor, lambda ev: any(e.kind is EventKind.STARTED for e in ev))
    task_pid = started[0].pid
    assert task_pid is not None
    worker_pid = parent_of(task_pid)
    assert worker_pid in executor.worker_pids()

    # when the worker process is killed
    os.kill(worker_pid, signal.SIGKILL)

    # expect the try to be LOST, and its task process to die with the worker
    lost = final_events(wait_for(executor, lambda ev: item.key in final_events(ev)))[item.key]
    assert lost.kind is EventKind.LOST
    assert f"worker process {worker_pid}" in (lost.error or "")
    if start_method == "fork":  # the worker is this process's child: its status is known
        assert "signal 9 (SIGKILL)" in (lost.error or "")
    assert wait_gone([task_pid]) == []
    # and a new worker to take its place and run the next try
    assert executor.stats.respawned == 1
    chain = write_dag(tmp_path, "chain.py", CHAIN)
    ok = run_to_end(executor, [workload(chain, "chain", "extract")])
    assert next(iter(ok.values())).state is TaskState.SUCCESS
    assert worker_pid not in executor.worker_pids()


def test_a_refused_start_never_runs_the_task_body(
    tmp_path: Path, data: FakeData, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a task whose body leaves a file behind, and a data service refusing its start
    marker = tmp_path / "ran.txt"
    dag_file = write_dag(
        tmp_path,
        "marker.py",
        f"""
        with DAG("marker", schedule=None, start_date=datetime(2024, 1, 1)):
            @task
            def touch():
                open({str(marker)!r}, "w").write("ran")
            touch()
        """,
    )
    executor = make_executor(parallelism=1)
    item = workload(dag_file, "marker", "touch")
    data.refuse.add(item.key)

    # when the try is submitted and its slot comes back
    executor.submit([item])
    events = wait_for(executor, lambda ev: executor.slots_available() == 1 and not executor._tries)

    # expect no event for it, no side effect and no log file
    assert [e for e in events if e.key == item.key] == []
    assert not marker.exists()
    assert not (tmp_path / "logs" / "dag_id=marker").exists()
    # while the same try, once allowed, does run
    data.refuse.clear()
    done = run_to_end(executor, [item])
    assert done[item.key].state is TaskState.SUCCESS
    assert marker.read_text() == "ran"


class BatchingData(FakeData):
    """FakeData that answers start handshakes in batches, recording their sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.alone = 0

    def start_task(
        self, ti_id: str, key: TaskInstanceKey, *, pid: int, hostname: str, now: datetime
    ) -> bool:
        self.alone += 1
        return super().start_task(ti_id, key, pid=pid, hostname=hostname, now=now)

    def start_tasks(self, requests: list[Any], *, now: datetime) -> list[bool]:
        self.batches.append(len(requests))
        return [
            super(BatchingData, self).start_task(ti_id, key, pid=pid, hostname=host, now=now)
            for ti_id, key, pid, host in requests
        ]


def test_start_handshakes_arriving_together_are_answered_in_one_batch(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a data service that can start several tries at once, one try it refuses, and
    # eight quick tries submitted together to four workers
    data = BatchingData()
    marker = tmp_path / "refused_ran.txt"
    dag_file = write_dag(
        tmp_path,
        "many.py",
        f"""
        with DAG("many", schedule=None, start_date=datetime(2024, 1, 1)):
            @task
            def quick(ti=None):
                if ti.run_id == "r_refused":
                    open({str(marker)!r}, "w").write("ran")
                return ti.run_id
            quick()
        """,
    )
    executor = make_executor(parallelism=4, data=data, spare_processes=0)
    items = [workload(dag_file, "many", "quick", run_id=f"r{i}") for i in range(7)]
    refused = workload(dag_file, "many", "quick", run_id="r_refused")
    data.refuse.add(refused.key)
    # when they run
    done = run_to_end(executor, items)
    executor.submit([refused])
    wait_for(executor, lambda ev: executor.slots_available() == 4 and not executor._tries)
    # expect every allowed try to succeed, the refused one never to run, and each of the
    # eight handshakes answered exactly once (alone, or in a batch of those that came together)
    assert {e.state for e in done.values()} == {TaskState.SUCCESS}
    assert not marker.exists()
    assert sum(data.batches) + data.alone == 8
    assert all(size >= 2 for size in data.batches)
    assert len(data.started) == 7


def test_each_try_writes_its_own_log_with_secrets_masked(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a task that prints and logs a connection password and a secret variable
    secrets = FakeData(
        variables={"api_token": "tok-9f8e7d6c5b", "region": "eu-west-1"},
        connections={
            "warehouse": Connection(conn_id="warehouse", conn_type="postgres", host="db",
                                    login="etl", password="hunter2-swordfish"),
        },
    )  # fmt: skip
    dag_file = write_dag(
        tmp_path,
        "secretive.py",
        """
        import logging, sys
        from tradewind.sdk.connection import Connection
        with DAG("secretive", schedule=None, start_date=datetime(2024, 1, 1)):
            @task(retries=1)
            def leak(ti=None, conn=None, var=None):
                password = conn.warehouse.password
                token = var.value.api_token
                print(f"connecting with {password}")
                print(f"token is {token}", file=sys.stderr)
                logging.getLogger("user.code").warning("region %s pw %s", var.value.region, password)
                if ti.try_number == 1:
                    raise RuntimeError(f"failed with {password}")
                return "done"
            leak()
        """,
    )
    executor = make_executor(data=secrets)

    # when the task fails once and succeeds on its second try
    first = run_to_end(executor, [workload(dag_file, "secretive", "leak", max_tries=1)])
    second = run_to_end(
        executor, [workload(dag_file, "secretive", "leak", try_number=2, max_tries=1)]
    )

    # expect the outcomes, with the secret masked in the error too
    [failed] = first.values()
    assert failed.state is TaskState.UP_FOR_RETRY
    assert "hunter2-swordfish" not in (failed.error or "") + (failed.traceback or "")
    assert "***" in (failed.error or "")
    assert next(iter(second.values())).state is TaskState.SUCCESS
    # and one log file per try, in the documented layout and line format
    folder = tmp_path / "logs" / "dag_id=secretive" / "run_id=r1" / "task_id=leak"
    assert sorted(p.name for p in folder.iterdir()) == ["attempt=1.log", "attempt=2.log"]
    text = (folder / "attempt=2.log").read_text()
    line = re.compile(r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00\] [A-Z]+ [\w.]+ - ")
    assert all(line.match(row) for row in text.splitlines()), text
    assert "INFO tradewind.task.stdout - connecting with ***" in text
    assert "WARNING tradewind.task.stderr - token is ***" in text
    assert "WARNING user.code - region eu-west-1 pw ***" in text
    assert "Try finished: success" in text
    first_log = (folder / "attempt=1.log").read_text()
    assert "RuntimeError: failed with ***" in first_log
    for log_text in (text, first_log):
        assert "hunter2-swordfish" not in log_text
        assert "tok-9f8e7d6c5b" not in log_text


def test_variables_and_connections_that_do_not_exist_raise_in_the_task(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a task looking up things that exist and things that do not
    service = FakeData(variables={"bucket": "s3://data"})
    dag_file = write_dag(
        tmp_path,
        "lookups.py",
        """
        from tradewind.errors import ConnectionNotFound, VariableNotFound
        from tradewind.sdk.variable import Variable
        with DAG("lookups", schedule=None, start_date=datetime(2024, 1, 1)):
            @task
            def look(ti=None):
                found = Variable.get("bucket")
                try:
                    Variable.get("nope")
                    var_missing = "no error"
                except VariableNotFound as exc:
                    var_missing = type(exc).__name__
                from tradewind.sdk import secrets
                try:
                    secrets.get_connection("nope")
                    conn_missing = "no error"
                except ConnectionNotFound as exc:
                    conn_missing = type(exc).__name__
                return [found, var_missing, conn_missing, ti.xcom_pull(task_ids="ghost")]
            look()
        """,
    )
    executor = make_executor(data=service)

    # when it runs
    done = run_to_end(executor, [workload(dag_file, "lookups", "look")])

    # expect the values, and the right exception types for missing ones
    assert next(iter(done.values())).state is TaskState.SUCCESS
    assert service.value("lookups", "look") == [
        "s3://data",
        "VariableNotFound",
        "ConnectionNotFound",
        None,
    ]


def test_the_runtime_execution_timeout_fails_the_try(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a task longer than its execution_timeout
    dag_file = write_dag(
        tmp_path,
        "slowpoke.py",
        """
        import time
        with DAG("slowpoke", schedule=None, start_date=datetime(2024, 1, 1)):
            @task(execution_timeout=timedelta(seconds=0.5))
            def crawl():
                time.sleep(60)
            crawl()
        """,
    )
    executor = make_executor()

    # when it runs
    done = run_to_end(executor, [workload(dag_file, "slowpoke", "crawl", execution_timeout=0.5)])

    # expect the runtime to end it as a failed try naming the timeout
    [event] = done.values()
    assert event.kind is EventKind.FINISHED
    assert event.state is TaskState.FAILED
    assert "TaskTimeout" in (event.error or "")


def test_the_hard_timeout_kills_a_try_that_ignores_its_execution_timeout(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a task that swallows the runtime's timeout and keeps going
    dag_file = write_dag(
        tmp_path,
        "stubborn.py",
        """
        import time
        with DAG("stubborn", schedule=None, start_date=datetime(2024, 1, 1)):
            @task(execution_timeout=timedelta(seconds=0.3))
            def cling():
                while True:
                    try:
                        time.sleep(60)
                    except BaseException:
                        pass
            cling()
        """,
    )
    executor = make_executor(hard_timeout_margin=0.5)

    # when it runs past execution_timeout plus the margin
    item = workload(dag_file, "stubborn", "cling", execution_timeout=0.3)
    done = run_to_end(executor, [item])

    # expect the worker to kill it, and a LOST event saying why
    event = done[item.key]
    assert event.kind is EventKind.LOST
    assert "execution_timeout" in (event.error or "")
    assert "signal 9 (SIGKILL)" in (event.error or "")


def test_kill_stops_a_running_try_and_runs_on_kill(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given an operator whose on_kill leaves a file behind, running
    marker = tmp_path / "on_kill.txt"
    running = tmp_path / "running.txt"
    dag_file = write_dag(
        tmp_path,
        "killable.py",
        f"""
        import time
        from tradewind.sdk.baseoperator import BaseOperator

        class Waiter(BaseOperator):
            def execute(self, context):
                open({str(running)!r}, "w").write("yes")
                time.sleep(600)

            def on_kill(self):
                open({str(marker)!r}, "w").write("cleaned up")

        with DAG("killable", schedule=None, start_date=datetime(2024, 1, 1)):
            Waiter(task_id="wait")
        """,
    )
    executor = make_executor()
    item = workload(dag_file, "killable", "wait")
    executor.submit([item])
    wait_for(executor, lambda ev: any(e.kind is EventKind.STARTED for e in ev))
    wait_for_file(running)

    # when the scheduler kills the try
    executor.kill(item.key)

    # expect a LOST event naming the request and SIGTERM, after on_kill ran
    lost = final_events(wait_for(executor, lambda ev: item.key in final_events(ev)))[item.key]
    assert lost.kind is EventKind.LOST
    assert "killed on request" in (lost.error or "")
    assert "SIGTERM" in (lost.error or "")
    assert marker.read_text() == "cleaned up"


def test_kill_of_a_queued_try_loses_it_without_running_it(
    tmp_path: Path, data: FakeData, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given one worker busy and a second try waiting for it
    dag_file = write_sleepy_dag(tmp_path)
    executor = make_executor(parallelism=1)
    running = workload(dag_file, "sleepy", "forever", run_id="a")
    queued = workload(dag_file, "sleepy", "forever", run_id="b")
    executor.submit([running, queued])
    wait_for(executor, lambda ev: any(e.kind is EventKind.STARTED for e in ev))

    # when the queued one is killed
    executor.kill(queued.key)

    # expect it LOST at once, never started
    events = wait_for(executor, lambda ev: queued.key in final_events(ev))
    assert final_events(events)[queued.key].error == "killed before it started"
    assert queued.key not in data.started


def test_a_changed_dag_file_is_imported_again(
    tmp_path: Path, data: FakeData, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a DAG file a worker has already imported
    body = """
    with DAG("versioned", schedule=None, start_date=datetime(2024, 1, 1)):
        @task
        def answer():
            return {value}
        answer()
    """
    dag_file = write_dag(tmp_path, "versioned.py", body.format(value=1))
    executor = make_executor(parallelism=1)
    run_to_end(executor, [workload(dag_file, "versioned", "answer", run_id="r1")])

    # when the file changes (a new DAG version) and the task runs again
    write_dag(tmp_path, "versioned.py", body.format(value=2))
    stamp = dag_file.stat().st_mtime + 5
    os.utime(dag_file, (stamp, stamp))
    run_to_end(executor, [workload(dag_file, "versioned", "answer", run_id="r2", version=2)])

    # expect the new code to run
    assert data.value("versioned", "answer", run_id="r1") == 1
    assert data.value("versioned", "answer", run_id="r2") == 2


def test_a_dag_file_that_fails_to_import_fails_the_try(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a DAG file that raises when imported
    dag_file = write_dag(tmp_path, "broken.py", "raise ValueError('bad file')\n")
    executor = make_executor()

    # when a try of it runs, with one retry left
    done = run_to_end(executor, [workload(dag_file, "broken", "t", max_tries=1)])

    # expect an up_for_retry outcome naming the problem
    [event] = done.values()
    assert event.state is TaskState.UP_FOR_RETRY
    assert "bad file" in (event.error or "")


@linux_only
@pytest.mark.parametrize("start_method", ["forkserver", "fork"])
def test_end_stops_running_tries_and_leaves_no_process_behind(
    tmp_path: Path, data: FakeData, start_method: Any
) -> None:
    # given an executor running a long try
    dag_file = write_sleepy_dag(tmp_path)
    executor = LocalExecutor(
        parallelism=2,
        data=data,
        log_folder=tmp_path / "logs",
        kill_grace=1,
        start_method=start_method,
    )
    executor.start()
    item = workload(dag_file, "sleepy", "forever")
    executor.submit([item])
    started = wait_for(
        executor,
        lambda ev: (
            any(e.kind is EventKind.STARTED for e in ev) and len(executor.worker_pids()) == 2
        ),
    )
    task_pid = started[0].pid
    assert task_pid is not None
    worker_pids = executor.worker_pids()

    # when the executor ends without letting it finish
    executor.end(timeout=10, grace=0)

    # expect the running try LOST, reported by one more process_io
    [lost] = executor.process_io()
    assert lost.key == item.key and lost.kind is EventKind.LOST
    assert "executor stopped" in (lost.error or "")
    # and no worker, task process or zombie left
    assert wait_gone([task_pid, *worker_pids]) == []
    assert our_children() == []
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


@linux_only
def test_a_dead_fork_server_is_restarted_with_new_workers(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a running try, its worker forked by the fork server
    dag_file = write_sleepy_dag(tmp_path)
    executor = make_executor(parallelism=1)
    item = workload(dag_file, "sleepy", "forever")
    executor.submit([item])
    started = wait_for(executor, lambda ev: any(e.kind is EventKind.STARTED for e in ev))
    task_pid = started[0].pid
    assert task_pid is not None
    worker_pid = parent_of(task_pid)
    server_pid = parent_of(worker_pid)
    assert parent_of(server_pid) == os.getpid()

    # when the fork server is killed
    os.kill(server_pid, signal.SIGKILL)

    # expect the try LOST as its worker dies with the server, and everything replaced
    lost = final_events(wait_for(executor, lambda ev: item.key in final_events(ev)))[item.key]
    assert lost.kind is EventKind.LOST
    assert wait_gone([task_pid, worker_pid]) == []
    chain = write_dag(tmp_path, "chain.py", CHAIN)
    ok = run_to_end(executor, [workload(chain, "chain", "extract")])
    assert next(iter(ok.values())).state is TaskState.SUCCESS
    [new_worker] = executor.worker_pids()
    assert parent_of(new_worker) not in (server_pid, os.getpid())


@pytest.mark.parametrize("preload_dags", [True, False])
def test_workers_keep_dag_files_imported_between_tries(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor], preload_dags: bool
) -> None:
    # given a DAG file that records each process importing it
    imports = tmp_path / "imports.txt"
    dag_file = write_dag(
        tmp_path,
        "counted.py",
        f"""
        import os
        with open({str(imports)!r}, "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        with DAG("counted", schedule=None, start_date=datetime(2024, 1, 1)):
            @task
            def where():
                return os.getpid()
            where()
        """,
    )
    executor = make_executor(parallelism=1, spare_processes=1, preload_dags=preload_dags)

    # when three tries run one after the other on the one worker
    pids = []
    for n in range(3):
        done = run_to_end(executor, [workload(dag_file, "counted", "where", run_id=f"r{n}")])
        pids.append(next(iter(done.values())).pid)
        time.sleep(0.3)  # idle: the worker prepares its spare task process

    # expect each try in a process of its own, the later ones prepared while idle
    assert len(set(pids)) == 3
    assert executor.stats.spare_used >= 1
    importers = imports.read_text().split()
    if preload_dags:
        # and the file imported once, by the worker, which none of the tries ran in
        assert importers == [str(executor.worker_pids()[0])]
    else:
        # and the file imported by each task process itself
        assert importers == [str(p) for p in pids]


def test_workers_beyond_the_minimum_start_on_demand_and_stop_when_idle(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given an executor allowed 3 workers, starting with 1, stopping extra ones idle 0.2 s
    dag_file = write_dag(tmp_path, "chain.py", CHAIN)
    executor = make_executor(parallelism=3, min_workers=1, idle_worker_timeout=0.2)
    wait_for(executor, lambda ev: len(executor.worker_pids()) == 1)
    assert executor.slots_available() == 3

    # when three tries wait at once
    items = [workload(dag_file, "chain", "extract", run_id=f"r{i}") for i in range(3)]
    done = run_to_end(executor, items)

    # expect them run by three workers, started for them
    assert {e.state for e in done.values()} == {TaskState.SUCCESS}
    assert len({e.pid for e in done.values()}) == 3
    assert len(executor.worker_pids()) == 3
    # and the two extra ones gone once idle, none replaced
    wait_for(executor, lambda ev: len(executor.worker_pids()) == 1, within=30)
    assert executor.stats.respawned == 0
    assert executor.slots_available() == 3


@linux_only
def test_commands_a_try_leaves_running_are_stopped_with_it(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a task that starts a background command and returns at once
    pid_file = tmp_path / "background.pid"
    dag_file = write_dag(
        tmp_path,
        "leaver.py",
        f"""
        import subprocess
        with DAG("leaver", schedule=None, start_date=datetime(2024, 1, 1)):
            @task
            def leave():
                child = subprocess.Popen(["sleep", "600"])
                open({str(pid_file)!r}, "w").write(str(child.pid))
            leave()
        """,
    )
    executor = make_executor()

    # when the try finishes
    done = run_to_end(executor, [workload(dag_file, "leaver", "leave")])

    # expect the command it left behind to be stopped too
    assert next(iter(done.values())).state is TaskState.SUCCESS
    assert wait_gone([int(wait_for_file(pid_file))]) == []


def test_large_xcoms_cross_the_pipe_both_ways(
    tmp_path: Path, data: FakeData, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given tasks that push and pull a value near the XCom size limit
    dag_file = write_dag(
        tmp_path,
        "bulky.py",
        """
        with DAG("bulky", schedule=None, start_date=datetime(2024, 1, 1)):
            @task
            def big():
                return ["x" * 1000 for _ in range(900)]

            @task
            def measure(rows):
                return sum(len(r) for r in rows)

            measure(big())
        """,
    )
    executor = make_executor()

    # when both run
    first = run_to_end(executor, [workload(dag_file, "bulky", "big")])
    second = run_to_end(executor, [workload(dag_file, "bulky", "measure")])

    # expect the whole value through, both ways
    assert next(iter(first.values())).state is TaskState.SUCCESS
    assert next(iter(second.values())).state is TaskState.SUCCESS
    assert data.value("bulky", "measure") == 900_000


# --- a try's cost: work done ahead, XComs with the outcome, spares only when idle ------------------


class RecordingData(FakeData):
    """FakeData that logs the order of XCom writes, and can refuse to store them."""

    def __init__(self, *, refuse_xcoms: bool = False) -> None:
        super().__init__()
        self.refuse_xcoms = refuse_xcoms
        self.log: list[str] = []

    def set_xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int, value: Any
    ) -> None:
        if self.refuse_xcoms:
            raise RuntimeError("database is locked")
        self.log.append(f"set {task_id}.{key}")
        super().set_xcom(dag_id, run_id, task_id, key, map_index, value)


CALLBACK_READS_ITS_VALUE = """
def check(context):
    seen = context["ti"].xcom_pull()
    context["ti"].xcom_push("seen_by_callback", seen)

with DAG("cb", schedule=None, start_date=datetime(2024, 1, 1)):
    @task(on_success_callback=check)
    def produce():
        return {"rows": 7}
    produce()
"""


def test_the_return_value_is_stored_before_the_try_counts_as_finished(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a task whose success callback reads the value the task returned
    data = RecordingData()
    dag_file = write_dag(tmp_path, "cb.py", CALLBACK_READS_ITS_VALUE)
    executor = make_executor(data=data)
    item = workload(dag_file, "cb", "produce")

    # when it runs, with the executor watched for the moment it reports FINISHED
    executor.submit([item])
    stored_when_finished: list[str] = []
    events: list[ExecutorEvent] = []
    deadline = time.monotonic() + 60
    while item.key not in final_events(events):
        assert time.monotonic() < deadline
        new = executor.process_io(0.2)
        if any(e.key == item.key and e.kind is EventKind.FINISHED for e in new):
            stored_when_finished = list(data.log)
        events.extend(new)

    # expect success, the callback reading the value, and both XComs stored by then
    assert final_events(events)[item.key].state is TaskState.SUCCESS
    assert data.value("cb", "produce") == {"rows": 7}
    assert codec.decode(data.xcoms[("cb", "r1", "produce", "seen_by_callback", -1)]) == {"rows": 7}
    assert stored_when_finished == data.log
    assert stored_when_finished[0] == "set produce.return_value"


@pytest.mark.parametrize(
    ("max_tries", "state"), [(0, TaskState.FAILED), (1, TaskState.UP_FOR_RETRY)]
)
def test_a_return_value_that_cannot_be_stored_fails_the_try(
    tmp_path: Path,
    make_executor: Callable[..., LocalExecutor],
    max_tries: int,
    state: TaskState,
) -> None:
    # given a data service that cannot store XComs
    dag_file = write_dag(tmp_path, "chain.py", CHAIN)
    executor = make_executor(data=RecordingData(refuse_xcoms=True))

    # when a task that returns a value runs
    item = workload(dag_file, "chain", "extract", max_tries=max_tries)
    event = run_to_end(executor, [item])[item.key]

    # expect the try to fail (retried like any failure), saying why
    assert event.kind is EventKind.FINISHED
    assert event.state is state
    assert "XCom could not be stored" in (event.error or "")
    assert "database is locked" in (event.error or "")


TEMPLATED = """
with DAG("tpl", schedule=None, start_date=datetime(2024, 1, 1)):
    @task
    def show(day, run):
        return f"{day} {run}"
    show(day="{{ ds }}", run="{{ run_id }}")
"""


def test_templates_render_in_every_try_from_the_workers_compiled_copy(
    tmp_path: Path, data: FakeData, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a DAG whose task arguments are templates, and runs with logical dates
    dag_file = write_dag(tmp_path, "tpl.py", TEMPLATED)
    executor = make_executor(parallelism=1)
    items = []
    for day in (1, 2, 1):
        item = workload(dag_file, "tpl", "show", run_id=f"r{len(items)}")
        when = datetime(2024, 3, day, 12, 0, tzinfo=UTC)
        run = RunSpec(run_type="manual", logical_date=when, data_interval_start=when,
                      data_interval_end=when)  # fmt: skip
        items.append(replace(item, run=run))

    # when they run one after the other on one worker
    events = {}
    for item in items:
        events.update(run_to_end(executor, [item]))

    # expect every try to render its own run's values
    assert all(e.state is TaskState.SUCCESS for e in events.values())
    assert [data.value("tpl", "show", run_id=i.key.run_id) for i in items] == [
        "2024-03-01 r0",
        "2024-03-02 r1",
        "2024-03-01 r2",
    ]


def test_a_burst_of_tries_forks_task_processes_on_demand_without_spares(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given two idle workers, each with the spare task process it prepared while idle
    dag_file = write_dag(tmp_path, "chain.py", CHAIN)
    executor = make_executor(parallelism=2, spare_processes=2)
    for n in range(2):  # one try each (the one idle the longest goes first)
        run_to_end(executor, [workload(dag_file, "chain", "extract", run_id=f"warm{n}")])
        time.sleep(0.5)
    used_before = executor.stats.spare_used

    # when many more tries than workers arrive at once
    items = [workload(dag_file, "chain", "extract", run_id=f"b{n}") for n in range(12)]
    done = run_to_end(executor, items)

    # expect them all to run; the two spares take the first two, and no worker prepares
    # another while tries wait (its warm-up would only take CPU from them)
    assert all(e.state is TaskState.SUCCESS for e in done.values())
    assert executor.stats.spare_used - used_before == 2


# --- stopping gracefully ------------------------------------------------------------------------------

SLOW = """
import time
with DAG("slow", schedule=None, start_date=datetime(2024, 1, 1)):
    @task
    def nap():
        time.sleep(1.0)
        return "rested"
    nap()
"""


def test_end_lets_running_tries_finish_and_hands_back_queued_ones(
    tmp_path: Path, data: FakeData, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given one worker running a one-second try, with two more tries queued behind it
    dag_file = write_dag(tmp_path, "slow.py", SLOW)
    executor = make_executor(parallelism=1)
    items = [workload(dag_file, "slow", "nap", run_id=f"r{n}") for n in range(3)]
    executor.submit(items)
    wait_for(executor, lambda ev: any(e.kind is EventKind.STARTED for e in ev))

    # when the executor ends (with its default grace)
    executor.end()

    # expect the running try to have finished, and the queued ones handed back untouched:
    # no event for them, never started, listed as handed back
    finals = final_events(executor.process_io())
    assert list(finals) == [items[0].key]
    assert finals[items[0].key].kind is EventKind.FINISHED
    assert finals[items[0].key].state is TaskState.SUCCESS
    assert data.value("slow", "nap", run_id="r0") == "rested"
    assert set(data.started) == {items[0].key}
    assert [w.key for w in executor.handed_back] == [items[1].key, items[2].key]


def test_end_stops_the_tries_still_running_after_the_grace(
    tmp_path: Path, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a try that would run for ten minutes
    dag_file = write_sleepy_dag(tmp_path)
    executor = make_executor(kill_grace=1.0)
    item = workload(dag_file, "sleepy", "forever")
    executor.submit([item])
    started = wait_for(executor, lambda ev: any(e.kind is EventKind.STARTED for e in ev))

    # when the executor ends, granting half a second
    executor.end(grace=0.5)

    # expect the try stopped and LOST, its process gone, nothing handed back
    [lost] = [e for e in executor.process_io() if e.key == item.key]
    assert lost.kind is EventKind.LOST
    assert "executor stopped" in (lost.error or "")
    assert wait_gone([started[0].pid or -1]) == []
    assert executor.handed_back == []


def test_a_try_not_through_its_start_handshake_when_the_executor_stops_is_handed_back(
    tmp_path: Path, data: FakeData, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a DAG file that takes a while to import, and a try of it sent to a worker
    dag_file = write_dag(
        tmp_path,
        "slow_import.py",
        """
        import time
        time.sleep(1.5)
        with DAG("slow_import", schedule=None, start_date=datetime(2024, 1, 1)):
            @task
            def never():
                return 1
            never()
        """,
    )
    executor = make_executor(parallelism=1)
    item = workload(dag_file, "slow_import", "never")
    executor.submit([item])
    executor.process_io(0.1)  # dispatched: the worker is importing the file

    # when the executor ends before the try's start handshake
    executor.end()

    # expect the try refused at its handshake: it never started, no event, handed back
    assert executor.process_io() == []
    assert data.started == {}
    assert [w.key for w in executor.handed_back] == [item.key]


def test_tasks_do_not_inherit_the_fork_servers_loader_settings(
    tmp_path: Path, data: FakeData, make_executor: Callable[..., LocalExecutor]
) -> None:
    # given a task that reports its environment
    dag_file = write_dag(
        tmp_path,
        "env.py",
        """
        import os
        with DAG("env", schedule=None, start_date=datetime(2024, 1, 1)):
            @task
            def env():
                return sorted(k for k in os.environ if "BIND_NOW" in k)
            env()
        """,
    )
    executor = make_executor(start_method="forkserver")

    # when it runs in a task process forked below the fork server
    item = workload(dag_file, "env", "env")
    assert run_to_end(executor, [item])[item.key].state is TaskState.SUCCESS

    # expect none of the variables the fork server was started with
    assert data.value("env", "env") == sorted(k for k in os.environ if "BIND_NOW" in k)
