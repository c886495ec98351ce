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
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tradewind.db import backfills as db_backfills
from tradewind.db import dags as db_dags
from tradewind.db import jobs as db_jobs
from tradewind.db import task_instances as db_tis
from tradewind.db.engine import session_scope
from tradewind.db.models import DagRun
from tradewind.db.state_changes import transition_run, transition_task
from tradewind.executors.workload import (
    ExecuteTask,
    TaskInstanceKey,
)
from tradewind.scheduler import decisions as d
from tradewind.scheduler import loading
from tradewind.scheduler.decisions.expansion import maps_per_index
from tradewind.scheduler.runcache import RunCache
from tradewind.scheduler.runstart import RunStarting
from tradewind.scheduler.tries import TryHandling
from tradewind.serialization import SerializedDAG, deserialize_dag
from tradewind.state import ACTIVE, FINISHED, RunState, TaskState

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from tradewind.executors.base import BaseExecutor

log = logging.getLogger("tradewind.scheduler")

RunKey = tuple[str, str]
_MAX_ROUNDS = 200
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
    #: seconds without a heartbeat after which another scheduler counts as dead (its running
    #: runs are taken over)
    dead_after: float = 30.0


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


class _ViewFacts:
    """Facts about one DAG version the scheduler uses on every step, derived once."""

    def __init__(self, view: SerializedDAG) -> None:
        self.view = view
        #: whether any task is expanded at run time (else no task-map lengths are read)
        self.has_mapping = any(d.mapping_source(t) is not None for t in view.tasks)
        #: task id -> its direct downstream task ids
        self.downstream = {t.task_id: t.downstream_task_ids for t in view.tasks}
        self._counts: dict[tuple[str, bool], bool] = {}

    def counts_suffice(self, task: Any, map_index: int) -> bool:
        """Whether counting the states of every upstream instance is all the decision of an
        instance of ``task`` needs: no setup upstream, not a mapped placeholder (it reads
        which upstream results are missing), and no upstream whose instances pair up with
        its own by map index."""
        memo = (task.task_id, map_index >= 0)
        found = self._counts.get(memo)
        if found is None:
            tasks = self.view.task_dict
            ups = [tasks[u] for u in task.upstream_task_ids if u in tasks]
            found = not any(getattr(u, "is_setup", False) for u in ups)
            if map_index < 0:
                found = found and d.mapping_source(task) is None
            else:
                found = found and not any(maps_per_index(task, u) for u in ups)
            self._counts[memo] = found
        return found


class Scheduler(RunStarting, TryHandling):
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
        self._view_facts: dict[int, _ViewFacts] = {}
        # run -> task ids that changed (None: look at the whole run)
        self._dirty: dict[RunKey, set[str] | None] = {}
        self._probe: Callable[[], int] | None = None
        self._pool_cache: dict[str, tuple[int, bool]] | None = None
        self._probe_value: int | None = None
        self._quick_poll = False
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
        #: dag_id -> run -> task held back by depends_on_past -> the task ids of the previous
        #: run it waits for: a change there is the only thing that can release it
        self._past_waiters: dict[str, dict[RunKey, dict[str, set[str]]]] = {}
        #: the task instances of the runs being worked on (see runcache.py)
        self._cache = RunCache()
        #: set when the job row says this scheduler was declared dead: it must stop
        self.lost_job = False

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Register the job, recover work a dead scheduler left behind, start the executor."""
        now = self.clock()
        with session_scope(self._sf) as s:
            job = db_jobs.start_job(
                s, "scheduler", hostname=socket.gethostname(), pid=os.getpid(), now=now
            )
            self.job_id = job.id
            self._adopt_orphans(s, now)
        self.executor.start()
        self._probe = self._make_probe()

    def stop(self) -> None:
        """Stop the executor (it lets running tries finish for a grace period, then stops them:
        those are reported lost) and end the job."""
        self.executor.end()
        for event in self.executor.process_io(0):
            with session_scope(self._sf) as s:
                self._apply_events(s, [event], self.clock())
        handed_back = list(getattr(self.executor, "handed_back", ()))
        if handed_back:
            # Tries that never started go back to scheduled under the same try number, for
            # whichever scheduler runs next.
            with session_scope(self._sf) as s:
                for workload in handed_back:
                    transition_task(
                        s, workload.ti_id, TaskState.QUEUED, TaskState.SCHEDULED,
                        now=self.clock(), where={"try_number": workload.key.try_number},
                    )  # fmt: skip
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
            # Another process committed: pick up its runs now; schedules wait for the poll.
            self._quick_poll = True
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
            elif self._quick_poll:
                self._pick_up(s, now)
            self._fire_timers(now)
            self._examine(s, now)
            workloads = self._queue_admitted(s, now)
            if self.job_id is not None and mono >= self._next_heartbeat:
                if not db_jobs.heartbeat(s, self.job_id, now=now):
                    log.error(
                        "this scheduler (job %s) was declared dead by another one, which took "
                        "over its runs; stopping",
                        self.job_id,
                    )
                    self.lost_job = True
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
        for run_key, held in list(waiters.items()):
            if any(wanted & changed for wanted in held.values()):
                del waiters[run_key]  # the whole run is looked at again and registers anew
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

    def _facts(self, view: SerializedDAG) -> _ViewFacts:
        """What the scheduler derives once from a DAG version (views are kept for good)."""
        facts = self._view_facts.get(id(view))
        if facts is None:
            facts = self._view_facts[id(view)] = _ViewFacts(view)
        return facts

    def _owns(self, run: DagRun) -> bool:
        """Whether this scheduler works on ``run`` (each running run has one scheduler)."""
        return self.job_id is None or run.scheduler_job_id == self.job_id

    def _allowed(self, dag_id: str) -> bool:
        return self.options.dag_ids is None or dag_id in self.options.dag_ids

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
        if run is None or run.state is not RunState.RUNNING or not self._owns(run):
            self._cache.drop(run_key)
            return
        view = self._view(s, run.dag_version_id)
        tis = self._cache.get(s, run_key, self._facts(view).downstream)
        snaps = tis.snaps
        # Recorded upstream lengths matter only to mapped placeholders: read them only when
        # one of those is to be decided.
        lengths: dict[Any, int] | None = None if self._facts(view).has_mapping else {}
        run_snap = loading.run_snapshot(s, run)
        decisions: dict[tuple[str, int], d.TaskDecision] = {}
        changed: set[str] = set()
        if changed_ids is None:
            waiting = tis.waiting_in(None)
        else:
            # Only what the change can affect: the changed tasks and their direct downstreams.
            relevant = set(changed_ids)
            for task_id in changed_ids:
                task = view.task_dict.get(task_id)
                if task is not None:
                    relevant.update(task.downstream_task_ids)
            waiting = tis.waiting_in(relevant)
            # Nothing else can move the run: decide everything (finds deadlocks, timeouts).
            if not tis.in_flight and len(waiting) != tis.count_waiting():
                waiting = tis.waiting_in(None)
        for key in sorted(waiting):
            task = view.task_dict.get(key[0])
            if task is None:
                continue
            snap = snaps[key]
            if lengths is None and key[1] < 0 and d.mapping_source(task) is not None:
                lengths = loading.map_lengths(s, run, tis.instance_counts())
            counts = None
            if self._facts(view).counts_suffice(task, key[1]):
                ups: list[d.TISnapshot] = []
                counts = tis.upstream_counts(key[0], task.upstream_task_ids)
            else:
                ups = loading.upstream_snapshots(view, task, key[1], snaps, tis.by_task)
            wants_past = task.depends_on_past or task.wait_for_downstream
            prev = loading.previous_run(s, run, task) if wants_past else None
            decision = d.decide_task(
                task,
                snap,
                ups,
                now=now,
                run=run_snap,
                prev_run=prev,
                upstream_lengths=lengths or {},
                max_map_length=self.options.max_map_length,
                upstream_counts=counts,
            )
            decisions[key] = decision
            applied = self._apply_decision(s, run, key, snap, tis.ids[key], decision, now)
            if applied is None:
                # Someone else changed this instance: read the run again in the next round.
                self._cache.drop(run_key)
                self._mark(run_key)
                return
            if applied:
                changed.add(key[0])
        self._note_past_waits(view, run_key, decisions)
        if changed:
            # Newly expanded or finished tasks: look again at the run in the next round.
            self._mark(run_key, changed)
            self._wake_past_waiters(run.dag_id, changed)
            return
        if tis.in_flight and changed_ids is not None:
            # A run with tries on their way cannot be finished yet; its timeout has a timer
            # from the whole-run examination that started it.
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
        """Remember which of the tasks decided now wait on the previous run. Only those are
        updated: an examination may look at part of the run only."""
        blocked: dict[str, bool] = {}
        for (task_id, _), decision in decisions.items():
            held = any(b.kind is d.BlockerKind.DEPENDS_ON_PAST for b in decision.blockers)
            blocked[task_id] = blocked.get(task_id, False) or held
        if not blocked:
            return
        waiters = self._past_waiters.setdefault(run_key[0], {})
        held_tasks = waiters.setdefault(run_key, {})
        for task_id, is_blocked in blocked.items():
            if not is_blocked:
                held_tasks.pop(task_id, None)
                continue
            task = view.task_dict[task_id]
            wanted = {task_id}
            if task.wait_for_downstream:
                wanted.update(task.downstream_task_ids)
            held_tasks[task_id] = wanted
        if not held_tasks:
            del waiters[run_key]

    def _apply_decision(
        self,
        s: Session,
        run: DagRun,
        key: tuple[str, int],
        snap: d.TISnapshot,
        ti_id: str,
        decision: d.TaskDecision,
        now: datetime,
    ) -> bool | None:
        """Write the decision; True when it changed the instance, False when there was
        nothing to write, None when the compare-and-set lost (someone else changed it)."""
        action = decision.action
        A = d.TaskAction
        run_key = (run.dag_id, run.run_id)
        if action is A.WAIT or action is A.NONE:
            if decision.wake_at is not None:
                self._add_timer(decision.wake_at, run_key)
            return False
        if action is A.EXPAND:
            assert decision.map_length is not None
            db_tis.expand_mapped(s, run.dag_id, run.run_id, key[0], decision.map_length, now=now)
            self._cache.reload_task(s, run_key, key[0])
            return True
        if action is A.SCHEDULE:
            bump = 0 if snap.state is TaskState.UP_FOR_RESCHEDULE else 1
            try_number = snap.try_number + bump
            if not transition_task(
                s, ti_id, snap.state, TaskState.SCHEDULED, now=now,
                try_number=try_number, scheduled_at=now,
            ):  # fmt: skip
                return None
            self._schedulable = True
            self._cache.update(run_key, key, state=TaskState.SCHEDULED, try_number=try_number)
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
        if not transition_task(s, ti_id, snap.state, target, now=now, **fields):
            return None
        dates = {k: v for k, v in fields.items() if k in ("start_date", "end_date")}
        self._cache.update(run_key, key, state=target, **dates)
        return True

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
        self._cache.drop((run.dag_id, run.run_id))
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
        from sqlalchemy.orm import object_session

        from tradewind.scheduler.callbacks import run_info, start_dag_callback, when_committed

        # The child reads the run and its task instances from the database the scheduler uses
        # (passed by URL), so it may start only once this step's transaction has committed.
        options: dict[str, Any] = {
            "fileloc": view.fileloc,
            "dag_id": run.dag_id,
            "run_id": run.run_id,
            "kind": wanted,
            "reason": rollup.callback_reason or rollup.reason,
            "log_folder": self.options.log_folder,
            "run_info": run_info(run, state=rollup.state),
            "database_url": getattr(self._sf.kw.get("bind"), "url", None),
        }
        when_committed(
            object_session(run), lambda: self._callbacks.append(start_dag_callback(**options))
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
