"""What the scheduler does with task tries: admit and queue them, apply what executors report
(started, finished, lost), and recover tries a stopped scheduler left behind.

A part of :class:`~tradewind.scheduler.job.Scheduler`, kept in its own module by concern.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tradewind.db import pools as db_pools
from tradewind.db import task_instances as db_tis
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
        _pool_cache: dict[str, int] | None

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
        # The highest-priority few, not every scheduled instance: a fan-out of thousands
        # would otherwise be re-read on every step.
        scheduled = db_tis.list_tis_in_states(
            s, [TaskState.SCHEDULED], dag_ids=self.options.dag_ids, limit=max(64, slots * 4)
        )
        if not scheduled:
            self._schedulable = False
            return []
        runs = self._runs_for(s, {(ti.dag_id, ti.run_id) for ti in scheduled})
        if self._pool_cache is None:
            self._pool_cache = {p.pool: p.slots for p in db_pools.list_pools(s)}
        pools = self._pool_cache
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
