"""The scheduler loop: creates runs, decides what each task instance does, queues work, applies
what executors report. Event-driven: it wakes when an executor has something to say, and
otherwise only for its next timer (a schedule tick, a retry, a run timeout) or the slow poll
that picks up changes made by others (a triggered run, a cleared task).

One step (:meth:`Scheduler.step`) is one transaction:

1. apply executor events (a try started, finished, or was lost) with compare-and-set writes;
2. create the scheduled runs that are due, and start queued runs within ``max_active_runs``;
3. examine only the runs that changed: every waiting task instance gets a pure decision
   (:func:`~tradewind.scheduler.decisions.decide_task`) that is written at once, repeated until
   nothing more changes (so a chain of skips or empty tasks settles in one step), then the
   run's state is rolled up from its leaves;
4. admit scheduled instances under pools and concurrency limits, mark them queued, commit, and
   hand their workloads to the executor in one batch.

All state changes go through :mod:`tradewind.db.state_changes`. Decisions never touch the
database; this module does the I/O around them.
"""

from __future__ import annotations

import heapq
import logging
import os
import select
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tradewind.db import backfills as db_backfills
from tradewind.db import dags as db_dags
from tradewind.db import jobs as db_jobs
from tradewind.db import pools as db_pools
from tradewind.db import runs as db_runs
from tradewind.db import task_instances as db_tis
from tradewind.db.engine import session_scope
from tradewind.db.models import Backfill, Dag, DagRun, TaskInstance
from tradewind.db.state_changes import transition_run, transition_task, transition_tasks
from tradewind.executors.workload import (
    EventKind,
    ExecuteTask,
    ExecutorEvent,
    RunSpec,
    TaskInstanceKey,
    default_log_path,
)
from tradewind.scheduler import decisions as d
from tradewind.scheduler import loading
from tradewind.serialization import SerializedDAG, deserialize_dag
from tradewind.state import ACTIVE, FINISHED, RunState, TaskState
from tradewind.timetables import DataInterval

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from tradewind.executors.base import BaseExecutor

log = logging.getLogger("tradewind.scheduler")

RunKey = tuple[str, str]
_WAITING = (TaskState.CREATED, TaskState.UP_FOR_RETRY, TaskState.UP_FOR_RESCHEDULE)
_MAX_ROUNDS = 200
_IN_FLIGHT = frozenset(
    {TaskState.SCHEDULED, TaskState.QUEUED, TaskState.RUNNING, TaskState.RESTARTING}
)
_PROBE_INTERVAL = 0.02


def utcnow() -> datetime:
    from tradewind.sdk.timezone import utcnow as _now

    return _now()


@dataclass(frozen=True)
class SchedulerOptions:
    """How the loop behaves; the CLI builds this from the settings."""

    #: seconds between looks for changes made by others (the safety net, not the heartbeat of
    #: task progress, which is event-driven)
    poll_interval: float = 1.0
    max_map_length: int = 1024
    max_active_runs_per_dag: int = 16
    max_active_tasks_per_dag: int = 16
    log_folder: Path = Path("logs")
    #: only these DAGs (``dags test`` runs one); None means all
    dag_ids: frozenset[str] | None = None
    #: create runs from timetables (off for ``dags test``)
    create_scheduled_runs: bool = True
    job_heartbeat: float = 5.0


@dataclass
class RunFinished:
    """A run the scheduler finished (given to ``on_run_finished``)."""

    dag_id: str
    run_id: str
    state: RunState
    reason: str


@dataclass(order=True)
class _Timer:
    when: datetime
    run: RunKey = field(compare=False)


class Scheduler:
    """See the module docstring. Single-threaded by design (it forks executor workers)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        executor: BaseExecutor,
        options: SchedulerOptions | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        on_run_finished: Callable[[RunFinished], None] | None = None,
    ) -> None:
        self._sf = session_factory
        self.executor = executor
        self.options = options or SchedulerOptions()
        self.clock = clock
        self.on_run_finished = on_run_finished
        self.job_id: int | None = None
        self._views: dict[int, SerializedDAG] = {}
        # run -> task ids that changed (None: look at the whole run)
        self._dirty: dict[RunKey, set[str] | None] = {}
        self._probe: Callable[[], int] | None = None
        self._probe_value: int | None = None
        self._timers: list[_Timer] = []
        self._timer_set: set[tuple[datetime, RunKey]] = set()
        self._dag_timer: datetime | None = None
        self._computed: dict[str, int | None] = {}
        self._next_poll = 0.0
        self._last_poll_at: datetime | None = None
        self._next_heartbeat = 0.0
        self._schedulable = True
        self._callbacks: list[Any] = []
        self._killing: set[TaskInstanceKey] = set()
        #: dag_id -> runs holding an instance back for depends_on_past, with the task ids of the
        #: previous run they wait for: a change there is the only thing that can release them
        self._past_waiters: dict[str, dict[RunKey, set[str]]] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Register the job, recover work a dead scheduler left behind, start the executor."""
        now = self.clock()
        with session_scope(self._sf) as s:
            job = db_jobs.start_job(
                s, "scheduler", hostname=socket.gethostname(), pid=os.getpid(), now=now
            )
            self.job_id = job.id
            self._recover(s, now)
        self.executor.start()
        self._probe = self._make_probe()

    def stop(self) -> None:
        """Stop the executor (running tries are reported lost) and end the job."""
        self.executor.end()
        for event in self.executor.process_io(0):
            with session_scope(self._sf) as s:
                self._apply_events(s, [event], self.clock())
        if self.job_id is not None:
            with session_scope(self._sf) as s:
                db_jobs.end_job(s, self.job_id, now=self.clock())

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Run steps until ``should_stop()`` is true."""
        while not should_stop():
            wait = self.step()
            if wait > 0 and not should_stop():
                self._wait(wait)

    def _wait(self, seconds: float) -> None:
        """Sleep until the executor has news, a timer is due, or (SQLite) another process
        committed something — a triggered run is picked up within ~20 ms, not a poll."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                ready, _, _ = select.select(
                    [self.executor.fileno()], [], [], min(left, _PROBE_INTERVAL)
                )
            except InterruptedError:
                return
            if ready or self._external_change():
                return

    def _external_change(self) -> bool:
        if self._probe is None:
            return False
        value = self._probe()
        changed = self._probe_value is not None and value != self._probe_value
        self._probe_value = value
        if changed:
            self._next_poll = 0.0
        return changed

    def _make_probe(self) -> Callable[[], int] | None:
        """``PRAGMA data_version`` on a connection of its own: it changes whenever another
        connection commits. (PostgreSQL relies on the poll; LISTEN/NOTIFY can come later.)"""
        engine = self._sf.kw.get("bind")
        if engine is None or engine.dialect.name != "sqlite":
            return None
        raw = engine.raw_connection()

        def probe() -> int:
            cursor = raw.cursor()
            try:
                cursor.execute("PRAGMA data_version")
                return int(cursor.fetchone()[0])
            finally:
                cursor.close()

        return probe

    # -- one step -------------------------------------------------------------------------------
    def step(self) -> float:
        """Do one step (see the module docstring); returns how long to sleep before the next."""
        now = self.clock()
        events = self.executor.process_io(0)
        workloads: list[ExecuteTask] = []
        with session_scope(self._sf) as s:
            if events:
                self._apply_events(s, events, now)
            mono = time.monotonic()
            if mono >= self._next_poll or self._due(self._dag_timer, now):
                self._poll(s, now)
                self._next_poll = mono + self.options.poll_interval
            self._fire_timers(now)
            self._examine(s, now)
            workloads = self._queue_admitted(s, now)
            if self.job_id is not None and mono >= self._next_heartbeat:
                db_jobs.heartbeat(s, self.job_id, now=now)
                self._next_heartbeat = mono + self.options.job_heartbeat
        if workloads:
            self.executor.submit(workloads)
        self._reap_callbacks()
        return self._sleep_for(now)

    @staticmethod
    def _due(when: datetime | None, now: datetime) -> bool:
        return when is not None and when <= now

    def _sleep_for(self, now: datetime) -> float:
        if self._dirty:
            return 0.0
        wait = max(0.0, self._next_poll - time.monotonic())
        for when in (self._timers[0].when if self._timers else None, self._dag_timer):
            if when is not None:
                wait = min(wait, max(0.0, (when - now).total_seconds()))
        return wait

    def _mark(self, run: RunKey, task_ids: Iterable[str] | None = None) -> None:
        """Look at ``run`` again: only around ``task_ids``, or all of it (None)."""
        if task_ids is None:
            self._dirty[run] = None
        elif run not in self._dirty:
            self._dirty[run] = set(task_ids)
        else:
            current = self._dirty[run]
            if current is not None:
                current.update(task_ids)

    def _wake_past_waiters(self, dag_id: str, task_ids: Iterable[str]) -> None:
        """Task instances of ``dag_id`` changed: look again at the runs whose depends_on_past
        waits on one of those tasks (nothing in their own run would wake them)."""
        waiters = self._past_waiters.get(dag_id)
        if not waiters:
            return
        changed = set(task_ids)
        for run_key, wanted in list(waiters.items()):
            if wanted & changed:
                del waiters[run_key]
                self._mark(run_key)

    def _add_timer(self, when: datetime, run: RunKey) -> None:
        # A run is examined again and again while it waits: one timer per moment is enough.
        if (when, run) not in self._timer_set:
            self._timer_set.add((when, run))
            heapq.heappush(self._timers, _Timer(when, run))

    def _fire_timers(self, now: datetime) -> None:
        while self._timers and self._timers[0].when <= now:
            timer = heapq.heappop(self._timers)
            self._timer_set.discard((timer.when, timer.run))
            self._mark(timer.run)

    def _view(self, s: Session, version_id: int | None) -> SerializedDAG:
        if version_id is None:
            raise LookupError("run has no DAG version")
        view = self._views.get(version_id)
        if view is None:
            view = deserialize_dag(db_dags.get_version(s, version_id).document)
            self._views[version_id] = view
        return view

    def _allowed(self, dag_id: str) -> bool:
        return self.options.dag_ids is None or dag_id in self.options.dag_ids

    # -- polling: runs others created or changed, and due schedules -----------------------------
    def _poll(self, s: Session, now: datetime) -> None:
        if self.options.create_scheduled_runs:
            self._schedule_dags(s, now)
        self._start_queued_runs(s, now)
        # Runs someone else touched (cleared tasks, marked states) since the last poll.
        q = sa.select(DagRun.dag_id, DagRun.run_id).where(DagRun.state == RunState.RUNNING)
        if self._last_poll_at is not None:
            q = q.where(DagRun.updated_at >= self._last_poll_at)
        for dag_id, run_id in s.execute(q):
            if self._allowed(dag_id):
                self._mark((dag_id, run_id))
        self._last_poll_at = now
        self._schedulable = True
        self._kill_restarting(s)

    def _schedule_dags(self, s: Session, now: datetime) -> None:
        self._dag_timer = None
        active, _ = _active_runs(s, [RunState.QUEUED, RunState.RUNNING])
        for dag in db_dags.list_dags(s, paused=False):
            if not self._allowed(dag.dag_id) or dag.latest_version_id is None:
                continue
            due = self._due(dag.next_dagrun_run_after, now)
            if self._computed.get(dag.dag_id, -1) == dag.latest_version_id and not due:
                if dag.next_dagrun_run_after is not None:
                    self._dag_timer = min(
                        filter(None, (self._dag_timer, dag.next_dagrun_run_after))
                    )
                continue
            view = self._view(s, dag.latest_version_id)
            last = db_runs.get_latest_run(s, dag.dag_id, run_types=["scheduled"])
            last_interval = (
                DataInterval(last.data_interval_start, last.data_interval_end)
                if last is not None
                and last.data_interval_start is not None
                and last.data_interval_end is not None
                else None
            )
            plan = d.next_runs_to_create(
                timetable=view.timetable,
                start_date=view.start_date,
                end_date=view.end_date,
                catchup=view.catchup,
                last_automated_data_interval=last_interval,
                now=now,
                active_runs=active.get(dag.dag_id, 0),
                max_active_runs=view.max_active_runs or self.options.max_active_runs_per_dag,
                is_paused=False,
            )
            for info in plan.to_create:
                run_id = d.run_id_for("scheduled", info.logical_date)
                db_runs.create_run(
                    s,
                    view,
                    run_id=run_id,
                    run_type="scheduled",
                    run_after=info.run_after,
                    now=now,
                    dag_version_id=dag.latest_version_id,
                    logical_date=info.logical_date,
                    data_interval=(info.data_interval.start, info.data_interval.end),
                )
                log.info("created run %s of %s", run_id, dag.dag_id)
            nxt = plan.next_info
            db_dags.set_next_dagrun(
                s,
                dag.dag_id,
                logical_date=nxt.logical_date if nxt else None,
                data_interval_start=nxt.data_interval.start if nxt else None,
                data_interval_end=nxt.data_interval.end if nxt else None,
                run_after=nxt.run_after if nxt else None,
            )
            self._computed[dag.dag_id] = dag.latest_version_id
            if nxt is not None and (self._dag_timer is None or nxt.run_after < self._dag_timer):
                self._dag_timer = nxt.run_after

    def _start_queued_runs(self, s: Session, now: datetime) -> None:
        queued = list(
            s.scalars(
                sa.select(DagRun)
                .where(DagRun.state == RunState.QUEUED)
                .order_by(DagRun.run_after, DagRun.id)
            )
        )
        if not queued:
            return
        running, running_backfill = _active_runs(s, [RunState.RUNNING])
        dag_ids = {run.dag_id for run in queued}
        paused = set(
            s.scalars(sa.select(Dag.dag_id).where(Dag.dag_id.in_(dag_ids), Dag.is_paused.is_(True)))
        )
        backfill_ids = {r.backfill_id for r in queued if r.backfill_id is not None}
        backfills = (
            {b.id: b for b in s.scalars(sa.select(Backfill).where(Backfill.id.in_(backfill_ids)))}
            if backfill_ids
            else {}
        )
        for run in queued:
            if not self._allowed(run.dag_id):
                continue
            backfill = backfills.get(run.backfill_id) if run.backfill_id is not None else None
            if backfill is not None:
                # A backfill has its own limit and pause switch; the DAG's do not apply.
                if backfill.is_paused or backfill.completed_at is not None:
                    continue
                if running_backfill.get(backfill.id, 0) >= backfill.max_active_runs:
                    continue
            else:
                if run.dag_id in paused:
                    continue  # a paused DAG starts nothing new (as in Airflow)
                view = self._view(s, run.dag_version_id)
                limit = view.max_active_runs or self.options.max_active_runs_per_dag
                if running.get(run.dag_id, 0) >= limit:
                    continue
            if transition_run(
                s, run.id, RunState.QUEUED, RunState.RUNNING, now=now,
                start_date=run.start_date or now,
            ):  # fmt: skip
                if backfill is not None:
                    running_backfill[backfill.id] = running_backfill.get(backfill.id, 0) + 1
                else:
                    running[run.dag_id] = running.get(run.dag_id, 0) + 1
                self._mark((run.dag_id, run.run_id))

    # -- examining runs -------------------------------------------------------------------------
    def _examine(self, s: Session, now: datetime) -> None:
        rounds = 0
        while self._dirty and rounds < _MAX_ROUNDS:
            dirty, self._dirty = self._dirty, {}
            for run_key, changed_ids in dirty.items():
                self._examine_run(s, run_key, now, changed_ids)
            rounds += 1

    def _examine_run(
        self, s: Session, run_key: RunKey, now: datetime, changed_ids: set[str] | None = None
    ) -> None:
        run = s.scalar(
            sa.select(DagRun).where(DagRun.dag_id == run_key[0], DagRun.run_id == run_key[1])
        )
        if run is None or run.state is not RunState.RUNNING:
            return
        view = self._view(s, run.dag_version_id)
        tis = _load_tis(s, run.dag_id, run.run_id)
        snaps = {(ti.task_id, ti.map_index): loading.snapshot(ti) for ti in tis}
        by_task: dict[str, list[tuple[str, int]]] = {}
        for key in snaps:
            by_task.setdefault(key[0], []).append(key)
        lengths = loading.map_lengths(s, run, tis)
        run_snap = loading.run_snapshot(s, run)
        decisions: dict[tuple[str, int], d.TaskDecision] = {}
        changed: set[str] = set()
        waiting = [ti for ti in tis if ti.state in _WAITING]
        if changed_ids is not None:
            # Only what the change can affect: the changed tasks and their direct downstreams.
            relevant = set(changed_ids)
            for task_id in changed_ids:
                task = view.task_dict.get(task_id)
                if task is not None:
                    relevant.update(task.downstream_task_ids)
            near = [ti for ti in waiting if ti.task_id in relevant]
            in_flight = any(ti.state in _IN_FLIGHT for ti in tis)
            # Nothing else can move the run: decide everything (finds deadlocks, timeouts).
            waiting = near if in_flight or len(near) == len(waiting) else waiting
        for ti in waiting:
            task = view.task_dict.get(ti.task_id)
            if task is None:
                continue
            ups = loading.upstream_snapshots(view, task, ti.map_index, snaps, by_task)
            wants_past = task.depends_on_past or task.wait_for_downstream
            prev = loading.previous_run(s, run, task) if wants_past else None
            decision = d.decide_task(
                task,
                snaps[(ti.task_id, ti.map_index)],
                ups,
                now=now,
                run=run_snap,
                prev_run=prev,
                upstream_lengths=lengths,
                max_map_length=self.options.max_map_length,
            )
            decisions[(ti.task_id, ti.map_index)] = decision
            if self._apply_decision(s, run, ti, decision, now):
                changed.add(ti.task_id)
                target = decision.target_state
                if target is not None:
                    key = (ti.task_id, ti.map_index)
                    bump = (
                        1
                        if target is TaskState.SCHEDULED
                        and ti.state is not TaskState.UP_FOR_RESCHEDULE
                        else 0
                    )
                    snaps[key] = replace(
                        snaps[key], state=target, try_number=snaps[key].try_number + bump
                    )
        self._note_past_waits(view, run_key, decisions)
        if changed:
            # Newly expanded or finished tasks: look again at the run in the next round.
            self._mark(run_key, changed)
            self._wake_past_waiters(run.dag_id, changed)
            return
        rollup = d.run_state_from_tasks(
            snaps.values(),
            dag=view,
            now=now,
            run_start=run.start_date,
            dagrun_timeout=view.dagrun_timeout,
            decisions=decisions,
        )
        if rollup.timeout_at is not None and not rollup.finished:
            self._add_timer(rollup.timeout_at, run_key)
        if rollup.finished:
            self._finish_run(s, run, view, rollup, snaps, now)

    def _note_past_waits(
        self, view: SerializedDAG, run_key: RunKey, decisions: dict[tuple[str, int], d.TaskDecision]
    ) -> None:
        wanted: set[str] = set()
        for (task_id, _), decision in decisions.items():
            if any(b.kind is d.BlockerKind.DEPENDS_ON_PAST for b in decision.blockers):
                task = view.task_dict[task_id]
                wanted.add(task_id)
                if task.wait_for_downstream:
                    wanted.update(task.downstream_task_ids)
        waiters = self._past_waiters.setdefault(run_key[0], {})
        if wanted:
            waiters[run_key] = wanted
        else:
            waiters.pop(run_key, None)

    def _apply_decision(
        self, s: Session, run: DagRun, ti: TaskInstance, decision: d.TaskDecision, now: datetime
    ) -> bool:
        action = decision.action
        A = d.TaskAction
        if action is A.WAIT or action is A.NONE:
            if decision.wake_at is not None:
                self._add_timer(decision.wake_at, (run.dag_id, run.run_id))
            return False
        if action is A.SCHEDULE:
            bump = 0 if ti.state is TaskState.UP_FOR_RESCHEDULE else 1
            won = transition_task(
                s, ti.id, ti.state, TaskState.SCHEDULED, now=now,
                try_number=ti.try_number + bump, scheduled_at=now,
            )  # fmt: skip
            self._schedulable = self._schedulable or won
            return won
        if action is A.EXPAND:
            assert decision.map_length is not None
            db_tis.expand_mapped(
                s, run.dag_id, run.run_id, ti.task_id, decision.map_length, now=now
            )
            return True
        target = {
            A.SKIP: TaskState.SKIPPED,
            A.UPSTREAM_FAILED: TaskState.UPSTREAM_FAILED,
            A.SUCCEED: TaskState.SUCCESS,
            A.FAIL: TaskState.FAILED,
        }[action]
        fields: dict[str, Any] = {"end_date": now}
        if action is A.SUCCEED:
            fields.update(start_date=now, duration=0.0)
        if action is A.FAIL:
            fields["last_error"] = decision.reason
        return transition_task(s, ti.id, ti.state, target, now=now, **fields)

    def _finish_run(
        self,
        s: Session,
        run: DagRun,
        view: SerializedDAG,
        rollup: d.RunDecision,
        snaps: dict[tuple[str, int], d.TISnapshot],
        now: datetime,
    ) -> None:
        if rollup.to_skip:
            skip_ids = []
            for task_id, map_index in rollup.to_skip:
                snap = snaps[(task_id, map_index)]
                if snap.state in ACTIVE or snap.state is TaskState.RUNNING:
                    key = TaskInstanceKey(
                        run.dag_id, run.run_id, task_id, map_index, snap.try_number
                    )
                    self.executor.kill(key)
                ti = db_tis.get_ti_by_key(s, run.dag_id, run.run_id, task_id, map_index)
                skip_ids.append((ti.id, ti.state))
            for ti_id, state in skip_ids:
                if state not in FINISHED:
                    transition_task(
                        s, ti_id, state, TaskState.SKIPPED, now=now, end_date=now,
                        last_error="the DAG run timed out",
                    )  # fmt: skip
            self._wake_past_waiters(run.dag_id, {task_id for task_id, _ in rollup.to_skip})
        won = transition_run(s, run.id, RunState.RUNNING, rollup.state, now=now, end_date=now)
        if not won:
            return
        self._past_waiters.get(run.dag_id, {}).pop((run.dag_id, run.run_id), None)
        log.info(
            "run %s of %s finished: %s (%s)", run.run_id, run.dag_id, rollup.state, rollup.reason
        )
        if run.backfill_id is not None:
            self._maybe_complete_backfill(s, run.backfill_id, now)
        # A finished run may let the DAG create its next one (max_active_runs).
        self._computed.pop(run.dag_id, None)
        self._next_poll = 0.0
        self._start_callbacks(view, run, rollup)
        if self.on_run_finished is not None:
            self.on_run_finished(RunFinished(run.dag_id, run.run_id, rollup.state, rollup.reason))

    def _maybe_complete_backfill(self, s: Session, backfill_id: int, now: datetime) -> None:
        unfinished = s.scalar(
            sa.select(sa.func.count())
            .select_from(DagRun)
            .where(
                DagRun.backfill_id == backfill_id,
                DagRun.state.in_([RunState.QUEUED, RunState.RUNNING]),
            )
        )
        if not unfinished and db_backfills.complete_backfill(s, backfill_id, now=now):
            log.info("backfill %s completed", backfill_id)

    # -- DAG callbacks (run outside the scheduler, in a child process) -------------------------
    def _start_callbacks(self, view: SerializedDAG, run: DagRun, rollup: d.RunDecision) -> None:
        wanted = "success" if rollup.state is RunState.SUCCESS else "failure"
        if not getattr(view, f"has_on_{wanted}_callback", False):
            return
        from tradewind.scheduler.callbacks import start_dag_callback

        self._callbacks.append(
            start_dag_callback(
                fileloc=view.fileloc,
                dag_id=run.dag_id,
                run_id=run.run_id,
                kind=wanted,
                reason=rollup.callback_reason or rollup.reason,
                log_folder=self.options.log_folder,
            )
        )

    def _reap_callbacks(self) -> None:
        self._callbacks = [p for p in self._callbacks if p.poll() is None]

    def wait_for_callbacks(self, timeout: float | None = None) -> bool:
        """Wait for the DAG callbacks started so far to finish (``dags test`` does, so that
        their effects and logs are there when it returns); False if some still run after
        ``timeout`` seconds."""
        import subprocess

        deadline = None if timeout is None else time.monotonic() + timeout
        for proc in self._callbacks:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                proc.wait(left)
            except subprocess.TimeoutExpired:
                return False
        self._reap_callbacks()
        return True

    # -- queueing -------------------------------------------------------------------------------
    def _queue_admitted(self, s: Session, now: datetime) -> list[ExecuteTask]:
        if not self._schedulable:
            return []
        slots = self.executor.slots_available()
        if slots <= 0:
            return []
        # The highest-priority few, not every scheduled instance: a fan-out of thousands
        # would otherwise be re-read on every step.
        scheduled = db_tis.list_tis_in_states(
            s, [TaskState.SCHEDULED], dag_ids=self.options.dag_ids, limit=max(64, slots * 4)
        )
        if not scheduled:
            self._schedulable = False
            return []
        runs = self._runs_for(s, {(ti.dag_id, ti.run_id) for ti in scheduled})
        pools = {p.pool: p.slots for p in db_pools.list_pools(s)}
        occupied = db_pools.occupied_slots(s)
        pool_free = {name: total - occupied.get(name, 0) for name, total in pools.items()}
        run_active = {
            (k[0], k[1]): v
            for k, v in db_tis.count_tis(s, ["dag_id", "run_id"], states=ACTIVE).items()
        }
        run_limit: dict[tuple[str, str], int] = {}
        task_limit_dag: dict[tuple[str, str], int] = {}
        task_limit_run: dict[tuple[str, str], int] = {}
        candidates = []
        for ti in scheduled:
            run = runs.get((ti.dag_id, ti.run_id))
            if run is None:
                continue
            view = self._view(s, run.dag_version_id)
            task = view.task_dict.get(ti.task_id)
            run_limit[(ti.dag_id, ti.run_id)] = (
                view.max_active_tasks or self.options.max_active_tasks_per_dag
            )
            if task is not None and task.max_active_tis_per_dag:
                task_limit_dag[(ti.dag_id, ti.task_id)] = task.max_active_tis_per_dag
            if task is not None and task.max_active_tis_per_dagrun:
                # admit() looks this limit up by (dag_id, task_id); the count is per run.
                task_limit_run[(ti.dag_id, ti.task_id)] = task.max_active_tis_per_dagrun
            candidates.append(
                d.Candidate(
                    dag_id=ti.dag_id,
                    run_id=ti.run_id,
                    task_id=ti.task_id,
                    map_index=ti.map_index,
                    priority_weight=ti.priority_weight,
                    logical_date=run.logical_date,
                    pool=ti.pool,
                    pool_slots=ti.pool_slots,
                    ref=ti,
                )
            )
        per_dag = per_run = None
        if task_limit_dag:
            per_dag = {
                (k[0], k[1]): v
                for k, v in db_tis.count_tis(s, ["dag_id", "task_id"], states=ACTIVE).items()
            }
        if task_limit_run:
            per_run = {
                (k[0], k[1], k[2]): v
                for k, v in db_tis.count_tis(
                    s, ["dag_id", "run_id", "task_id"], states=ACTIVE
                ).items()
            }
        result = d.admit(
            candidates,
            pool_free=pool_free,
            pool_total=pools,
            executor_slots=slots,
            run_active=run_active,
            run_limit=run_limit,
            task_active_per_dag=per_dag,
            task_limit_per_dag=task_limit_dag or None,
            task_active_per_run=per_run,
            task_limit_per_run=task_limit_run or None,
        )
        if not result.admitted:
            self._schedulable = False
            return []
        chosen = {c.ref.id: c.ref for c in result.admitted}
        won = transition_tasks(
            s, list(chosen), TaskState.SCHEDULED, TaskState.QUEUED, now=now, queued_at=now
        )
        workloads = []
        for ti_id in won:
            ti = chosen[ti_id]
            run = runs[(ti.dag_id, ti.run_id)]
            workloads.append(self._workload(s, ti, run))
        # Whatever was held waits for a slot to free up (an executor event) or the next poll.
        self._schedulable = len(result.admitted) < len(candidates) and bool(won)
        return workloads

    def _runs_for(self, s: Session, keys: set[RunKey]) -> dict[RunKey, DagRun]:
        out: dict[RunKey, DagRun] = {}
        by_dag: dict[str, list[str]] = {}
        for dag_id, run_id in keys:
            by_dag.setdefault(dag_id, []).append(run_id)
        for dag_id, run_ids in by_dag.items():
            for run in s.scalars(
                sa.select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id.in_(run_ids))
            ):
                if run.state is RunState.RUNNING:
                    out[(run.dag_id, run.run_id)] = run
        return out

    def _workload(self, s: Session, ti: TaskInstance, run: DagRun) -> ExecuteTask:
        version_id = ti.dag_version_id or run.dag_version_id
        assert version_id is not None
        view = self._view(s, version_id)
        task = view.task_dict[ti.task_id]
        key = TaskInstanceKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
        timeout = task.execution_timeout
        return ExecuteTask(
            key=key,
            ti_id=ti.id,
            dag_version_id=version_id,
            fileloc=view.fileloc or "",
            run=RunSpec(
                run_type=run.run_type,
                logical_date=run.logical_date,
                data_interval_start=run.data_interval_start,
                data_interval_end=run.data_interval_end,
                conf=dict(run.conf or {}),
                start_date=run.start_date,
            ),
            max_tries=ti.max_tries,
            queue=ti.queue,
            pool=ti.pool,
            priority=ti.priority_weight,
            executor_config=dict(task.executor_config or {}),
            log_path=str(default_log_path(self.options.log_folder, key)),
            execution_timeout=timeout.total_seconds() if timeout is not None else None,
        )

    # -- executor events ------------------------------------------------------------------------
    def _apply_events(self, s: Session, events: list[ExecutorEvent], now: datetime) -> None:
        for event in events:
            key = event.key
            if event.kind is EventKind.STARTED:
                continue
            ti = s.scalar(
                sa.select(TaskInstance).where(
                    TaskInstance.dag_id == key.dag_id,
                    TaskInstance.run_id == key.run_id,
                    TaskInstance.task_id == key.task_id,
                    TaskInstance.map_index == key.map_index,
                )
            )
            if ti is None or ti.try_number != key.try_number:
                continue  # cleared or re-run meanwhile: the report is stale
            run_key = (key.dag_id, key.run_id)
            touched = {key.task_id}
            self._killing.discard(key)
            if ti.state is TaskState.RESTARTING:
                self._restart(s, ti, now)
            elif event.kind is EventKind.FINISHED and event.state is not None:
                self._finish_try(s, ti, event, now)
                touched.update(self._skip_downstream(s, ti, event.skipped_task_ids, now))
            else:
                self._lose_try(s, ti, event.error or "the task process was lost", now)
            self._schedulable = True
            self._mark(run_key, touched)
            self._wake_past_waiters(key.dag_id, touched)

    def _finish_try(
        self, s: Session, ti: TaskInstance, event: ExecutorEvent, now: datetime
    ) -> None:
        assert event.state is not None  # FINISHED events carry the outcome
        state = TaskState(event.state)
        end = event.end_date or now
        fields: dict[str, Any] = {"end_date": end}
        start = event.start_date or ti.start_date
        if start is not None:
            fields["duration"] = max(0.0, (end - start).total_seconds())
        if event.rendered_fields is not None:
            fields["rendered_fields"] = event.rendered_fields
        if event.error:
            fields["last_error"] = event.error
        if state is TaskState.UP_FOR_RETRY:
            # On the scheduler's clock, not the worker's end_date: the timer is compared with
            # this clock, and a worker's clock may be skewed (or another host's).
            fields["next_retry_at"] = self._retry_at(s, ti, now)
        transition_task(
            s, ti.id, [TaskState.RUNNING, TaskState.QUEUED], state, now=now,
            where={"try_number": ti.try_number}, **fields,
        )  # fmt: skip

    def _lose_try(self, s: Session, ti: TaskInstance, error: str, now: datetime) -> None:
        if ti.state not in (TaskState.QUEUED, TaskState.RUNNING):
            return
        outcome = d.outcome_after_failure(ti.try_number, ti.max_tries, fail_fast_error=False)
        fields: dict[str, Any] = {"end_date": now, "last_error": error}
        if outcome.state is TaskState.UP_FOR_RETRY:
            fields["next_retry_at"] = self._retry_at(s, ti, now)
        log.warning(
            "task %s/%s/%s try %s lost: %s", ti.dag_id, ti.run_id, ti.task_id, ti.try_number, error
        )
        transition_task(
            s, ti.id, [TaskState.QUEUED, TaskState.RUNNING], outcome.state, now=now,
            where={"try_number": ti.try_number}, **fields,
        )  # fmt: skip

    def _restart(self, s: Session, ti: TaskInstance, now: datetime) -> None:
        """A try cleared while it ran has stopped: the instance runs again, with its retries
        counted afresh (as a clear of a finished instance does)."""
        run = s.scalar(
            sa.select(DagRun).where(DagRun.dag_id == ti.dag_id, DagRun.run_id == ti.run_id)
        )
        retries = 0
        if run is not None:
            task = self._view(s, ti.dag_version_id or run.dag_version_id).task_dict.get(ti.task_id)
            retries = int(getattr(task, "retries", 0) or 0)
        transition_task(
            s, ti.id, TaskState.RESTARTING, TaskState.CREATED, now=now,
            max_tries=ti.try_number + retries, start_date=None, end_date=None, duration=None,
            queued_at=None, scheduled_at=None, next_retry_at=None, hostname=None, pid=None,
        )  # fmt: skip

    def _kill_restarting(self, s: Session) -> None:
        """Stop the tries of instances someone cleared while they ran."""
        for ti in db_tis.list_tis_in_states(
            s, [TaskState.RESTARTING], dag_ids=self.options.dag_ids
        ):
            key = TaskInstanceKey(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
            if key not in self._killing:
                self._killing.add(key)
                log.info(
                    "stopping %s/%s/%s: it was cleared while running",
                    key.dag_id,
                    key.run_id,
                    key.task_id,
                )
                self.executor.kill(key)

    def _retry_at(self, s: Session, ti: TaskInstance, end: datetime) -> datetime:
        run = s.scalar(
            sa.select(DagRun).where(DagRun.dag_id == ti.dag_id, DagRun.run_id == ti.run_id)
        )
        assert run is not None
        task = self._view(s, ti.dag_version_id or run.dag_version_id).task_dict[ti.task_id]
        when = d.next_retry_at(
            end_date=end,
            try_number=ti.try_number,
            retry_delay=task.retry_delay,
            backoff=task.retry_exponential_backoff,
            max_retry_delay=task.max_retry_delay,
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            logical_date_iso=run.logical_date.isoformat() if run.logical_date else run.run_id,
        )
        self._add_timer(when, (ti.dag_id, ti.run_id))
        return when

    def _skip_downstream(
        self, s: Session, ti: TaskInstance, task_ids: Iterable[str], now: datetime
    ) -> set[str]:
        ids = set(task_ids)
        if not ids:
            return set()
        targets = db_tis.list_tis(
            s, ti.dag_id, ti.run_id, task_ids=ids, states=[TaskState.CREATED, TaskState.SCHEDULED]
        )
        for target in targets:
            transition_task(
                s, target.id, target.state, TaskState.SKIPPED, now=now, end_date=now,
                last_error=f"skipped by {ti.task_id}",
            )  # fmt: skip
        return ids

    # -- recovery -------------------------------------------------------------------------------
    def _recover(self, s: Session, now: datetime) -> None:
        """Tries a previous scheduler left queued never started: queue them again (same try).
        Tries it left running may have run: they count as lost (retried or failed)."""
        stale = db_tis.list_tis_in_states(
            s,
            [TaskState.QUEUED, TaskState.RUNNING, TaskState.RESTARTING],
            dag_ids=self.options.dag_ids,
        )
        for ti in stale:
            if ti.state is TaskState.RESTARTING:
                self._restart(s, ti, now)
            elif ti.state is TaskState.QUEUED:
                transition_task(s, ti.id, TaskState.QUEUED, TaskState.SCHEDULED, now=now)
            else:
                self._lose_try(
                    s, ti, "the scheduler running this try stopped before it finished", now
                )
            self._mark((ti.dag_id, ti.run_id), {ti.task_id})


def _active_runs(s: Session, states: list[RunState]) -> tuple[dict[str, int], dict[int, int]]:
    """Runs in ``states``: per DAG not counting backfill runs, and per backfill.

    Backfill runs count against their backfill's ``max_active_runs`` only, so a backfill
    never holds up a DAG's scheduled runs (as in Airflow).
    """
    per_dag: dict[str, int] = {}
    per_backfill: dict[int, int] = {}
    rows = s.execute(
        sa.select(DagRun.dag_id, DagRun.backfill_id, sa.func.count())
        .where(DagRun.state.in_(states))
        .group_by(DagRun.dag_id, DagRun.backfill_id)
    )
    for dag_id, backfill_id, count in rows:
        if backfill_id is None:
            per_dag[dag_id] = per_dag.get(dag_id, 0) + int(count)
        else:
            per_backfill[backfill_id] = per_backfill.get(backfill_id, 0) + int(count)
    return per_dag, per_backfill


_TI_COLUMNS = (
    TaskInstance.id,
    TaskInstance.dag_id,
    TaskInstance.run_id,
    TaskInstance.task_id,
    TaskInstance.map_index,
    TaskInstance.state,
    TaskInstance.try_number,
    TaskInstance.max_tries,
    TaskInstance.next_retry_at,
    TaskInstance.reschedule_at,
    TaskInstance.start_date,
    TaskInstance.end_date,
)


def _load_tis(s: Session, dag_id: str, run_id: str) -> list[Any]:
    """A run's task instances as plain rows (several times cheaper than ORM objects)."""
    return list(
        s.execute(
            sa.select(*_TI_COLUMNS).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
            )
        )
    )
