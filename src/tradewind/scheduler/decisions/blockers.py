"""Why something is not happening: tagged reasons shared by every decision module.

A :class:`Blocker` is one reason a task instance (or run) cannot make progress now, tagged with
its :class:`BlockerKind` so that ``tradewind tasks why`` can print reasons from different
decisions (readiness, admission, run state) in one stable order. ``str(blocker)`` is the
message.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Blocker", "BlockerKind"]


class BlockerKind(StrEnum):
    """What kind of rule holds something back; the declaration order is the display order."""

    STATE = "state"
    TRIGGER_RULE = "trigger_rule"
    MAPPING = "mapping"
    POOL = "pool"
    CONCURRENCY = "concurrency"
    EXECUTOR = "executor"
    RETRY_WAIT = "retry_wait"
    RESCHEDULE_WAIT = "reschedule_wait"
    DEPENDS_ON_PAST = "depends_on_past"
    RUN_STATE = "run_state"
    PAUSED = "paused"

    @property
    def order(self) -> int:
        """The position of this kind when reasons are listed together."""
        return _ORDER[self]


_ORDER = {kind: position for position, kind in enumerate(BlockerKind)}


@dataclass(frozen=True)
class Blocker:
    """One reason something cannot go ahead now: a kind and a message for people."""

    kind: BlockerKind
    message: str

    def __str__(self) -> str:
        return self.message
