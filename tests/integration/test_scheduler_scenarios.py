"""Scheduler scenarios: the real :class:`~tradewind.scheduler.job.Scheduler` against a real,
migrated SQLite database, with DAG files written to a temporary folder and parsed by the real
DAG processor.

Each test says what is given, what happens and what is expected. The inline executor keeps
most scenarios deterministic (each try runs inside the scheduler's step); the local executor
runs the few that need real processes (timeouts, overlapping tries, task callbacks). Where
time matters (retries, timeouts, catchup), the scheduler runs on an injected clock that only
moves when the test moves it.

This file holds the harness (:class:`World`) and the scenarios about what runs: trigger rules,
branching, short-circuit, the run's state and mapping. ``test_scheduler_lifecycle.py`` (retries,
timeouts, callbacks) and ``test_scheduler_concurrency.py`` (pools, priority, limits, run
creation, depends_on_past) use the same harness.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tradewind.dag_processing.collection import ParseOptions
from tradewind.dag_processing.service import DagProcessor
from tradewind.db import dags as db_dags
from tradewind.db import runs as db_runs
from tradewind.db import task_instances as db_tis
from tradewind.db.database import Database
from tradewind.db.models import DagRun, TaskInstance, XCom
from tradewind.db.task_data import DbTaskDataService
from tradewind.executors.base import BaseExecutor
from tradewind.executors.inline import InlineExecutor
from tradewind.executors.local import LocalExecutor
from tradewind.scheduler import decisions as d
from tradewind.scheduler import loading
from tradewind.scheduler.job import Scheduler, SchedulerOptions
from tradewind.serialization import deserialize_dag
from tradewind.serialization import xcom as xcom_codec

pytestmark = pytest.mark.timeout(120)

#: Prepended to every DAG file: the imports the scenarios use, and ``note(file, line)``, which
#: appends a line to a file in the world's ``out`` folder (how tasks leave evidence).
HEADER = """\
import os
import time
from datetime import datetime, timedelta
from pathlib import Path

from tradewind import DAG, TriggerRule, task, task_group
from tradewind.errors import TaskFailed, TaskSkipped
from tradewind.operators import (
    BashOperator,
    BranchPythonOperator,
    EmptyOperator,
    PythonOperator,
    ShortCircuitOperator,
)

OUT = Path(__file__).resolve().parent.parent / "out"


def note(name, line):
    with open(OUT / name, "a") as handle:
        handle.write(f"{line}\\n")

"""

WAIT = 30.0
#: A poll interval no test outlives: the scheduler then wakes only for executor events and its
#: own timers (retry, timeout), which is what the timed scenarios check.
NO_POLL = 3600.0


class Clock:
    """A clock that moves only when told to (``advance``)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class World:
    """A Tradewind installation in a temporary folder: a migrated SQLite database, a DAGs
    folder, a logs folder and an ``out`` folder where tasks write evidence."""

    root: Path
    db: Database
    clock: Clock | None = None
    schedulers: list[Scheduler] = field(default_factory=list)
    executors: list[BaseExecutor] = field(default_factory=list)

    @property
    def dags(self) -> Path:
        return self.root / "dags"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def out(self) -> Path:
        return self.root / "out"

    def now(self) -> datetime:
        return self.clock() if self.clock is not None else datetime.now(UTC)

    # -- DAG files ----------------------------------------------------------------------------
    def write_dag(self, name: str, body: str) -> Path:
        """Write ``dags/<name>.py``: the common header, then ``body`` (dedented)."""
        path = self.dags / f"{name}.py"
        path.write_text(HEADER + textwrap.dedent(body).lstrip("\n"))
        return path

    def sync(self, *, paused: bool = False) -> None:
        """Parse the DAGs folder with the DAG processor and write the DAGs to the database."""
        processor = DagProcessor(
            self.db,
            ParseOptions(dags_folder=self.dags, processes=2),
            clock=self.now,
            paused_upon_creation=paused,
        )
        report = processor.run_once()
        assert not report.import_errors, report.import_errors

    def set_paused(self, dag_id: str, paused: bool) -> None:
        with self.db.session() as s:
            db_dags.set_paused(s, dag_id, paused)

    def set_pool(self, name: str, slots: int) -> None:
        from tradewind.db import pools as db_pools

        with self.db.session() as s:
            db_pools.set_pool(s, name, slots)

    def trigger(
        self, dag_id: str, *, logical_date: datetime | None = None, run_id: str = "manual"
    ) -> str:
        """Queue a manual run of the DAG's latest version (as ``tradewind dags trigger``)."""
        now = self.now()
        logical = logical_date or now
        with self.db.session() as s:
            version = db_dags.get_latest_version(s, dag_id)
            view = deserialize_dag(version.document)
            interval = d.manual_run_interval(view.timetable, logical)
            db_runs.create_run(
                s,
                view,
                run_id=run_id,
                run_type="manual",
                run_after=now,
                now=now,
                dag_version_id=version.id,
                logical_date=logical,
                data_interval=(interval.start, interval.end),
            )
        return run_id

    # -- schedulers ---------------------------------------------------------------------------
    def scheduler(
        self,
        executor: str = "inline",
        *,
        parallelism: int = 16,
        **options: Any,
    ) -> Scheduler:
        """A started scheduler (stopped at teardown) with the inline or local executor."""
        data = DbTaskDataService(self.db.session_factory, fernet=None)
        ex: BaseExecutor
        if executor == "inline":
            ex = InlineExecutor(
                parallelism=parallelism, data=data, log_folder=self.logs, dags_folder=self.dags
            )
        else:
            ex = LocalExecutor(
                parallelism=parallelism,
                data=data,
                log_folder=self.logs,
                dags_folder=self.dags,
                kill_grace=1.0,
                hard_timeout_margin=5.0,
                spare_processes=0,
            )
        self.executors.append(ex)
        kwargs: dict[str, Any] = {"poll_interval": 0.05, "log_folder": self.logs, **options}
        sched = Scheduler(
            self.db.session_factory,
            ex,
            SchedulerOptions(**kwargs),
            clock=self.clock if self.clock is not None else _utcnow,
        )
        sched.start()
        self.schedulers.append(sched)
        return sched

    def run_until(
        self,
        sched: Scheduler,
        what: str,
        done: Callable[[], Any],
        *,
        timeout: float = WAIT,
        each_step: Callable[[], None] | None = None,
    ) -> Any:
        """Step ``sched`` until ``done()`` is truthy (returns it); fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            wait = sched.step()
            if each_step is not None:
                each_step()
            result = done()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what}: {self.describe()}")
            if wait > 0:
                sched._wait(min(wait, 0.05))

    def steps(self, sched: Scheduler, count: int = 5) -> None:
        """Let ``sched`` take a few steps (for "nothing happens" checks)."""
        for _ in range(count):
            sched.step()
            time.sleep(0.06)  # longer than the poll interval: every step also polls

    def finish(self, sched: Scheduler, dag_id: str, run_id: str, **kw: Any) -> str:
        """Step until the run is finished; returns its state."""
        return str(
            self.run_until(
                sched,
                f"run {run_id} of {dag_id} to finish",
                lambda: (
                    (state := self.run_state(dag_id, run_id)) in ("success", "failed") and state
                ),
                **kw,
            )
        )

    def close(self) -> None:
        for sched in self.schedulers:
            sched.stop()
        for ex in self.executors:
            if isinstance(ex, InlineExecutor):
                ex.close()
        self.db.dispose()

    # -- reading the database -----------------------------------------------------------------
    def run_state(self, dag_id: str, run_id: str) -> str:
        with self.db.session() as s:
            return str(db_runs.get_run(s, dag_id, run_id).state)

    def runs(self, dag_id: str) -> list[DagRun]:
        with self.db.session() as s:
            rows = list(
                s.scalars(
                    sa.select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.logical_date)
                )
            )
            s.expunge_all()
            return rows

    def tis(self, dag_id: str, run_id: str) -> dict[str, TaskInstance]:
        """The run's task instances by ``task`` or ``task[index]``."""
        with self.db.session() as s:
            rows = db_tis.list_tis(s, dag_id, run_id)
            s.expunge_all()
        return {_label(t.task_id, t.map_index): t for t in rows}

    def states(self, dag_id: str, run_id: str) -> dict[str, str]:
        return {k: str(t.state) for k, t in self.tis(dag_id, run_id).items()}

    def ti(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> TaskInstance:
        return self.tis(dag_id, run_id)[_label(task_id, map_index)]

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        with self.db.session() as s:
            row = s.scalar(
                sa.select(XCom).where(
                    XCom.dag_id == dag_id,
                    XCom.run_id == run_id,
                    XCom.task_id == task_id,
                    XCom.map_index == map_index,
                    XCom.key == "return_value",
                )
            )
            assert row is not None, f"no return value for {task_id}[{map_index}]"
            return xcom_codec.decode(row.value)

    def lines(self, name: str) -> list[str]:
        path = self.out / name
        return path.read_text().splitlines() if path.exists() else []

    def why(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[str]:
        """The reasons ``tradewind tasks why`` gives, computed the way it computes them."""
        with self.db.session() as s:
            run = db_runs.get_run(s, dag_id, run_id)
            view = deserialize_dag(db_dags.get_version(s, run.dag_version_id).document)
            ti = db_tis.get_ti_by_key(s, dag_id, run_id, task_id, map_index)
            decision, _ = loading.decide_ti(s, view, run, ti, now=self.now())
            dag = db_dags.get_dag(s, dag_id)
            return d.why_not_running(
                ti=loading.snapshot(ti),
                decision=decision,
                run_state=run.state,
                dag_paused=dag.is_paused,
            )

    def describe(self) -> str:
        with self.db.session() as s:
            rows = s.execute(
                sa.select(
                    TaskInstance.run_id,
                    TaskInstance.task_id,
                    TaskInstance.map_index,
                    TaskInstance.state,
                    TaskInstance.try_number,
                )
            ).all()
            runs = s.execute(sa.select(DagRun.run_id, DagRun.state)).all()
        return f"runs {[tuple(r) for r in runs]}, task instances {[tuple(r) for r in rows]}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _label(task_id: str, map_index: int) -> str:
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"


def make_world(root: Path, clock: Clock | None = None) -> World:
    for sub in ("dags", "logs", "out"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    db = Database.from_url(f"sqlite:///{root / 'tradewind.db'}")
    db.migrate()
    return World(root=root, db=db, clock=clock)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A world on the real clock."""
    w = make_world(tmp_path)
    yield w
    w.close()


# --- trigger rules ------------------------------------------------------------------------------


TRIGGER_RULES_DAG = """
def fail():
    raise ValueError("this task fails")


def skip():
    raise TaskSkipped("this task skips itself")


with DAG("rules", schedule=None, start_date=datetime(2024, 1, 1)):
    ok = PythonOperator(task_id="ok", python_callable=lambda: "ok")
    bad = PythonOperator(task_id="bad", python_callable=fail)
    skipped = PythonOperator(task_id="skipped", python_callable=skip)

    def waiter(task_id, rule, upstream):
        t = PythonOperator(task_id=task_id, python_callable=lambda: task_id, trigger_rule=rule)
        upstream >> t
        return t

    R = TriggerRule
    waiter("all_success__ok_bad", R.ALL_SUCCESS, [ok, bad])
    waiter("all_success__ok_skipped", R.ALL_SUCCESS, [ok, skipped])
    waiter("all_failed__bad", R.ALL_FAILED, [bad])
    waiter("all_failed__ok_bad", R.ALL_FAILED, [ok, bad])
    waiter("all_done__all", R.ALL_DONE, [ok, bad, skipped])
    waiter("all_done_min_one_success__ok_bad", R.ALL_DONE_MIN_ONE_SUCCESS, [ok, bad])
    waiter("all_done_min_one_success__bad", R.ALL_DONE_MIN_ONE_SUCCESS, [bad])
    waiter("one_success__ok_bad", R.ONE_SUCCESS, [ok, bad])
    waiter("one_success__bad_skipped", R.ONE_SUCCESS, [bad, skipped])
    waiter("one_failed__ok_bad", R.ONE_FAILED, [ok, bad])
    waiter("one_failed__ok_skipped", R.ONE_FAILED, [ok, skipped])
    waiter("one_done__bad_skipped", R.ONE_DONE, [bad, skipped])
    waiter("one_done__skipped", R.ONE_DONE, [skipped])
    waiter("none_failed__ok_skipped", R.NONE_FAILED, [ok, skipped])
    waiter("none_failed__ok_bad", R.NONE_FAILED, [ok, bad])
    waiter("none_failed_min_one_success__ok_skipped", R.NONE_FAILED_MIN_ONE_SUCCESS, [ok, skipped])
    waiter("none_failed_min_one_success__skipped", R.NONE_FAILED_MIN_ONE_SUCCESS, [skipped])
    waiter("none_failed_min_one_success__ok_bad", R.NONE_FAILED_MIN_ONE_SUCCESS, [ok, bad])
    waiter("none_skipped__ok_bad", R.NONE_SKIPPED, [ok, bad])
    waiter("none_skipped__ok_skipped", R.NONE_SKIPPED, [ok, skipped])
    waiter("all_skipped__skipped", R.ALL_SKIPPED, [skipped])
    waiter("all_skipped__ok_skipped", R.ALL_SKIPPED, [ok, skipped])
    # "always" runs even below an upstream_failed task
    waiter("always__upstream_failed", R.ALWAYS, [ok, bad] >> EmptyOperator(task_id="chain"))
"""

#: task -> the state it ends in ("success" means it ran).
TRIGGER_RULE_OUTCOMES = {
    "ok": "success",
    "bad": "failed",
    "skipped": "skipped",
    "chain": "upstream_failed",
    "all_success__ok_bad": "upstream_failed",
    "all_success__ok_skipped": "skipped",
    "all_failed__bad": "success",
    "all_failed__ok_bad": "skipped",
    "all_done__all": "success",
    "all_done_min_one_success__ok_bad": "success",
    "all_done_min_one_success__bad": "upstream_failed",
    "one_success__ok_bad": "success",
    "one_success__bad_skipped": "upstream_failed",
    "one_failed__ok_bad": "success",
    "one_failed__ok_skipped": "skipped",
    "one_done__bad_skipped": "success",
    "one_done__skipped": "skipped",
    "none_failed__ok_skipped": "success",
    "none_failed__ok_bad": "upstream_failed",
    "none_failed_min_one_success__ok_skipped": "success",
    "none_failed_min_one_success__skipped": "skipped",
    "none_failed_min_one_success__ok_bad": "upstream_failed",
    "none_skipped__ok_bad": "success",
    "none_skipped__ok_skipped": "skipped",
    "all_skipped__skipped": "success",
    "all_skipped__ok_skipped": "skipped",
    "always__upstream_failed": "success",
}


def test_every_trigger_rule_settles_each_waiting_task_as_airflow_does(world: World) -> None:
    # given a DAG where one task succeeds, one fails and one skips itself, and a task per
    # trigger rule and upstream combination below them
    world.write_dag("rules", TRIGGER_RULES_DAG)
    world.sync()
    run_id = world.trigger("rules")
    # when the scheduler runs it
    state = world.finish(world.scheduler(), "rules", run_id)
    # expect each waiting task to run, skip or be upstream_failed as its rule says
    assert world.states("rules", run_id) == TRIGGER_RULE_OUTCOMES
    tis = world.tis("rules", run_id)
    ran = [k for k, v in TRIGGER_RULE_OUTCOMES.items() if v == "success" and k != "chain"]
    assert all(tis[k].try_number == 1 for k in ran)
    assert world.xcom("rules", run_id, "always__upstream_failed") == "always__upstream_failed"
    # and the tasks that did not run never got a try
    assert {k for k, t in tis.items() if t.try_number == 0} == {
        k for k, v in TRIGGER_RULE_OUTCOMES.items() if v in ("skipped", "upstream_failed")
    } - {"skipped"}
    # and the run failed (some leaves are failed or upstream_failed)
    assert state == "failed"


def test_run_state_comes_from_the_leaves_a_failed_middle_task_with_a_successful_leaf(
    world: World,
) -> None:
    # given extract >> transform (fails) >> cleanup (all_done), cleanup being the only leaf
    world.write_dag(
        "leaves",
        """
        def fail():
            raise RuntimeError("transform broke")

        with DAG("leaves", schedule=None):
            extract = PythonOperator(task_id="extract", python_callable=lambda: 1)
            transform = PythonOperator(task_id="transform", python_callable=fail)
            cleanup = PythonOperator(
                task_id="cleanup", python_callable=lambda: "clean", trigger_rule="all_done"
            )
            extract >> transform >> cleanup
        """,
    )
    world.sync()
    run_id = world.trigger("leaves")
    # when it runs
    state = world.finish(world.scheduler(), "leaves", run_id)
    # expect the run to succeed although a task failed: only the leaf counts
    assert world.states("leaves", run_id) == {
        "extract": "success",
        "transform": "failed",
        "cleanup": "success",
    }
    assert state == "success"
    assert "transform broke" in (world.ti("leaves", run_id, "transform").last_error or "")


# --- branching and short-circuit -----------------------------------------------------------------


def test_a_branch_skips_the_other_path_and_the_skip_flows_down_to_a_join(world: World) -> None:
    # given branch -> (left >> left_more | right >> right_more) -> two joins
    world.write_dag(
        "branching",
        """
        with DAG("branching", schedule=None):
            branch = BranchPythonOperator(task_id="branch", python_callable=lambda: "left")
            left = PythonOperator(task_id="left", python_callable=lambda: "L")
            left_more = PythonOperator(task_id="left_more", python_callable=lambda: "LL")
            right = PythonOperator(task_id="right", python_callable=lambda: "R")
            right_more = PythonOperator(task_id="right_more", python_callable=lambda: "RR")
            join = PythonOperator(
                task_id="join",
                python_callable=lambda: "joined",
                trigger_rule="none_failed_min_one_success",
            )
            strict_join = PythonOperator(task_id="strict_join", python_callable=lambda: "no")
            branch >> left >> left_more
            branch >> right >> right_more
            [left_more, right_more] >> join
            [left_more, right_more] >> strict_join
        """,
    )
    world.sync()
    run_id = world.trigger("branching")
    # when the branch chooses "left"
    state = world.finish(world.scheduler(), "branching", run_id)
    # expect the right path skipped all the way down (through all_success), the join after the
    # branch to run, and the all_success join to be skipped
    assert world.states("branching", run_id) == {
        "branch": "success",
        "left": "success",
        "left_more": "success",
        "right": "skipped",
        "right_more": "skipped",
        "join": "success",
        "strict_join": "skipped",
    }
    assert world.ti("branching", run_id, "right_more").try_number == 0
    assert state == "success"


SHORT_CIRCUIT_DAG = """
with DAG("short_{mode}", schedule=None):
    gate = ShortCircuitOperator(
        task_id="gate",
        python_callable=lambda: False,
        ignore_downstream_trigger_rules={ignore},
    )
    direct = PythonOperator(task_id="direct", python_callable=lambda: "direct")
    below = PythonOperator(task_id="below", python_callable=lambda: "below")
    below_all_done = PythonOperator(
        task_id="below_all_done", python_callable=lambda: "ran", trigger_rule="all_done"
    )
    gate >> direct >> [below, below_all_done]
"""


@pytest.mark.parametrize(
    ("ignore", "below_all_done"),
    [
        pytest.param(True, "skipped", id="ignore_downstream_trigger_rules=True"),
        pytest.param(False, "success", id="ignore_downstream_trigger_rules=False"),
    ],
)
def test_a_falsy_short_circuit_skips_descendants_per_its_mode(
    world: World, ignore: bool, below_all_done: str
) -> None:
    # given gate (falsy short-circuit) >> direct >> [below, below_all_done (all_done)]
    dag_id = f"short_{str(ignore).lower()}"
    world.write_dag(dag_id, SHORT_CIRCUIT_DAG.format(mode=str(ignore).lower(), ignore=ignore))
    world.sync()
    run_id = world.trigger(dag_id)
    # when the gate returns False
    state = world.finish(world.scheduler(), dag_id, run_id)
    # expect: True skips every descendant whatever its trigger rule; False skips only the
    # direct downstream and lets the others apply their own rules
    assert world.states(dag_id, run_id) == {
        "gate": "success",
        "direct": "skipped",
        "below": "skipped",
        "below_all_done": below_all_done,
    }
    assert state == "success"


# --- mapping ------------------------------------------------------------------------------------------


MAPPING_DAG = """
with DAG("mapping_{name}", schedule=None):

    @task
    def numbers():
        return {values}

    @task
    def double(x):
        return 2 * x

    @task
    def total(values):
        return sum(values)

    total(double.expand(x=numbers()))
"""


def test_mapping_creates_one_instance_per_upstream_value(world: World) -> None:
    # given numbers() -> [3, 4, 5] mapped by double, then summed
    world.write_dag("mapping_three", MAPPING_DAG.format(name="three", values=[3, 4, 5]))
    world.sync()
    run_id = world.trigger("mapping_three")
    # when it runs
    state = world.finish(world.scheduler(), "mapping_three", run_id)
    # expect three instances with the right values, and their results gathered in order
    assert state == "success"
    assert world.states("mapping_three", run_id) == {
        "numbers": "success",
        "double[0]": "success",
        "double[1]": "success",
        "double[2]": "success",
        "total": "success",
    }
    assert [world.xcom("mapping_three", run_id, "double", i) for i in range(3)] == [6, 8, 10]
    assert world.xcom("mapping_three", run_id, "total") == 24


def test_mapping_over_an_empty_list_skips_the_task_and_its_downstream(world: World) -> None:
    world.write_dag("mapping_empty", MAPPING_DAG.format(name="empty", values=[]))
    world.sync()
    run_id = world.trigger("mapping_empty")
    state = world.finish(world.scheduler(), "mapping_empty", run_id)
    assert world.states("mapping_empty", run_id) == {
        "numbers": "success",
        "double": "skipped",
        "total": "skipped",
    }
    assert state == "success"


def test_mapping_over_too_long_a_list_fails_with_a_clear_message(world: World) -> None:
    # given a maximum map length of 4 and a list of 5
    world.write_dag("mapping_long", MAPPING_DAG.format(name="long", values=[1, 2, 3, 4, 5]))
    world.sync()
    run_id = world.trigger("mapping_long")
    state = world.finish(world.scheduler(max_map_length=4), "mapping_long", run_id)
    assert world.states("mapping_long", run_id) == {
        "numbers": "success",
        "double": "failed",
        "total": "upstream_failed",
    }
    assert state == "failed"
    assert world.ti("mapping_long", run_id, "double").last_error == (
        "task 'double' would expand into 5 instances, more than the maximum map length 4 "
        "(setting core.max_map_length)"
    )


def test_one_failed_mapped_instance_fails_the_gathering_task_but_not_its_siblings(
    world: World,
) -> None:
    # given a mapped task that fails for one of its three values
    world.write_dag(
        "mapping_partial",
        """
        with DAG("mapping_partial", schedule=None):

            @task
            def numbers():
                return [1, 2, 3]

            @task
            def invert(x):
                if x == 2:
                    raise ValueError("2 is not welcome")
                return -x

            @task
            def total(values):
                return sum(values)

            total(invert.expand(x=numbers()))
        """,
    )
    world.sync()
    run_id = world.trigger("mapping_partial")
    state = world.finish(world.scheduler(), "mapping_partial", run_id)
    # expect the other instances to succeed and the task gathering them to be upstream_failed
    assert world.states("mapping_partial", run_id) == {
        "numbers": "success",
        "invert[0]": "success",
        "invert[1]": "failed",
        "invert[2]": "success",
        "total": "upstream_failed",
    }
    assert state == "failed"
    assert [world.xcom("mapping_partial", run_id, "invert", i) for i in (0, 2)] == [-1, -3]


def test_a_mapped_task_group_runs_each_index_through_the_group(world: World) -> None:
    # given a group (add_one >> double) expanded over [1, 2, 3], then a task gathering results
    world.write_dag(
        "mapped_group",
        """
        with DAG("mapped_group", schedule=None):

            @task
            def add_one(x):
                return x + 1

            @task
            def double(x):
                return 2 * x

            @task_group
            def pipeline(x):
                return double(add_one(x))

            @task
            def gather(values):
                return sorted(values)

            gather(pipeline.expand(x=[1, 2, 3]))
        """,
    )
    world.sync()
    run_id = world.trigger("mapped_group")
    state = world.finish(world.scheduler(), "mapped_group", run_id)
    # expect every task of the group expanded three times, each index fed by its own upstream
    assert state == "success"
    states = world.states("mapped_group", run_id)
    assert states == {
        **{f"pipeline.add_one[{i}]": "success" for i in range(3)},
        **{f"pipeline.double[{i}]": "success" for i in range(3)},
        "gather": "success",
    }
    assert [world.xcom("mapped_group", run_id, "pipeline.double", i) for i in range(3)] == [
        4,
        6,
        8,
    ]
    assert world.xcom("mapped_group", run_id, "gather") == [4, 6, 8]


GROUP_FAILURE_DAG = """
with DAG("group_failure", schedule=None):

    @task
    def numbers():
        return [1, 2, 3]

    @task
    def check(x):
        if x == 2:
            raise ValueError("2 fails the check")
        return x

    @task
    def use(x):
        return x * 10

    @task_group
    def per_item(x):
        return use(check(x))

    per_item.expand(x={source})
"""


@pytest.mark.parametrize("source", ["[1, 2, 3]", "numbers()"], ids=["literal", "from_xcom"])
def test_a_failure_in_a_mapped_task_group_stays_in_its_own_index(world: World, source: str) -> None:
    # given a group (check >> use) expanded over [1, 2, 3] (a literal, or an upstream's result)
    # whose check fails for 2
    world.write_dag("group_failure", GROUP_FAILURE_DAG.format(source=source))
    world.sync()
    run_id = world.trigger("group_failure")
    state = world.finish(world.scheduler(), "group_failure", run_id)
    # expect only index 1 of the group's second task to be upstream_failed
    states = world.states("group_failure", run_id)
    assert states.pop("numbers", None) == ("success" if source == "numbers()" else None)
    assert states == {
        "per_item.check[0]": "success",
        "per_item.check[1]": "failed",
        "per_item.check[2]": "success",
        "per_item.use[0]": "success",
        "per_item.use[1]": "upstream_failed",
        "per_item.use[2]": "success",
    }
    assert state == "failed"
    assert world.xcom("group_failure", run_id, "per_item.use", 2) == 30
