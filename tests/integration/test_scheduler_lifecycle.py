"""Scheduler scenarios around a try: retries (retry_delay, exponential backoff) on the
scheduler's clock, TaskFailed, execution_timeout, dagrun_timeout, and where callbacks run.

The real scheduler, a real migrated SQLite database and real DAG files; the harness is the one
of ``test_scheduler_scenarios.py``. Timed scenarios use an injected clock and a scheduler that
never polls, so only its own timers and executor events can move things along.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_scheduler_scenarios import NO_POLL, Clock, World, make_world

from tradewind.state import TaskState

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A world on the real clock."""
    w = make_world(tmp_path)
    yield w
    w.close()


@pytest.fixture
def clock() -> Clock:
    """An injected clock, starting now (so task start/end times stay close to it)."""
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def timed_world(tmp_path: Path, clock: Clock) -> Iterator[World]:
    """A world whose scheduler runs on the injected ``clock``."""
    w = make_world(tmp_path, clock)
    yield w
    w.close()


# --- retries, fail-fast, timeouts -------------------------------------------------------------------


def test_a_retry_waits_for_retry_delay_on_the_scheduler_clock(
    timed_world: World, clock: Clock
) -> None:
    world = timed_world
    # given a task that fails on its first try, with retries=2 and retry_delay=5 min
    world.write_dag(
        "retrying",
        """
        def flaky(ti=None):
            note("tries", ti.try_number)
            if ti.try_number == 1:
                raise RuntimeError("first try fails")
            return ti.try_number

        with DAG("retrying", schedule=None):
            PythonOperator(
                task_id="flaky",
                python_callable=flaky,
                retries=2,
                retry_delay=timedelta(minutes=5),
            )
        """,
    )
    world.sync()
    run_id = world.trigger("retrying")
    sched = world.scheduler(poll_interval=NO_POLL)
    # when its first try fails
    world.run_until(
        sched,
        "the first try to fail",
        lambda: world.ti("retrying", run_id, "flaky").state is TaskState.UP_FOR_RETRY,
    )
    ti = world.ti("retrying", run_id, "flaky")
    assert ti.next_retry_at is not None
    retry_at = ti.next_retry_at.replace(tzinfo=UTC)
    # expect the retry to be due retry_delay after the failure, on the scheduler's clock
    assert retry_at == clock.now + timedelta(minutes=5)
    # and nothing to start before it is due, however often the scheduler looks
    clock.advance(minutes=4, seconds=59)
    world.steps(sched)
    assert world.ti("retrying", run_id, "flaky").state is TaskState.UP_FOR_RETRY
    assert world.lines("tries") == ["1"]
    assert "waiting to retry" in " ".join(world.why("retrying", run_id, "flaky"))
    # and the second try to run once the clock reaches next_retry_at
    clock.advance(seconds=1)
    assert world.finish(sched, "retrying", run_id) == "success"
    assert world.lines("tries") == ["1", "2"]
    assert world.ti("retrying", run_id, "flaky").try_number == 2
    assert world.xcom("retrying", run_id, "flaky") == 2


def test_exponential_backoff_grows_the_delay_between_tries(
    timed_world: World, clock: Clock
) -> None:
    world = timed_world
    # given a task that always fails, retries=3, retry_delay=10 s, backoff x2, capped at 50 s
    world.write_dag(
        "backoff",
        """
        def fail(ti=None):
            note("tries", ti.try_number)
            raise RuntimeError("always fails")

        with DAG("backoff", schedule=None):
            PythonOperator(
                task_id="fail",
                python_callable=fail,
                retries=3,
                retry_delay=timedelta(seconds=10),
                retry_exponential_backoff=2.0,
                max_retry_delay=timedelta(seconds=50),
            )
        """,
    )
    world.sync()
    run_id = world.trigger("backoff")
    sched = world.scheduler(poll_interval=NO_POLL)
    delays = []
    for try_number in (1, 2, 3):
        # when try N fails
        wanted = (TaskState.UP_FOR_RETRY, try_number)

        def failed_again() -> bool:
            ti = world.ti("backoff", run_id, "fail")
            return (ti.state, ti.try_number) == wanted

        world.run_until(sched, f"try {try_number} to fail", failed_again)
        retry_at = world.ti("backoff", run_id, "fail").next_retry_at
        assert retry_at is not None
        delay = retry_at.replace(tzinfo=UTC) - clock.now
        delays.append(delay.total_seconds())
        # expect no new try one second before it is due ...
        clock.now = retry_at.replace(tzinfo=UTC) - timedelta(seconds=1)
        world.steps(sched, 3)
        assert world.lines("tries") == [str(n) for n in range(1, try_number + 1)]
        # ... and the next try once it is
        clock.advance(seconds=1)
    assert world.finish(sched, "backoff", run_id) == "failed"
    # expect delays in [base, 2 * base) with base 10, 20, 40 s, the last capped at 50 s
    assert 10 <= delays[0] < 20 and 20 <= delays[1] < 40 and 40 <= delays[2] <= 50
    assert world.lines("tries") == ["1", "2", "3", "4"]
    ti = world.ti("backoff", run_id, "fail")
    assert (ti.state, ti.try_number) == (TaskState.FAILED, 4)


def test_task_failed_is_not_retried(world: World) -> None:
    # given a task with retries=3 that raises TaskFailed
    world.write_dag(
        "fail_fast",
        """
        def give_up(ti=None):
            note("tries", ti.try_number)
            raise TaskFailed("the input is broken beyond repair")

        with DAG("fail_fast", schedule=None):
            PythonOperator(task_id="give_up", python_callable=give_up, retries=3, retry_delay=0)
        """,
    )
    world.sync()
    run_id = world.trigger("fail_fast")
    # when it runs
    state = world.finish(world.scheduler(), "fail_fast", run_id)
    # expect it to fail at once, without a retry
    ti = world.ti("fail_fast", run_id, "give_up")
    assert (state, ti.state, ti.try_number) == ("failed", TaskState.FAILED, 1)
    assert world.lines("tries") == ["1"]
    assert "broken beyond repair" in (ti.last_error or "")


def test_execution_timeout_kills_a_sleeping_bash_task(world: World) -> None:
    # given a bash task that records its shell's pid, then sleeps 60 s, with a 1 s timeout
    world.write_dag(
        "timeout",
        """
        with DAG("timeout", schedule=None):
            BashOperator(
                task_id="sleepy",
                bash_command=f"echo $$ > {OUT / 'pid'}; sleep 60",
                execution_timeout=timedelta(seconds=1),
            )
        """,
    )
    world.sync()
    run_id = world.trigger("timeout")
    # when it runs under the local executor
    started = time.monotonic()
    state = world.finish(world.scheduler("local", parallelism=2), "timeout", run_id)
    # expect the try to fail as timed out well before the sleep would have ended
    assert time.monotonic() - started < 30
    ti = world.ti("timeout", run_id, "sleepy")
    assert (state, ti.state, ti.try_number) == ("failed", TaskState.FAILED, 1)
    assert "execution_timeout" in (ti.last_error or "")
    # and the shell it started to be gone
    pid = int(world.lines("pid")[0])
    assert _gone(pid), f"the bash process {pid} outlived the timeout"


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie waiting for its parent counts as gone
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().split(")")[-1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_dagrun_timeout_fails_the_run_and_skips_unfinished_tasks(
    timed_world: World, clock: Clock
) -> None:
    world = timed_world
    # given a run whose first task waits 1 h to retry, with dagrun_timeout=10 min
    world.write_dag(
        "run_timeout",
        """
        def fail():
            raise RuntimeError("not yet")

        with DAG("run_timeout", schedule=None, dagrun_timeout=timedelta(minutes=10)):
            done = PythonOperator(task_id="done", python_callable=lambda: 1)
            waiting = PythonOperator(
                task_id="waiting", python_callable=fail, retries=1, retry_delay=timedelta(hours=1)
            )
            after = PythonOperator(task_id="after", python_callable=lambda: 2)
            waiting >> after
        """,
    )
    world.sync()
    run_id = world.trigger("run_timeout")
    sched = world.scheduler(poll_interval=NO_POLL)
    world.run_until(
        sched,
        "the first task to wait for its retry",
        lambda: (
            world.states("run_timeout", run_id)
            == {"done": "success", "waiting": "up_for_retry", "after": "created"}
        ),
    )
    # (and `tasks why` explains both waits)
    assert world.why("run_timeout", run_id, "after") == [
        "waiting for 1 of 1 upstream task; trigger rule all_success"
    ]
    assert "waiting to retry: retry 1 of 1" in world.why("run_timeout", run_id, "waiting")[0]
    # when the clock passes the timeout (but not the retry time)
    clock.advance(minutes=9)
    world.steps(sched, 3)
    assert world.run_state("run_timeout", run_id) == "running"
    clock.advance(minutes=1, seconds=1)
    # expect the run to fail and every unfinished task to be skipped
    assert world.finish(sched, "run_timeout", run_id) == "failed"
    assert world.states("run_timeout", run_id) == {
        "done": "success",
        "waiting": "skipped",
        "after": "skipped",
    }


def test_dagrun_timeout_stops_a_running_try(timed_world: World, clock: Clock) -> None:
    world = timed_world
    # given a run with a long-running task, dagrun_timeout=1 min, under the local executor
    world.write_dag(
        "run_timeout_kill",
        """
        def sleep():
            note("pid", os.getpid())
            time.sleep(60)

        with DAG("run_timeout_kill", schedule=None, dagrun_timeout=timedelta(minutes=1)):
            PythonOperator(task_id="sleep", python_callable=sleep)
        """,
    )
    world.sync()
    run_id = world.trigger("run_timeout_kill")
    sched = world.scheduler("local", parallelism=2)
    world.run_until(sched, "the task to start", lambda: world.lines("pid"))
    # when the run times out while the task runs
    clock.advance(minutes=1, seconds=1)
    # expect the run to fail, the task to be skipped and its process to be stopped
    assert world.finish(sched, "run_timeout_kill", run_id) == "failed"
    assert world.states("run_timeout_kill", run_id) == {"sleep": "skipped"}
    assert _gone(int(world.lines("pid")[0]))


# --- callbacks ------------------------------------------------------------------------------------


def test_dag_callbacks_run_outside_the_scheduler(world: World) -> None:
    # given two DAGs whose success / failure callbacks write a file with their pid and reason
    world.write_dag(
        "callbacks",
        """
        def on_success(context):
            note("dag_success", f"{os.getpid()} {context['run_id']} {context['reason']}")

        def on_failure(context):
            note("dag_failure", f"{os.getpid()} {context['run_id']} {context['reason']}")

        def fail():
            raise RuntimeError("no")

        with DAG("cb_good", schedule=None, on_success_callback=on_success):
            PythonOperator(task_id="fine", python_callable=lambda: 1)

        with DAG("cb_bad", schedule=None, on_failure_callback=[on_failure]):
            PythonOperator(task_id="broken", python_callable=fail)
        """,
    )
    world.sync()
    good = world.trigger("cb_good")
    bad = world.trigger("cb_bad")
    sched = world.scheduler()
    # when both runs finish
    assert world.finish(sched, "cb_good", good) == "success"
    assert world.finish(sched, "cb_bad", bad) == "failed"
    # expect each callback to run once, in another process, with the reason
    success = world.run_until(sched, "the success callback", lambda: world.lines("dag_success"))
    failure = world.run_until(sched, "the failure callback", lambda: world.lines("dag_failure"))
    pid, run_id, reason = success[0].split()
    assert (run_id, reason) == (good, "success") and int(pid) != os.getpid()
    pid, run_id, reason = failure[0].split()
    assert (run_id, reason) == (bad, "task_failure") and int(pid) != os.getpid()
    # and no success callback for the failed run, nor failure callback for the good one
    world.steps(sched, 3)
    assert len(world.lines("dag_success")) == 1 and len(world.lines("dag_failure")) == 1


def test_task_callbacks_run_in_the_task_process(world: World) -> None:
    # given tasks whose callbacks record their pid, under the local executor
    world.write_dag(
        "task_callbacks",
        """
        def record(kind):
            def callback(context):
                note("callbacks", f"{kind} {context['ti'].task_id} {os.getpid()}")
            return callback

        def ok():
            note("tasks", f"ok {os.getpid()}")

        def flaky(ti=None):
            note("tasks", f"flaky {os.getpid()}")
            if ti.try_number == 1:
                raise RuntimeError("retry me")

        def broken():
            note("tasks", f"broken {os.getpid()}")
            raise RuntimeError("broken")

        with DAG("task_callbacks", schedule=None):
            PythonOperator(task_id="ok", python_callable=ok, on_success_callback=record("success"))
            PythonOperator(
                task_id="flaky",
                python_callable=flaky,
                retries=1,
                retry_delay=0,
                on_retry_callback=record("retry"),
                on_success_callback=record("success"),
            )
            PythonOperator(
                task_id="broken", python_callable=broken, on_failure_callback=record("failure")
            )
        """,
    )
    world.sync()
    run_id = world.trigger("task_callbacks")
    # when the run finishes
    assert world.finish(world.scheduler("local", parallelism=4), "task_callbacks", run_id) == (
        "failed"
    )
    # expect each callback in the very process that ran the try, never in the scheduler's
    tasks = [line.split() for line in world.lines("tasks")]
    callbacks = [line.split() for line in world.lines("callbacks")]
    assert sorted((kind, task_id) for kind, task_id, _ in callbacks) == [
        ("failure", "broken"),
        ("retry", "flaky"),
        ("success", "flaky"),
        ("success", "ok"),
    ]
    task_pids = {(task_id, int(pid)) for task_id, pid in tasks}
    for _kind, task_id, pid in callbacks:
        assert (task_id, int(pid)) in task_pids
        assert int(pid) != os.getpid()


def test_dags_test_returns_only_after_the_dag_callback_ran(world: World) -> None:
    # given a DAG file whose success callback writes a file
    path = world.write_dag(
        "tested",
        """
        def on_success(context):
            note("callback", f"{context['reason']} {os.getpid()}")

        with DAG("tested", schedule=None, on_success_callback=on_success):
            PythonOperator(task_id="one", python_callable=lambda: 1)
        """,
    )
    from tradewind.dag_processing import load_dag_from_file
    from tradewind.scheduler.dag_test import test_dag

    dag = load_dag_from_file(str(path), "tested")
    logs = io.StringIO()
    # when it is tested (as `tradewind dags test` and `dag.test()` do)
    result = test_dag(dag, log_stream=logs)
    # expect the callback to have run (in another process) by the time the test returns, and
    # its log to be in the test's log stream
    assert result.succeeded
    (line,) = world.lines("callback")
    reason, pid = line.split()
    assert reason == "success" and int(pid) != os.getpid()
    assert "running DAG success callback on_success (reason: success)" in logs.getvalue()
