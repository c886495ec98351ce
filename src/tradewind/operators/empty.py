"""``EmptyOperator``: a task that does nothing, used to shape a DAG (start/end/join points)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradewind.sdk.baseoperator import BaseOperator

if TYPE_CHECKING:
    from tradewind.sdk.context import Context

__all__ = ["EmptyOperator"]


class EmptyOperator(BaseOperator):
    """Does nothing. Its instances still take part in trigger rules like any task.

    The scheduler may mark such a task ``success`` without sending it to a worker when it has
    no ``on_execute_callback``, no ``on_success_callback`` and no inlets or outlets; it
    recognises the class by :attr:`inherits_from_empty_operator` (so serialization and the
    scheduler need not import the operator library). Subclasses keep the marker.

    Example::

        start = EmptyOperator(task_id="start")
        start >> [extract_a, extract_b]
    """

    ui_color = "#e8f7e4"
    #: Read by serialization/scheduling to recognise "nothing to run" tasks.
    inherits_from_empty_operator = True

    def execute(self, context: Context) -> Any:
        """Do nothing (and push nothing)."""
        return None
