"""Backfills: runs over a past date range that the scheduler creates and drives.

A DAG has at most one backfill that is not completed. ``reprocess_behavior`` says what happens
to dates that already have a run: ``"none"`` (leave them), ``"failed"`` (re-run failed ones,
``--rerun-failed``) or ``"completed"`` (re-run every finished one), as in Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.models import Backfill, DagRun
from tradewind.db.state_changes import transition_run
from tradewind.errors import AlreadyExists, InvalidArgumentError, NotFound
from tradewind.state import RunState

__all__ = [
    "REPROCESS_BEHAVIORS",
    "cancel_backfill",
    "complete_backfill",
    "create_backfill",
    "get_backfill",
    "list_backfills",
    "set_backfill_paused",
]

#: Allowed values of ``reprocess_behavior``.
REPROCESS_BEHAVIORS = ("none", "failed", "completed")


def create_backfill(
    session: Session,
    dag_id: str,
    from_date: datetime,
    to_date: datetime,
    *,
    now: datetime,
    conf: Mapping[str, Any] | None = None,
    max_active_runs: int = 10,
    reprocess_behavior: str = "none",
    is_paused: bool = False,
) -> Backfill:
    """Record a new backfill of ``dag_id`` over [from_date, to_date].

    Raises :class:`InvalidArgumentError` for a reversed range, ``max_active_runs`` < 1 or an
    unknown ``reprocess_behavior``, and :class:`AlreadyExists` when the DAG has a backfill that
    is not completed.
    """
    if from_date > to_date:
        raise InvalidArgumentError(
            f"backfill of {dag_id!r}: start {from_date.isoformat()} is after end "
            f"{to_date.isoformat()}",
            argument="from_date",
        )
    if max_active_runs < 1:
        raise InvalidArgumentError(
            f"backfill of {dag_id!r}: max_active_runs must be >= 1, got {max_active_runs}",
            argument="max_active_runs",
        )
    if reprocess_behavior not in REPROCESS_BEHAVIORS:
        raise InvalidArgumentError(
            f"backfill of {dag_id!r}: reprocess_behavior must be one of "
            f"{', '.join(REPROCESS_BEHAVIORS)}, got {reprocess_behavior!r}",
            argument="reprocess_behavior",
        )
    running = session.scalar(
        sa.select(Backfill.id).where(Backfill.dag_id == dag_id, Backfill.completed_at.is_(None))
    )
    if running is not None:
        raise AlreadyExists(
            "backfill",
            dag_id,
            f"DAG {dag_id!r} already has a backfill in progress (id {running}); "
            "cancel it or wait for it to finish",
        )
    row = Backfill(
        dag_id=dag_id,
        from_date=from_date,
        to_date=to_date,
        conf=dict(conf or {}),
        is_paused=is_paused,
        max_active_runs=max_active_runs,
        reprocess_behavior=reprocess_behavior,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get_backfill(session: Session, backfill_id: int) -> Backfill:
    """A backfill by id; raises :class:`NotFound`."""
    row = session.get(Backfill, backfill_id)
    if row is None:
        raise NotFound("backfill", str(backfill_id))
    return row


def list_backfills(
    session: Session, *, dag_id: str | None = None, active_only: bool = False
) -> list[Backfill]:
    """Backfills, newest first; ``active_only`` leaves out completed and cancelled ones."""
    statement = sa.select(Backfill)
    if dag_id is not None:
        statement = statement.where(Backfill.dag_id == dag_id)
    if active_only:
        statement = statement.where(Backfill.completed_at.is_(None))
    return list(session.scalars(statement.order_by(Backfill.created_at.desc(), Backfill.id.desc())))


def set_backfill_paused(
    session: Session, backfill_id: int, paused: bool, *, now: datetime
) -> Backfill:
    """Pause or resume a backfill (the scheduler starts no new runs of a paused one)."""
    row = get_backfill(session, backfill_id)
    if row.completed_at is not None:
        raise InvalidArgumentError(
            f"backfill {backfill_id} is completed; it cannot be paused or resumed",
            argument="backfill_id",
        )
    row.is_paused = paused
    row.updated_at = now
    session.flush()
    return row


def cancel_backfill(session: Session, backfill_id: int, *, now: datetime) -> list[int]:
    """Stop a backfill: runs of it that have not started fail, running ones finish normally.

    Returns the ids of the runs it failed. Cancelling a completed backfill changes nothing.
    """
    row = get_backfill(session, backfill_id)
    if row.completed_at is not None:
        return []
    queued = session.scalars(
        sa.select(DagRun.id).where(
            DagRun.backfill_id == backfill_id, DagRun.state == RunState.QUEUED
        )
    ).all()
    failed = [
        run_pk
        for run_pk in queued
        if transition_run(session, run_pk, RunState.QUEUED, RunState.FAILED, now=now, end_date=now)
    ]
    row.is_paused = True
    row.completed_at = now
    row.updated_at = now
    session.flush()
    return failed


def complete_backfill(session: Session, backfill_id: int, *, now: datetime) -> bool:
    """Mark a backfill completed (its last run finished); returns whether it was still open."""
    row = get_backfill(session, backfill_id)
    if row.completed_at is not None:
        return False
    row.completed_at = now
    row.updated_at = now
    session.flush()
    return True
