"""Admission: which scheduled task instances may be queued now, under every limit.

:func:`admit` walks the candidates in priority order (highest ``priority_weight_total`` first,
then the earliest logical date, then the lowest map index; ties by ids, so the order is stable)
and admits each one that fits:

* its pool has at least ``pool_slots`` free slots (slots are consumed as candidates are admitted);
* its run stays within ``max_active_tasks`` (queued plus running instances per DAG run);
* its task stays within ``max_active_tis_per_dag`` (across the DAG's runs) and
  ``max_active_tis_per_dagrun`` (within the run);
* the executor has a free slot (``parallelism``).

A candidate that does not fit is held with the first limit it hits; later, smaller candidates
may still fit (a big task waiting for a pool does not block small ones), as in Airflow. Limits
missing from the dicts mean "no limit"; a pool missing from ``pool_free`` does not exist, so
its candidates are held.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tradewind.scheduler.decisions._text import plural
from tradewind.scheduler.decisions.blockers import Blocker, BlockerKind

__all__ = ["DEFAULT_POOL", "AdmissionResult", "Candidate", "admit", "priority_order"]

#: The pool every task uses unless it names another.
DEFAULT_POOL = "default_pool"

_EARLIEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Candidate:
    """A scheduled task instance asking to be queued.

    ``logical_date`` is the run's logical date (its ``run_after`` for runs without one); it
    orders equal priorities so older runs go first. ``ref`` carries anything the caller wants
    back (a row id, the workload) and takes no part in decisions.
    """

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    priority_weight: int = 1
    logical_date: datetime | None = None
    pool: str = DEFAULT_POOL
    pool_slots: int = 1
    ref: Any = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str, str, int]:
        """``(dag_id, run_id, task_id, map_index)``."""
        return (self.dag_id, self.run_id, self.task_id, self.map_index)

    @property
    def run_key(self) -> tuple[str, str]:
        """``(dag_id, run_id)``."""
        return (self.dag_id, self.run_id)

    @property
    def task_key(self) -> tuple[str, str]:
        """``(dag_id, task_id)``."""
        return (self.dag_id, self.task_id)

    @property
    def task_run_key(self) -> tuple[str, str, str]:
        """``(dag_id, run_id, task_id)``."""
        return (self.dag_id, self.run_id, self.task_id)

    @property
    def label(self) -> str:
        """``dag.task[run]`` for messages."""
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{index} ({self.run_id})"


@dataclass
class AdmissionResult:
    """What :func:`admit` decided.

    Attributes:
        admitted: the candidates to queue, in priority order.
        held: every other candidate's key with the first limit it hit (``str(blocker)`` is the
            message, ``blocker.kind`` POOL, CONCURRENCY or EXECUTOR).
    """

    admitted: list[Candidate] = field(default_factory=list)
    held: dict[tuple[str, str, str, int], Blocker] = field(default_factory=dict)


def priority_order(candidate: Candidate) -> tuple[Any, ...]:
    """The sort key: ``(-priority_weight, logical_date, map_index)`` then ids for stability."""
    when = candidate.logical_date
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (
        -candidate.priority_weight,
        when if when is not None else _EARLIEST,
        candidate.map_index,
        candidate.dag_id,
        candidate.run_id,
        candidate.task_id,
    )


def _limit_hit(active: int, limit: int | None) -> bool:
    return limit is not None and active >= limit


def admit(
    candidates: Iterable[Candidate],
    *,
    pool_free: Mapping[str, int],
    executor_slots: int,
    run_active: Mapping[tuple[str, str], int] | None = None,
    run_limit: Mapping[tuple[str, str], int] | None = None,
    task_active_per_dag: Mapping[tuple[str, str], int] | None = None,
    task_limit_per_dag: Mapping[tuple[str, str], int] | None = None,
    task_active_per_run: Mapping[tuple[str, str, str], int] | None = None,
    task_limit_per_run: Mapping[tuple[str, str], int] | None = None,
    pool_total: Mapping[str, int] | None = None,
) -> AdmissionResult:
    """Choose the candidates to queue now (see the module docstring).

    Args:
        candidates: scheduled task instances.
        pool_free: free slots per pool now (total minus slots held by queued/running ones).
        executor_slots: how many more task instances the executor takes now.
        run_active: queued + running instances per ``(dag_id, run_id)``.
        run_limit: ``max_active_tasks`` per ``(dag_id, run_id)``.
        task_active_per_dag: queued + running instances per ``(dag_id, task_id)``, all runs.
        task_limit_per_dag: ``max_active_tis_per_dag`` per ``(dag_id, task_id)``.
        task_active_per_run: queued + running instances per ``(dag_id, run_id, task_id)``.
        task_limit_per_run: ``max_active_tis_per_dagrun`` per ``(dag_id, task_id)``.
        pool_total: total slots per pool, only to word the reasons.
    """
    free = dict(pool_free)
    runs: dict[tuple[str, str], int] = dict(run_active or {})
    per_dag: dict[tuple[str, str], int] = dict(task_active_per_dag or {})
    per_run: dict[tuple[str, str, str], int] = dict(task_active_per_run or {})
    run_limits = run_limit or {}
    dag_limits = task_limit_per_dag or {}
    run_task_limits = task_limit_per_run or {}
    totals = pool_total or {}
    slots_left = max(executor_slots, 0)
    result = AdmissionResult()

    for cand in sorted(candidates, key=priority_order):
        blocker = _check(
            cand,
            free=free,
            totals=totals,
            runs=runs,
            run_limits=run_limits,
            per_dag=per_dag,
            dag_limits=dag_limits,
            per_run=per_run,
            run_task_limits=run_task_limits,
            slots_left=slots_left,
            admitted=len(result.admitted),
        )
        if blocker is not None:
            result.held[cand.key] = blocker
            continue
        result.admitted.append(cand)
        free[cand.pool] -= cand.pool_slots
        _bump(runs, cand.run_key)
        _bump(per_dag, cand.task_key)
        _bump(per_run, cand.task_run_key)
        slots_left -= 1
    return result


def _bump(counts: dict[Any, int], key: Hashable) -> None:
    counts[key] = counts.get(key, 0) + 1


def _check(
    cand: Candidate,
    *,
    free: Mapping[str, int],
    totals: Mapping[str, int],
    runs: Mapping[tuple[str, str], int],
    run_limits: Mapping[tuple[str, str], int],
    per_dag: Mapping[tuple[str, str], int],
    dag_limits: Mapping[tuple[str, str], int],
    per_run: Mapping[tuple[str, str, str], int],
    run_task_limits: Mapping[tuple[str, str], int],
    slots_left: int,
    admitted: int,
) -> Blocker | None:
    """The first limit ``cand`` hits, or None when it fits."""
    pool = cand.pool
    if pool not in free:
        return Blocker(
            BlockerKind.POOL,
            f"pool {pool!r} does not exist (create the pool or change the task's pool)",
        )
    total = totals.get(pool)
    if total is not None and cand.pool_slots > total:
        return Blocker(
            BlockerKind.POOL,
            f"the task needs {plural(cand.pool_slots, 'slot')} but pool {pool!r} has only "
            f"{total} in total",
        )
    if free[pool] < cand.pool_slots:
        size = f"{free[pool]} of {total}" if total is not None else f"{free[pool]}"
        needs = f"; the task needs {cand.pool_slots}" if cand.pool_slots != 1 else ""
        return Blocker(BlockerKind.POOL, f"pool {pool!r} has {size} slots free{needs}")
    limit = run_limits.get(cand.run_key)
    if _limit_hit(runs.get(cand.run_key, 0), limit):
        return Blocker(
            BlockerKind.CONCURRENCY,
            f"DAG run {cand.run_id!r} already has {runs.get(cand.run_key, 0)} of {limit} task "
            "instances queued or running (max_active_tasks)",
        )
    limit = dag_limits.get(cand.task_key)
    if _limit_hit(per_dag.get(cand.task_key, 0), limit):
        return Blocker(
            BlockerKind.CONCURRENCY,
            f"task {cand.task_id!r} already has {per_dag.get(cand.task_key, 0)} of {limit} "
            f"instances queued or running across DAG {cand.dag_id!r} (max_active_tis_per_dag)",
        )
    limit = run_task_limits.get(cand.task_key)
    if _limit_hit(per_run.get(cand.task_run_key, 0), limit):
        return Blocker(
            BlockerKind.CONCURRENCY,
            f"task {cand.task_id!r} already has {per_run.get(cand.task_run_key, 0)} of {limit} "
            f"instances queued or running in run {cand.run_id!r} (max_active_tis_per_dagrun)",
        )
    if slots_left <= 0:
        return Blocker(
            BlockerKind.EXECUTOR,
            f"the executor has no free slot (parallelism reached; {admitted} admitted this round)",
        )
    return None
