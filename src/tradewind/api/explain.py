"""Why admission holds a scheduled task instance now: pools, parallelism and concurrency
limits, asked of the scheduler's own pure admission rule with the current counts (the same
question ``tradewind tasks why`` asks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from tradewind.scheduler import loading

if TYPE_CHECKING:
    from tradewind.config import Settings
    from tradewind.db.models import DagRun, TaskInstance
    from tradewind.serialization import SerializedDAG

__all__ = ["admission_blocker"]


def admission_blocker(
    session: Session, view: SerializedDAG, run: DagRun, ti: TaskInstance, settings: Settings
) -> Any:
    """The :class:`~tradewind.scheduler.decisions.Blocker` holding ``ti`` back, or None."""
    return loading.admission_blocker(
        session,
        view,
        run,
        ti,
        parallelism=settings.core.parallelism,
        max_active_tasks_per_dag=settings.core.max_active_tasks_per_dag,
    )
