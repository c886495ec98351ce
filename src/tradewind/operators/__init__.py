"""The built-in operators.

Names are loaded on first use (PEP 562), so importing this package costs almost nothing::

    from tradewind.operators import BashOperator, PythonOperator
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradewind._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "BaseBranchOperator": "tradewind.operators.branch",
    "BashOperator": "tradewind.operators.bash",
    "BranchPythonOperator": "tradewind.operators.python",
    "EmptyOperator": "tradewind.operators.empty",
    "LatestOnlyOperator": "tradewind.operators.latest_only",
    "PythonOperator": "tradewind.operators.python",
    "SQLExecuteQueryOperator": "tradewind.operators.sql",
    "ShortCircuitOperator": "tradewind.operators.python",
}

__all__ = [
    "BaseBranchOperator",
    "BashOperator",
    "BranchPythonOperator",
    "EmptyOperator",
    "LatestOnlyOperator",
    "PythonOperator",
    "SQLExecuteQueryOperator",
    "ShortCircuitOperator",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from tradewind.operators.bash import BashOperator
    from tradewind.operators.branch import BaseBranchOperator
    from tradewind.operators.empty import EmptyOperator
    from tradewind.operators.latest_only import LatestOnlyOperator
    from tradewind.operators.python import (
        BranchPythonOperator,
        PythonOperator,
        ShortCircuitOperator,
    )
    from tradewind.operators.sql import SQLExecuteQueryOperator
