"""Scheduler scenarios about when things run: pools, priority, max_active_tasks,
max_active_runs with catchup, catchup=False, paused DAGs and depends_on_past.

The real scheduler, a real migrated SQLite database and real DAG files; the harness is the one
of ``test_scheduler_scenarios.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_scheduler_scenarios import Clock, World, make_world

from tradewind.db import task_instances as db_tis
from tradewind.db.models import DagRun, TaskInstance
from tradewind.serialization import deserialize_dag
from tradewind.state import ACTIVE, RunState

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A world on the real clock."""
    w = make_world(tmp_path)
    yield w
    w.close()


def overlaps(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at the same moment."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def intervals(world: World, name: str) -> dict[str, tuple[float, float]]:
    """``task start end`` lines written by the tasks -> {task: (start, end)}."""
    out = {}
    for line in world.lines(name):
        task_id, start, end = line.split()
        out[task_id] = (float(start), float(end))
    return out


def active_counter(world: World, group: Callable[[TaskInstance], object]) -> Callable[[], None]:
    """A step hook recording the largest number of queued + running instances per group."""
    seen: dict[object, int] = {}

    def check() -> None:
        with world.db.session() as s:
            rows = list(s.scalars(sa.select(TaskInstance).where(TaskInstance.state.in_(ACTIVE))))
        counts: dict[object, int] = {}
        for ti in rows:
            key = group(ti)
            counts[key] = counts.get(key, 0) + 1
        for key, count in counts.items():
            seen[key] = max(seen.get(key, 0), count)

    check.seen = seen  # type: ignore[attr-defined]
    return check


TIMED_TASKS = """
def work(name, seconds):
    def run():
        start = time.time()
        time.sleep(seconds)
        note("{out}", f"{{name}} {{start}} {{time.time()}}")
    return run
"""


# --- pools and priority -------------------------------------------------------------------------


def test_a_pool_with_one_slot_runs_its_tasks_one_at_a_time(world: World) -> None:
    # given a pool of 1 slot, three independent tasks in it and one outside it
    world.set_pool("single", 1)
    world.write_dag(
        "pooled",
        TIMED_TASKS.format(out="times")
        + """
with DAG("pooled", schedule=None):
    for name in ("a", "b", "c"):
        PythonOperator(task_id=name, python_callable=work(name, 0.3), pool="single")
    PythonOperator(task_id="free", python_callable=work("free", 0.3))
""",
    )
    world.sync()
    run_id = world.trigger("pooled")
    # when they run under the local executor with room for all four at once
    sched = world.scheduler("local", parallelism=4)
    counter = active_counter(world, lambda ti: ti.pool)
    assert world.finish(sched, "pooled", run_id, each_step=counter) == "success"
    # expect never more than one queued or running instance in the pool, and the pool's tries
    # not to overlap in time
    assert counter.seen["single"] == 1  # type: ignore[attr-defined]
    times = intervals(world, "times")
    assert set(times) == {"a", "b", "c", "free"}
    assert overlaps([times[t] for t in ("a", "b", "c")]) == 1


def test_priority_weight_decides_the_order_when_slots_are_scarce(world: World) -> None:
    # given a pool of 1 slot and root tasks of different weights (absolute), plus a chain whose
    # head gets the weight of its descendants (the default "downstream" weight rule)
    world.set_pool("single", 1)
    world.write_dag(
        "priority",
        """
        def run(name):
            return lambda: note("order", name)

        with DAG("priority", schedule=None):
            for name, weight in (("low", 1), ("high", 10), ("mid", 5)):
                PythonOperator(
                    task_id=name, python_callable=run(name), pool="single",
                    priority_weight=weight, weight_rule="absolute",
                )
            head = PythonOperator(
                task_id="head", python_callable=run("head"), pool="single", priority_weight=3
            )
            head >> [
                PythonOperator(
                    task_id=f"tail{i}", python_callable=run(f"tail{i}"), priority_weight=2
                )
                for i in range(2)
            ]
        """,
    )
    world.sync()
    run_id = world.trigger("priority")
    # when they all compete for the slot
    assert world.finish(world.scheduler(), "priority", run_id) == "success"
    # expect the highest weight first: high 10, head 3 + 2 + 2 = 7, mid 5, low 1 (the tails
    # are outside the pool)
    in_pool = [name for name in world.lines("order") if not name.startswith("tail")]
    assert in_pool == ["high", "head", "mid", "low"]
    assert world.ti("priority", run_id, "head").priority_weight == 7


def test_max_active_tasks_limits_running_instances_per_run(world: World) -> None:
    # given a DAG with max_active_tasks=2 and five independent tasks
    world.write_dag(
        "limited",
        TIMED_TASKS.format(out="times")
        + """
with DAG("limited", schedule=None, max_active_tasks=2):
    for i in range(5):
        PythonOperator(task_id=f"t{i}", python_callable=work(f"t{i}", 0.2))
""",
    )
    world.sync()
    first = world.trigger("limited", run_id="first")
    second = world.trigger(
        "limited", run_id="second", logical_date=datetime(2024, 1, 2, tzinfo=UTC)
    )
    # when two runs execute under a local executor with room for ten tries
    sched = world.scheduler("local", parallelism=10)
    counter = active_counter(world, lambda ti: ti.run_id)
    assert world.finish(sched, "limited", first, each_step=counter) == "success"
    assert world.finish(sched, "limited", second, each_step=counter) == "success"
    # expect at most two queued or running instances in each run at any step
    assert counter.seen == {"first": 2, "second": 2}  # type: ignore[attr-defined]
    assert len(world.lines("times")) == 10


# --- run creation -----------------------------------------------------------------------------------


DAILY_DAG = """
with DAG(
    "daily",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup={catchup},
    max_active_runs={max_active_runs},
):

    @task
    def stamp(ds=None, data_interval_end=None):
        note("stamps", f"{{ds}} {{data_interval_end.date()}}")

    stamp()
"""


@pytest.fixture
def jan4(tmp_path: Path) -> Iterator[World]:
    """A world whose clock says 2024-01-04 00:30 UTC."""
    w = make_world(tmp_path, Clock(datetime(2024, 1, 4, 0, 30, tzinfo=UTC)))
    yield w
    w.close()


def test_catchup_creates_the_missed_runs_in_order_within_max_active_runs(jan4: World) -> None:
    world = jan4
    # given a daily DAG from 2024-01-01 with catchup and max_active_runs=1, and the clock at
    # 2024-01-04 00:30
    world.write_dag("daily", DAILY_DAG.format(catchup=True, max_active_runs=1))
    world.sync()
    sched = world.scheduler()
    most_running = 0

    def count_running() -> None:
        nonlocal most_running
        with world.db.session() as s:
            running = s.scalar(sa.select(sa.func.count()).where(DagRun.state == RunState.RUNNING))
        most_running = max(most_running, int(running or 0))

    # when the scheduler runs until the three missed intervals are done
    world.run_until(
        sched,
        "three runs to succeed",
        lambda: [str(r.state) for r in world.runs("daily")] == ["success"] * 3,
        each_step=count_running,
    )
    # expect one run per day from the start date, run one at a time and in order
    runs = world.runs("daily")
    assert [r.run_id for r in runs] == [
        f"scheduled__2024-01-0{day}T00:00:00+00:00" for day in (1, 2, 3)
    ]
    assert [(r.data_interval_start.day, r.data_interval_end.day) for r in runs] == [
        (1, 2),
        (2, 3),
        (3, 4),
    ]
    assert [r.id for r in runs] == sorted(r.id for r in runs)  # created in date order
    assert most_running == 1
    assert world.lines("stamps") == [
        "2024-01-01 2024-01-02",
        "2024-01-02 2024-01-03",
        "2024-01-03 2024-01-04",
    ]
    # and nothing more until the next interval ends
    world.steps(sched)
    assert len(world.runs("daily")) == 3


def test_without_catchup_only_the_latest_interval_runs(jan4: World) -> None:
    world = jan4
    assert world.clock is not None
    # given the same daily DAG without catchup
    world.write_dag("daily", DAILY_DAG.format(catchup=False, max_active_runs=16))
    world.sync()
    sched = world.scheduler()
    # when the scheduler starts on 2024-01-04 00:30
    world.run_until(
        sched, "a run", lambda: [str(r.state) for r in world.runs("daily")] == ["success"]
    )
    world.steps(sched)
    # expect only the latest complete interval [01-03, 01-04) to run
    assert [r.logical_date.day for r in world.runs("daily")] == [3]
    assert world.lines("stamps") == ["2024-01-03 2024-01-04"]
    # and the next one once its interval has ended
    world.clock.advance(days=1)
    world.run_until(sched, "the next run", lambda: len(world.lines("stamps")) == 2)
    assert world.lines("stamps")[1] == "2024-01-04 2024-01-05"


def test_a_paused_dag_creates_and_starts_nothing(jan4: World) -> None:
    world = jan4
    # given a paused daily DAG with catchup, due for three runs, and a triggered run
    world.write_dag("daily", DAILY_DAG.format(catchup=True, max_active_runs=16))
    world.sync(paused=True)
    manual = world.trigger("daily", logical_date=datetime(2023, 12, 1, tzinfo=UTC))
    sched = world.scheduler()
    # when the scheduler runs for a while
    world.steps(sched, 6)
    # expect no scheduled run, and the triggered run still queued with its task untouched
    assert [(r.run_id, str(r.state)) for r in world.runs("daily")] == [(manual, "queued")]
    assert world.states("daily", manual) == {"stamp": "created"}
    assert world.lines("stamps") == []
    reasons = world.why("daily", manual, "stamp")
    assert any("paused" in r for r in reasons) and any("queued" in r for r in reasons)
    # and everything to run once it is unpaused
    world.set_paused("daily", False)
    world.run_until(
        sched,
        "all four runs to succeed",
        lambda: [str(r.state) for r in world.runs("daily")] == ["success"] * 4,
    )


# --- depends_on_past --------------------------------------------------------------------------------


def test_depends_on_past_holds_a_task_until_its_previous_run_succeeded(jan4: World) -> None:
    world = jan4
    # given two daily runs (01-01 and 01-02) of a DAG whose "gate" depends on the past and
    # fails on its first try in the first run
    world.write_dag(
        "past",
        """
        def gate(ds=None, ti=None):
            note("gates", f"{ds} {ti.try_number}")
            if ds == "2024-01-01" and ti.try_number == 1:
                raise RuntimeError("the first day is broken")

        with DAG(
            "past",
            schedule="@daily",
            start_date=datetime(2024, 1, 1),
            end_date=datetime(2024, 1, 2),
            catchup=True,
        ):
            free = PythonOperator(task_id="free", python_callable=lambda: "free")
            PythonOperator(task_id="gate", python_callable=gate, depends_on_past=True)
        """,
    )
    world.sync()
    sched = world.scheduler()
    first, second = "scheduled__2024-01-01T00:00:00+00:00", "scheduled__2024-01-02T00:00:00+00:00"
    # when the first run's gate fails
    world.run_until(
        sched,
        "the first run to fail",
        lambda: world.runs("past") and world.run_state("past", first) == "failed",
    )
    world.run_until(
        sched,
        "the second run's free task",
        lambda: world.states("past", second)["free"] == "success",
    )
    world.steps(sched)
    # expect the second run's gate held back (not failed, not run), and `tasks why` to say why
    assert world.states("past", second) == {"free": "success", "gate": "created"}
    assert world.run_state("past", second) == "running"
    assert world.lines("gates") == ["2024-01-01 1"]
    reasons = world.why("past", second, "gate")
    assert any("depends_on_past" in r and first in r and "failed" in r for r in reasons), reasons
    # when the first run's gate is cleared (as `tasks clear` does) and succeeds on its retry
    with world.db.session() as s:
        from tradewind.db import dags as db_dags

        view = deserialize_dag(db_dags.get_latest_document(s, "past"))
        db_tis.clear_task_instances(s, view, [first], ["gate"], now=world.now())
    # expect the second run's gate to run after it, and both runs to succeed
    assert world.finish(sched, "past", first) == "success"
    assert world.finish(sched, "past", second) == "success"
    assert world.lines("gates") == ["2024-01-01 1", "2024-01-01 2", "2024-01-02 1"]


def test_depends_on_past_lets_a_task_go_as_soon_as_the_previous_run_finished_it(
    world: World,
) -> None:
    # given two runs of a DAG whose "gate" depends on the past; in the first run the gate,
    # and in the second a "slow" task, run until the test releases them (real clock, local
    # executor)
    world.write_dag(
        "past_live",
        """
        def hold(name, ds, day):
            deadline = time.monotonic() + 20
            while ds == day and not (OUT / name).exists():
                assert time.monotonic() < deadline, f"{name} never came"
                time.sleep(0.02)

        def gate(ds=None):
            note("gates", f"start {ds}")
            hold("release", ds, "2024-01-01")
            note("gates", f"end {ds}")

        def slow(ds=None):
            hold("release_slow", ds, "2024-01-02")

        with DAG("past_live", schedule=None, start_date=datetime(2024, 1, 1)):
            PythonOperator(task_id="free", python_callable=lambda: "free")
            PythonOperator(task_id="slow", python_callable=slow)
            PythonOperator(task_id="gate", python_callable=gate, depends_on_past=True)
        """,
    )
    world.sync()
    first = world.trigger(
        "past_live", run_id="first", logical_date=datetime(2024, 1, 1, tzinfo=UTC)
    )
    second = world.trigger(
        "past_live", run_id="second", logical_date=datetime(2024, 1, 2, tzinfo=UTC)
    )
    sched = world.scheduler("local", parallelism=6)
    # when the first run's gate is running (and in the second run, free is done, slow runs)
    world.run_until(
        sched,
        "the first gate to run, the second run's free task to finish and slow to run",
        lambda: (
            world.lines("gates") == ["start 2024-01-01"]
            and world.states("past_live", second)
            == {"free": "success", "slow": "running", "gate": "created"}
        ),
    )
    world.steps(sched)
    # expect the second run's gate to wait, saying why
    assert world.states("past_live", second)["gate"] == "created"
    reasons = world.why("past_live", second, "gate")
    assert any("depends_on_past" in r and "running" in r for r in reasons), reasons
    # and to run as soon as the first one succeeded, without anyone touching the second run
    # (and while another of its tasks is still running)
    (world.out / "release").touch()
    assert world.finish(sched, "past_live", first) == "success"
    # (the gate's last line is written before its try reports success: wait for both)
    world.run_until(
        sched,
        "the second gate",
        lambda: (
            len(world.lines("gates")) == 4
            and world.states("past_live", second)["gate"] == "success"
        ),
        timeout=10,
    )
    assert world.states("past_live", second) == {
        "free": "success",
        "slow": "running",
        "gate": "success",
    }
    (world.out / "release_slow").touch()
    assert world.finish(sched, "past_live", second) == "success"
    assert world.lines("gates") == [
        "start 2024-01-01",
        "end 2024-01-01",
        "start 2024-01-02",
        "end 2024-01-02",
    ]


def test_with_catchup_depends_on_past_looks_past_manual_runs(jan4: World) -> None:
    world = jan4
    # given a daily DAG with catchup whose gate depends on the past, and a manual run between
    # its first two scheduled runs in which the gate fails
    world.write_dag(
        "past_manual",
        """
        def gate(run_id=None):
            note("gates", run_id)
            if run_id.startswith("manual"):
                raise TaskFailed("the manual run's gate fails")

        with DAG(
            "past_manual",
            schedule="@daily",
            start_date=datetime(2024, 1, 1),
            end_date=datetime(2024, 1, 2),
            catchup=True,
        ):
            PythonOperator(task_id="gate", python_callable=gate, depends_on_past=True)
        """,
    )
    world.sync()
    manual = world.trigger("past_manual", logical_date=datetime(2024, 1, 1, 12, tzinfo=UTC))
    sched = world.scheduler()
    # when the scheduler runs everything
    world.run_until(
        sched,
        "every run to finish",
        lambda: (
            sorted(str(r.state) for r in world.runs("past_manual"))
            == ["failed", "success", "success"]
        ),
        timeout=10,
    )
    # expect the second scheduled run to depend on the first scheduled one, not on the
    # failed manual run in between (as in Airflow)
    assert world.run_state("past_manual", manual) == "failed"
    assert [str(r.state) for r in world.runs("past_manual")] == ["success", "failed", "success"]
