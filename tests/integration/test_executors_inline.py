"""The inline executor: tries run in this process inside process_io, through the same
supervisor as the local executor (start handshake, log file, outcome events)."""

from __future__ import annotations

import io
import os
import select
from pathlib import Path

from test_executors_local import CHAIN, FakeData, final_events, workload, write_dag

from tradewind.executors import EventKind, InlineExecutor, TaskInstanceKey
from tradewind.sdk.connection import Connection
from tradewind.state import TaskState


def test_chain_runs_in_this_process_and_passes_xcoms(tmp_path: Path) -> None:
    # given a 3-task chain and an inline executor
    dag_file = write_dag(tmp_path, "chain.py", CHAIN)
    data = FakeData()
    executor = InlineExecutor(data=data, log_folder=tmp_path / "logs")
    executor.start()

    # when each task is submitted and process_io is called
    events = []
    for task_id in ("extract", "transform", "load"):
        executor.submit([workload(dag_file, "chain", task_id)])
        events += executor.process_io()

    # expect STARTED then FINISHED per try, all successful, from this very process
    assert [(e.key.task_id, e.kind) for e in events] == [
        ("extract", EventKind.STARTED),
        ("extract", EventKind.FINISHED),
        ("transform", EventKind.STARTED),
        ("transform", EventKind.FINISHED),
        ("load", EventKind.STARTED),
        ("load", EventKind.FINISHED),
    ]
    assert {e.state for e in final_events(events).values()} == {TaskState.SUCCESS}
    assert {e.pid for e in events} == {os.getpid()}
    assert data.value("chain", "load") == 60
    log = tmp_path / "logs/dag_id=chain/run_id=r1/task_id=load/attempt=1.log"
    assert "INFO tradewind.task.stdout - loaded 6" in log.read_text()


def test_fileno_is_readable_while_work_waits(tmp_path: Path) -> None:
    # given an inline executor with nothing to do
    executor = InlineExecutor(data=FakeData(), log_folder=tmp_path / "logs", parallelism=2)
    assert select.select([executor.fileno()], [], [], 0)[0] == []

    # when a try is submitted
    dag_file = write_dag(tmp_path, "chain.py", CHAIN)
    executor.submit([workload(dag_file, "chain", "extract")])

    # expect the descriptor readable and one slot used, until process_io ran it
    assert select.select([executor.fileno()], [], [], 0)[0] == [executor.fileno()]
    assert executor.slots_available() == 1
    assert len(executor.process_io()) == 2
    assert select.select([executor.fileno()], [], [], 0)[0] == []
    assert executor.slots_available() == 2
    executor.close()


def test_a_refused_start_runs_nothing_and_reports_nothing(tmp_path: Path) -> None:
    # given a task with a side effect, and a refused start handshake
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
    data = FakeData()
    item = workload(dag_file, "marker", "touch")
    data.refuse.add(item.key)
    executor = InlineExecutor(data=data, log_folder=tmp_path / "logs")

    # when it is submitted
    executor.submit([item])
    events = executor.process_io()

    # expect no event, no side effect, no log
    assert events == []
    assert not marker.exists()
    assert not (tmp_path / "logs").exists()


def test_task_logs_are_echoed_masked_and_stdout_stays_clean(tmp_path: Path, capsys) -> None:
    # given a task that prints a connection password, and an echo stream for the log
    dag_file = write_dag(
        tmp_path,
        "printer.py",
        """
        with DAG("printer", schedule=None, start_date=datetime(2024, 1, 1)):
            @task
            def show(conn=None):
                print("password is", conn.db.password)
                return 1
            show()
        """,
    )
    data = FakeData(connections={"db": Connection(conn_id="db", password="pa55-word-xyz")})
    echo = io.StringIO()
    executor = InlineExecutor(data=data, log_folder=tmp_path / "logs", log_stream=echo)

    # when it runs
    executor.submit([workload(dag_file, "printer", "show")])
    [_, finished] = executor.process_io()

    # expect the echo and the file to hold the masked line, and nothing on stdout
    assert finished.state is TaskState.SUCCESS
    assert "tradewind.task.stdout - password is ***" in echo.getvalue()
    log = tmp_path / "logs/dag_id=printer/run_id=r1/task_id=show/attempt=1.log"
    assert log.read_text().splitlines() == echo.getvalue().splitlines()
    assert "pa55-word-xyz" not in echo.getvalue()
    assert capsys.readouterr().out == ""


def test_a_given_dag_loader_is_used_instead_of_importing(tmp_path: Path) -> None:
    # given a DAG that exists only in memory
    from datetime import datetime

    from tradewind import DAG, task

    with DAG("in_memory", schedule=None, start_date=datetime(2024, 1, 1)) as dag:

        @task
        def hello() -> str:
            return "hi"

        hello()

    data = FakeData()
    executor = InlineExecutor(
        data=data, log_folder=tmp_path / "logs", load_dag=lambda fileloc, dag_id: dag
    )

    # when a try names a file that does not exist
    executor.submit([workload(tmp_path / "nowhere.py", "in_memory", "hello")])
    events = executor.process_io()

    # expect the in-memory DAG to run
    assert final_events(events)[TaskInstanceKey("in_memory", "r1", "hello")].state is (
        TaskState.SUCCESS
    )
    assert data.value("in_memory", "hello") == "hi"


def test_kill_and_end_lose_queued_tries(tmp_path: Path) -> None:
    # given two queued tries
    dag_file = write_dag(tmp_path, "chain.py", CHAIN)
    data = FakeData()
    executor = InlineExecutor(data=data, log_folder=tmp_path / "logs", parallelism=4)
    first = workload(dag_file, "chain", "extract", run_id="a")
    second = workload(dag_file, "chain", "extract", run_id="b")
    executor.submit([first, second])

    # when one is killed and the executor ends
    executor.kill(first.key)
    executor.end()
    events = executor.process_io()

    # expect both LOST, neither started
    lost = final_events(events)
    assert lost[first.key].error == "killed before it started"
    assert lost[second.key].error == "the executor stopped before the task started"
    assert {e.kind for e in events} == {EventKind.LOST}
    assert data.started == {}
