"""How the scheduler finds its runs: due schedules become runs, queued runs start within
``max_active_runs``, and runs others touched (a clear, a mark) are looked at again.

A part of :class:`~tradewind.scheduler.job.Scheduler`, kept in its own module by concern.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tradewind.db import dags as db_dags
from tradewind.db import runs as db_runs
from tradewind.db.models import Backfill, Dag, DagRun
from tradewind.db.state_changes import transition_run
from tradewind.scheduler import decisions as d
from tradewind.serialization import SerializedDAG
from tradewind.state import RunState
from tradewind.timetables import DataInterval

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tradewind.scheduler.job import SchedulerOptions
    from tradewind.scheduler.runcache import RunCache

log = logging.getLogger("tradewind.scheduler")

RunKey = tuple[str, str]


class RunStarting:
    """Run creation and pick-up for :class:`~tradewind.scheduler.job.Scheduler`."""

    if TYPE_CHECKING:
        options: SchedulerOptions
        job_id: int | None
        _cache: RunCache
        _pool_cache: Any
        _quick_poll: bool
        _last_poll_at: datetime | None
        _schedulable: bool
        _dag_timer: datetime | None
        _computed: dict[str, int | None]

        def _view(self, s: Session, version_id: int | None) -> SerializedDAG: ...
        def _mark(self, run: RunKey, task_ids: Iterable[str] | None = None) -> None: ...
        def _allowed(self, dag_id: str) -> bool: ...
        def _adopt_orphans(self, s: Session, now: datetime) -> None: ...
        def _kill_restarting(self, s: Session) -> None: ...

        _due: Callable[[datetime | None, datetime], bool]

    # -- polling: runs others created or changed, and due schedules -----------------------------
    def _poll(self, s: Session, now: datetime) -> None:
        self._pool_cache = None  # pools change rarely: re-read them once per poll
        if self.job_id is not None:
            self._adopt_orphans(s, now)
        if self.options.create_scheduled_runs:
            self._schedule_dags(s, now)
        self._pick_up(s, now)

    def _pick_up(self, s: Session, now: datetime) -> None:
        """Runs others queued or touched since the last look (a trigger, a clear, a mark)."""
        self._quick_poll = False
        self._start_queued_runs(s, now)
        # Runs someone else touched (cleared tasks, marked states) since the last poll.
        q = sa.select(DagRun.dag_id, DagRun.run_id).where(DagRun.state == RunState.RUNNING)
        if self.job_id is not None:
            q = q.where(DagRun.scheduler_job_id == self.job_id)
        if self._last_poll_at is not None:
            q = q.where(DagRun.updated_at >= self._last_poll_at)
        for dag_id, run_id in s.execute(q):
            if self._allowed(dag_id):
                self._cache.drop((dag_id, run_id))
                self._mark((dag_id, run_id))
        self._last_poll_at = now
        self._schedulable = True
        self._kill_restarting(s)

    def _schedule_dags(self, s: Session, now: datetime) -> None:
        self._dag_timer = None
        active, _ = _active_runs(s, [RunState.QUEUED, RunState.RUNNING])
        for dag in db_dags.list_dags(s, paused=False, lock=True):
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
        # Held until this step commits: another scheduler starts none of these DAGs' runs
        # meanwhile, so max_active_runs holds across schedulers.
        held = db_dags.lock_dags(s, {run.dag_id for run in queued if self._allowed(run.dag_id)})
        queued = [run for run in queued if run.dag_id in held]
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
                start_date=run.start_date or now, scheduler_job_id=self.job_id,
            ):  # fmt: skip
                if backfill is not None:
                    running_backfill[backfill.id] = running_backfill.get(backfill.id, 0) + 1
                else:
                    running[run.dag_id] = running.get(run.dag_id, 0) + 1
                self._mark((run.dag_id, run.run_id))


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
