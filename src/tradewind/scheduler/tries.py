"""What the scheduler does with task tries: admit and queue them, apply what executors report
(started, finished, lost), and recover tries a stopped scheduler left behind.

A part of :class:`~tradewind.scheduler.job.Scheduler`, kept in its own module by concern.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tradewind.db import jobs as db_jobs
from tradewind.db import pools as db_pools
from tradewind.db import task_instances as db_tis
from tradewind.db.engine import skip_locked
from tradewind.db.models import DagRun, TaskInstance
from tradewind.db.state_changes import transition_task, transition_tasks
from tradewind.executors.workload import (
    EventKind,
    ExecuteTask,
    ExecutorEvent,
    RunSpec,
    TaskInstanceKey,
    default_log_path,
)
from tradewind.scheduler import decisions as d
from tradewind.serialization import SerializedDAG
from tradewind.state import ACTIVE, RunState, TaskState

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from tradewind.executors.base import BaseExecutor
    from tradewind.scheduler.runcache import RunCache

log = logging.getLogger("tradewind.scheduler")

RunKey = tuple[str, str]


class TryHandling:
    """Queueing, executor events and recovery for :class:`~tradewind.scheduler.job.Scheduler`."""

    if TYPE_CHECKING:
        from tradewind.scheduler.job import SchedulerOptions

        _sf: sessionmaker[Session]
        executor: BaseExecutor
        options: SchedulerOptions
        clock: Callable[[], datetime]
        _schedulable: bool
        _killing: set[TaskInstanceKey]
        _pool_cache: dict[str, tuple[int, bool]] | None
        _cache: RunCache
        job_id: int | None

        def _view(self, s: Session, version_id: int | None) -> SerializedDAG: ...
        def _mark(self, run: tuple[str, str], task_ids: Iterable[str] | None = None) -> None: ...
        def _add_timer(self, when: datetime, run: tuple[str, str]) -> None: ...
        def _wake_past_waiters(self, dag_id: str, task_ids: Iterable[str]) -> None: ...
        def _allowed(self, dag_id: str) -> bool: ...

    # -- queueing -------------------------------------------------------------------------------
    def _queue_admitted(self, s: Session, now: datetime) -> list[ExecuteTask]:
        if not self._schedulable:
            return []
        slots = self.executor.slots_available()
        if slots <= 0:
            return []
        if self._pool_cache is None:
            self._pool_cache = {
                p.pool: (p.slots, p.include_deferred) for p in db_pools.list_pools(s)
            }
        pools = {name: slots for name, (slots, _) in self._pool_cache.items()}
        db_pools.lock_pools(s)  # schedulers admit one at a time (PostgreSQL)
        occupied = db_pools.occupied_in(
            s, {name: deferred for name, (_, deferred) in self._pool_cache.items()}
        )
        pool_free = {name: total - occupied.get(name, 0) for name, total in pools.items()}
        # The highest-priority few, not every scheduled instance (a fan-out of thousands
        # would otherwise be re-read on every step), and none from pools that are full.
        scheduled = db_tis.scheduled_candidates(
            s,
            limit=max(16, slots * 4),
            dag_ids=self.options.dag_ids,
            exclude_pools=[name for name, free in pool_free.items() if free <= 0],
            scheduler_job_id=self.job_id,
        )
        if not scheduled:
            self._schedulable = False
            return []
        runs = self._runs_for(s, {(ti.dag_id, ti.run_id) for ti in scheduled})
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
            self._cache.update(
                (ti.dag_id, ti.run_id), (ti.task_id, ti.map_index), state=TaskState.QUEUED
            )
            workloads.append(self._workload(s, ti, run))
        # Whatever was held waits for a slot to free up (an executor event) or the next poll.
        self._schedulable = len(result.admitted) < len(candidates) and bool(won)
        return workloads

    def _runs_for(self, s: Session, keys: set[RunKey]) -> dict[RunKey, Any]:
        """The running runs among ``keys``, as plain rows."""
        out: dict[RunKey, Any] = {}
        by_dag: dict[str, list[str]] = {}
        for dag_id, run_id in keys:
            by_dag.setdefault(dag_id, []).append(run_id)
        for dag_id, run_ids in by_dag.items():
            for run in s.execute(
                sa.select(*_RUN_COLUMNS).where(
                    DagRun.dag_id == dag_id,
                    DagRun.run_id.in_(run_ids),
                    DagRun.state == RunState.RUNNING,
                )
            ):
                out[(run.dag_id, run.run_id)] = run
        return out

    def _workload(self, s: Session, ti: Any, run: Any) -> ExecuteTask:
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
        final = []
        for event in events:
            key = event.key
            run_key = (key.dag_id, key.run_id)
            if event.kind is EventKind.STARTED:
                cached = self._cache.peek(run_key)
                snap = cached.snaps.get((key.task_id, key.map_index)) if cached else None
                if snap is not None and snap.try_number == key.try_number:
                    self._cache.update(
                        run_key,
                        snap.key,
                        state=TaskState.RUNNING,
                        start_date=event.start_date or snap.start_date,
                    )
                continue
            final.append(event)
        rows = self._event_rows(s, final)
        for event in final:
            key = event.key
            ti = rows.get(key)
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

    def _event_rows(self, s: Session, events: list[ExecutorEvent]) -> dict[TaskInstanceKey, Any]:
        """The current rows of the instances the events are about, read in one query where
        the run's copy knows their ids (the rows, not the copy: someone may have cleared
        one meanwhile)."""
        by_id: dict[str, TaskInstanceKey] = {}
        out: dict[TaskInstanceKey, Any] = {}
        for event in events:
            key = event.key
            cached = self._cache.peek((key.dag_id, key.run_id))
            ti_id = cached.ids.get((key.task_id, key.map_index)) if cached else None
            if ti_id is not None:
                by_id[ti_id] = key
                continue
            row = s.execute(
                sa.select(*_EVENT_COLUMNS).where(
                    TaskInstance.dag_id == key.dag_id,
                    TaskInstance.run_id == key.run_id,
                    TaskInstance.task_id == key.task_id,
                    TaskInstance.map_index == key.map_index,
                )
            ).first()
            if row is not None:
                out[key] = row
        if by_id:
            for row in s.execute(
                sa.select(*_EVENT_COLUMNS).where(TaskInstance.id.in_(list(by_id)))
            ):
                out[by_id[row.id]] = row
        return out

    def _finish_try(self, s: Session, ti: Any, event: ExecutorEvent, now: datetime) -> None:
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
        won = transition_task(
            s, ti.id, [TaskState.RUNNING, TaskState.QUEUED], state, now=now,
            where={"try_number": ti.try_number}, **fields,
        )  # fmt: skip
        self._note_try_end(ti, won, state, start, end, fields.get("next_retry_at"))

    def _note_try_end(
        self,
        ti: Any,
        won: bool,
        state: TaskState,
        start: datetime | None,
        end: datetime,
        next_retry_at: datetime | None,
    ) -> None:
        """Keep the run's copy in step with a try's end (or drop it if the write lost)."""
        run_key = (ti.dag_id, ti.run_id)
        if not won:
            self._cache.drop(run_key)
            return
        self._cache.update(
            run_key,
            (ti.task_id, ti.map_index),
            state=state,
            start_date=start,
            end_date=end,
            next_retry_at=next_retry_at,
        )

    def _lose_try(self, s: Session, ti: Any, error: str, now: datetime) -> None:
        if ti.state not in (TaskState.QUEUED, TaskState.RUNNING):
            return
        outcome = d.outcome_after_failure(ti.try_number, ti.max_tries, fail_fast_error=False)
        fields: dict[str, Any] = {"end_date": now, "last_error": error}
        if outcome.state is TaskState.UP_FOR_RETRY:
            fields["next_retry_at"] = self._retry_at(s, ti, now)
        log.warning(
            "task %s/%s/%s try %s lost: %s", ti.dag_id, ti.run_id, ti.task_id, ti.try_number, error
        )
        won = transition_task(
            s, ti.id, [TaskState.QUEUED, TaskState.RUNNING], outcome.state, now=now,
            where={"try_number": ti.try_number}, **fields,
        )  # fmt: skip
        self._note_try_end(ti, won, outcome.state, ti.start_date, now, fields.get("next_retry_at"))

    def _restart(self, s: Session, ti: Any, now: datetime) -> None:
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
        self._cache.drop((ti.dag_id, ti.run_id))

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

    def _retry_at(self, s: Session, ti: Any, end: datetime) -> datetime:
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
        self, s: Session, ti: Any, task_ids: Iterable[str], now: datetime
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
        self._cache.drop((ti.dag_id, ti.run_id))
        return ids

    # -- recovery: runs whose scheduler died ---------------------------------------------------
    def _adopt_orphans(self, s: Session, now: datetime) -> None:
        """Take over the running runs no live scheduler works on (their scheduler stopped,
        died, or missed heartbeats for ``dead_after`` seconds), and recover their tries.

        A run is taken with a compare-and-set on its ``scheduler_job_id``, so when several
        schedulers look at once exactly one takes it. A scheduler declared dead here finds out
        at its next heartbeat and stops.
        """
        live = self._live_schedulers(s, now)
        query: Any = sa.select(
            DagRun.id, DagRun.dag_id, DagRun.run_id, DagRun.scheduler_job_id
        ).where(
            DagRun.state == RunState.RUNNING,
            sa.or_(DagRun.scheduler_job_id.is_(None), DagRun.scheduler_job_id.not_in(live)),
        )
        if self.options.dag_ids is not None:
            query = query.where(DagRun.dag_id.in_(list(self.options.dag_ids)))
        for row in list(s.execute(skip_locked(query, s))):
            owner = DagRun.scheduler_job_id
            taken = s.execute(
                sa.update(DagRun)
                .where(
                    DagRun.id == row.id,
                    owner.is_(None)
                    if row.scheduler_job_id is None
                    else owner == row.scheduler_job_id,
                )
                .values(scheduler_job_id=self.job_id, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                continue
            if row.scheduler_job_id is not None:
                log.warning(
                    "taking over run %s of %s from scheduler job %s, which stopped",
                    row.run_id,
                    row.dag_id,
                    row.scheduler_job_id,
                )
            run_key = (row.dag_id, row.run_id)
            self._recover_run(s, run_key, now)
            self._cache.drop(run_key)
            self._mark(run_key)

    def _live_schedulers(self, s: Session, now: datetime) -> list[int]:
        """Ids of the scheduler jobs that count as alive; stale ones are ended as failed.

        Alive means: running, with a heartbeat within ``dead_after`` seconds, and - for a job
        on this host - a process that still exists (a scheduler restarted after ``kill -9``
        takes over at once instead of waiting for the heartbeat to age). This scheduler always
        counts as alive.
        """
        host = socket.gethostname()
        me = os.getpid()
        threshold = now - timedelta(seconds=self.options.dead_after)
        live = [self.job_id] if self.job_id is not None else []
        for job in db_jobs.running_jobs(s, "scheduler"):
            if job.id == self.job_id:
                continue
            gone = job.latest_heartbeat is None or job.latest_heartbeat < threshold
            if job.hostname == host and job.pid is not None:
                gone = gone or job.pid == me or not _process_exists(job.pid)
            if gone:
                db_jobs.end_job(s, job.id, now=now, state=db_jobs.JOB_FAILED)
            else:
                live.append(job.id)
        return [job_id for job_id in live if job_id is not None]

    def _recover_run(self, s: Session, run_key: RunKey, now: datetime) -> None:
        """Tries the run's previous scheduler left queued never started: queue them again
        (same try). Tries it left running may have run: they count as lost (retried or
        failed). Instances cleared while running start afresh."""
        stale = db_tis.list_tis(
            s,
            run_key[0],
            run_key[1],
            states=[TaskState.QUEUED, TaskState.RUNNING, TaskState.RESTARTING],
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
        if stale:
            self._schedulable = True


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


_RUN_COLUMNS = (
    DagRun.dag_id,
    DagRun.run_id,
    DagRun.run_type,
    DagRun.logical_date,
    DagRun.data_interval_start,
    DagRun.data_interval_end,
    DagRun.conf,
    DagRun.start_date,
    DagRun.dag_version_id,
)

_EVENT_COLUMNS = (
    TaskInstance.id,
    TaskInstance.dag_id,
    TaskInstance.run_id,
    TaskInstance.task_id,
    TaskInstance.map_index,
    TaskInstance.state,
    TaskInstance.try_number,
    TaskInstance.max_tries,
    TaskInstance.start_date,
    TaskInstance.dag_version_id,
)
