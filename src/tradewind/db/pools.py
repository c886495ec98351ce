"""Pools: named numbers of slots that limit how many task instances run at once.

A task instance holds ``pool_slots`` slots of its pool while queued or running (and while
deferred, when the pool has ``include_deferred``). ``default_pool`` (128 slots) is created by
the first migration and cannot be deleted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.engine import is_postgres
from tradewind.db.models import DEFAULT_POOL_NAME, SlotPool, TaskInstance
from tradewind.errors import InvalidArgumentError, NotFound
from tradewind.state import TaskState

__all__ = [
    "PoolStats",
    "delete_pool",
    "get_pool",
    "list_pools",
    "lock_pools",
    "occupied_in",
    "occupied_slots",
    "pool_stats",
    "set_pool",
]


@dataclass(frozen=True)
class PoolStats:
    """A pool's size and use: slots held by running, queued and deferred instances."""

    pool: str
    slots: int
    running: int
    queued: int
    deferred: int
    include_deferred: bool
    description: str | None = None

    @property
    def occupied(self) -> int:
        """Slots in use."""
        return self.running + self.queued + (self.deferred if self.include_deferred else 0)

    @property
    def open(self) -> int:
        """Slots free (never below zero, even after a pool was shrunk)."""
        return max(self.slots - self.occupied, 0)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "pool": self.pool,
            "slots": self.slots,
            "occupied": self.occupied,
            "running": self.running,
            "queued": self.queued,
            "deferred": self.deferred,
            "open": self.open,
            "include_deferred": self.include_deferred,
            "description": self.description,
        }


def get_pool(session: Session, name: str) -> SlotPool:
    """The pool row; raises :class:`NotFound`."""
    row = session.scalar(sa.select(SlotPool).where(SlotPool.pool == name))
    if row is None:
        raise NotFound("pool", name)
    return row


def set_pool(
    session: Session,
    name: str,
    slots: int,
    *,
    description: str | None = None,
    include_deferred: bool | None = None,
) -> SlotPool:
    """Create a pool or change its slots; None arguments keep existing values."""
    if not name or not name.strip():
        raise InvalidArgumentError("a pool needs a non-empty name", argument="name")
    if slots < 0:
        raise InvalidArgumentError(
            f"pool {name!r}: slots must be >= 0, got {slots}", argument="slots"
        )
    row = session.scalar(sa.select(SlotPool).where(SlotPool.pool == name))
    if row is None:
        row = SlotPool(pool=name, include_deferred=bool(include_deferred))
        session.add(row)
    elif include_deferred is not None:
        row.include_deferred = include_deferred
    row.slots = slots
    if description is not None:
        row.description = description
    session.flush()
    return row


def list_pools(session: Session) -> list[SlotPool]:
    """Every pool, by name."""
    return list(session.scalars(sa.select(SlotPool).order_by(SlotPool.pool)))


def lock_pools(session: Session) -> None:
    """On PostgreSQL, lock every pool row until the transaction ends (waiting for another
    scheduler that holds them), so that schedulers admit work one at a time and never hand
    out the same free slot twice. Nothing to do on SQLite (one writer at a time)."""
    if is_postgres(session):
        session.execute(sa.select(SlotPool.pool).with_for_update()).all()


def delete_pool(session: Session, name: str) -> None:
    """Delete a pool; ``default_pool`` cannot be deleted. :class:`NotFound` when absent."""
    if name == DEFAULT_POOL_NAME:
        raise InvalidArgumentError(f"{DEFAULT_POOL_NAME} cannot be deleted", argument="name")
    session.delete(get_pool(session, name))
    session.flush()


def _slots_by_pool_state(
    session: Session, pools: Collection[str] | None
) -> dict[tuple[str, TaskState], int]:
    statement = (
        sa.select(TaskInstance.pool, TaskInstance.state, sa.func.sum(TaskInstance.pool_slots))
        .where(TaskInstance.state.in_([TaskState.QUEUED, TaskState.RUNNING, TaskState.DEFERRED]))
        .group_by(TaskInstance.pool, TaskInstance.state)
    )
    if pools is not None:
        statement = statement.where(TaskInstance.pool.in_(list(pools)))
    return {
        (pool, TaskState(state)): int(total or 0)
        for pool, state, total in session.execute(statement)
    }


def pool_stats(session: Session, pools: Collection[str] | None = None) -> list[PoolStats]:
    """Size and use of every pool (or of ``pools``), by name."""
    used = _slots_by_pool_state(session, pools)
    rows = list_pools(session)
    if pools is not None:
        rows = [r for r in rows if r.pool in set(pools)]
    return [
        PoolStats(
            pool=row.pool,
            slots=row.slots,
            running=used.get((row.pool, TaskState.RUNNING), 0),
            queued=used.get((row.pool, TaskState.QUEUED), 0),
            deferred=used.get((row.pool, TaskState.DEFERRED), 0),
            include_deferred=row.include_deferred,
            description=row.description,
        )
        for row in rows
    ]


def occupied_in(session: Session, include_deferred: Mapping[str, bool]) -> dict[str, int]:
    """``{pool: slots held}`` for pools whose ``include_deferred`` flags the caller already
    knows (one grouped count, no read of the pool rows)."""
    used = _slots_by_pool_state(session, None)
    out = dict.fromkeys(include_deferred, 0)
    for (pool, state), slots in used.items():
        if pool in out and (state is not TaskState.DEFERRED or include_deferred[pool]):
            out[pool] += slots
    return out


def occupied_slots(session: Session, pools: Collection[str] | None = None) -> dict[str, int]:
    """``{pool: slots held}`` by queued and running (and deferred, where counted) instances."""
    return {stats.pool: stats.occupied for stats in pool_stats(session, pools)}
