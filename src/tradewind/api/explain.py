"""Why admission holds a scheduled task instance now: pools, parallelism and concurrency
limits, asked of the scheduler's own pure admission rule with the current counts (the same
question ``tradewind tasks why`` asks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from tradewind.db import pools as db_pools
from tradewind.db import task_instances as db_tis
from tradewind.scheduler import decisions as d
from tradewind.state import ACTIVE

if TYPE_CHECKING:
    from tradewind.config import Settings
    from tradewind.db.models import DagRun, TaskInstance
    from tradewind.serialization import SerializedDAG

__all__ = ["admission_blocker"]


def admission_blocker(
    session: Session, view: SerializedDAG, run: DagRun, ti: TaskInstance, settings: Settings
) -> Any:
    """The :class:`~tradewind.scheduler.decisions.Blocker` holding ``ti`` back, or None."""
    pools = {p.pool: p.slots for p in db_pools.list_pools(session)}
    occupied = db_pools.occupied_slots(session)
    task = view.task_dict[ti.task_id]
    active = db_tis.count_tis(session, ["dag_id", "run_id", "task_id"], states=ACTIVE)
    per_run: dict[tuple[str, str], int] = {}
    per_dag: dict[tuple[str, str], int] = {}
    for (dag_id, run_id, task_id), count in active.items():
        per_run[(dag_id, run_id)] = per_run.get((dag_id, run_id), 0) + count
        per_dag[(dag_id, task_id)] = per_dag.get((dag_id, task_id), 0) + count
    candidate = d.Candidate(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        map_index=ti.map_index,
        priority_weight=ti.priority_weight,
        logical_date=run.logical_date,
        pool=ti.pool,
        pool_slots=ti.pool_slots,
    )
    limit_dag = task.max_active_tis_per_dag
    limit_run = task.max_active_tis_per_dagrun
    result = d.admit(
        [candidate],
        pool_free={name: total - occupied.get(name, 0) for name, total in pools.items()},
        pool_total=pools,
        executor_slots=settings.core.parallelism - sum(active.values()),
        run_active=per_run,
        run_limit={
            (run.dag_id, run.run_id): view.max_active_tasks
            or settings.core.max_active_tasks_per_dag
        },
        task_active_per_dag=per_dag,
        task_limit_per_dag={(ti.dag_id, ti.task_id): limit_dag} if limit_dag else None,
        task_active_per_run=dict(active),
        task_limit_per_run={(ti.dag_id, ti.task_id): limit_run} if limit_run else None,
    )
    return result.held.get(candidate.key)
