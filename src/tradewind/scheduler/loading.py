"""Loading the facts the scheduler's decisions need from the database, as plain snapshots.

The scheduler loop and ``tradewind tasks why`` read the same facts the same way: a task
instance's snapshot, the upstream instances that count for it (every instance of a mapped
upstream; only the same index inside a mapped task group), the recorded lengths mapped tasks
expand from, and the previous run for depends_on_past. Keeping them here means ``tasks why``
explains exactly the decision the scheduler would take.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tradewind.db import runs as db_runs
from tradewind.db import task_instances as db_tis
from tradewind.db.models import DagRun, TaskInstance, TaskMap
from tradewind.scheduler import decisions as d
from tradewind.scheduler.decisions.expansion import maps_per_index

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tradewind.serialization import SerializedDAG

__all__ = [
    "admission_blocker",
    "decide_ti",
    "first_of_backfill",
    "instance_counts",
    "map_lengths",
    "previous_run",
    "run_snapshot",
    "snapshot",
    "upstream_snapshots",
]


def snapshot(ti: TaskInstance) -> d.TISnapshot:
    """The decision-facing facts of one task-instance row."""
    return d.TISnapshot(
        task_id=ti.task_id,
        map_index=ti.map_index,
        state=ti.state,
        try_number=ti.try_number,
        max_tries=ti.max_tries,
        next_retry_at=ti.next_retry_at,
        reschedule_at=ti.reschedule_at,
        start_date=ti.start_date,
        end_date=ti.end_date,
    )


def first_of_backfill(s: Session, run: DagRun) -> bool:
    """Whether ``run`` is the earliest run of its backfill (depends_on_past passes there)."""
    if run.backfill_id is None or run.logical_date is None:
        return False
    earliest = s.scalar(
        sa.select(sa.func.min(DagRun.logical_date)).where(DagRun.backfill_id == run.backfill_id)
    )
    return earliest is not None and earliest == run.logical_date


def run_snapshot(s: Session, run: DagRun) -> d.RunSnapshot:
    """The decision-facing facts of a run row."""
    return d.RunSnapshot(
        dag_id=run.dag_id,
        run_id=run.run_id,
        state=run.state,
        run_type=run.run_type,
        logical_date=run.logical_date,
        start_date=run.start_date,
        first_of_backfill=first_of_backfill(s, run),
    )


def map_lengths(s: Session, run: DagRun, instance_counts: Mapping[str, int]) -> dict[Any, int]:
    """Recorded result lengths of the run's tasks, and instance counts of expanded ones.

    ``instance_counts`` is the number of expanded instances (map index >= 0) per mapped task
    of the run (a mapped upstream's "result" is the list of its instances' results).
    """
    lengths: dict[Any, int] = {}
    for row in s.scalars(
        sa.select(TaskMap).where(TaskMap.dag_id == run.dag_id, TaskMap.run_id == run.run_id)
    ):
        if row.map_index < 0:
            lengths[row.task_id] = row.length
    lengths.update(instance_counts)
    return lengths


def instance_counts(tis: Iterable[Any]) -> dict[str, int]:
    """Expanded instances (map index >= 0) per task, from task-instance rows."""
    counts: dict[str, int] = {}
    for ti in tis:
        if ti.map_index >= 0:
            counts[ti.task_id] = counts.get(ti.task_id, 0) + 1
    return counts


def upstream_snapshots(
    view: SerializedDAG,
    task: Any,
    map_index: int,
    snaps: dict[tuple[str, int], d.TISnapshot],
    by_task: dict[str, list[tuple[str, int]]],
) -> list[d.TISnapshot]:
    """The upstream instances that count for ``task`` at ``map_index``.

    ``snaps`` holds every instance of the run by (task_id, map_index); ``by_task`` lists the
    keys of each task's instances.
    """
    out: list[d.TISnapshot] = []
    for up_id in task.upstream_task_ids:
        keys = by_task.get(up_id, [])
        up_task = view.task_dict.get(up_id)
        if map_index >= 0 and up_task is not None and maps_per_index(task, up_task):
            keys = [k for k in keys if k[1] == map_index] or keys
        out.extend(snaps[k] for k in keys)
    return out


def previous_run(s: Session, run: DagRun, task: Any) -> d.PreviousRun | None:
    """The run before ``run`` (by logical date) with the instances depends_on_past reads.

    As in Airflow, a DAG with catchup looks only at the previous scheduled (or backfill) run:
    a manual run in between does not count. Without catchup any previous run does.
    """
    if run.logical_date is None:
        return None
    if task.dag.catchup:
        prev = s.scalar(
            sa.select(DagRun)
            .where(
                DagRun.dag_id == run.dag_id,
                DagRun.logical_date.is_not(None),
                DagRun.logical_date < run.logical_date,
                DagRun.run_type != "manual",
            )
            .order_by(DagRun.logical_date.desc())
            .limit(1)
        )
    else:
        prev = db_runs.get_previous_run(s, run.dag_id, run.logical_date)
    if prev is None:
        return None
    wanted = {task.task_id, *task.downstream_task_ids}
    tis = db_tis.list_tis(s, prev.dag_id, prev.run_id, task_ids=wanted)
    return d.PreviousRun(
        run_id=prev.run_id,
        logical_date=prev.logical_date,
        tis=tuple(snapshot(t) for t in tis),
    )


def admission_blocker(
    s: Session,
    view: SerializedDAG,
    run: DagRun,
    ti: TaskInstance,
    *,
    parallelism: int,
    max_active_tasks_per_dag: int,
) -> d.Blocker | None:
    """Why admission holds scheduled instance ``ti`` now (pools, parallelism, concurrency
    limits), asked of the scheduler's own admission rule with the current counts; None when
    it would fit. ``tradewind tasks why`` and the API show it."""
    from tradewind.db import pools as db_pools
    from tradewind.state import ACTIVE

    pools = {p.pool: p.slots for p in db_pools.list_pools(s)}
    occupied = db_pools.occupied_slots(s)
    task = view.task_dict[ti.task_id]
    active = db_tis.count_tis(s, ["dag_id", "run_id", "task_id"], states=ACTIVE)
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
        executor_slots=parallelism - sum(active.values()),
        run_active=per_run,
        run_limit={(run.dag_id, run.run_id): view.max_active_tasks or max_active_tasks_per_dag},
        task_active_per_dag=per_dag,
        task_limit_per_dag={(ti.dag_id, ti.task_id): limit_dag} if limit_dag else None,
        task_active_per_run=dict(active),
        task_limit_per_run={(ti.dag_id, ti.task_id): limit_run} if limit_run else None,
    )
    return result.held.get(candidate.key)


def decide_ti(
    s: Session,
    view: SerializedDAG,
    run: DagRun,
    ti: TaskInstance,
    *,
    now: Any,
    max_map_length: int | None = None,
) -> tuple[d.TaskDecision, list[d.TISnapshot]]:
    """The readiness decision for one task instance, as the scheduler would take it now.

    Returns the decision and the upstream snapshots it was based on (for display).
    """
    tis = db_tis.list_tis(s, run.dag_id, run.run_id)
    snaps = {(t.task_id, t.map_index): snapshot(t) for t in tis}
    by_task: dict[str, list[tuple[str, int]]] = {}
    for key in snaps:
        by_task.setdefault(key[0], []).append(key)
    task = view.task_dict[ti.task_id]
    ups = upstream_snapshots(view, task, ti.map_index, snaps, by_task)
    prev = previous_run(s, run, task) if task.depends_on_past else None
    decision = d.decide_task(
        task,
        snapshot(ti),
        ups,
        now=now,
        run=run_snapshot(s, run),
        prev_run=prev,
        upstream_lengths=map_lengths(s, run, instance_counts(tis)),
        max_map_length=max_map_length,
    )
    return decision, ups
