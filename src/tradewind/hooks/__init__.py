"""Hooks: clients for external systems, configured by connections.

Names are imported on first use, so ``import tradewind.hooks`` loads no driver::

    from tradewind.hooks import SqliteHook, PostgresHook
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradewind._lazy import lazy_exports

if TYPE_CHECKING:
    from tradewind.hooks.base import BaseHook
    from tradewind.hooks.postgres import PostgresHook
    from tradewind.hooks.sql import DbApiHook, fetch_all_handler, fetch_one_handler
    from tradewind.hooks.sqlite import SqliteHook

__all__ = [
    "BaseHook",
    "DbApiHook",
    "PostgresHook",
    "SqliteHook",
    "fetch_all_handler",
    "fetch_one_handler",
]

_LAZY: dict[str, str] = {
    "BaseHook": "tradewind.hooks.base",
    "DbApiHook": "tradewind.hooks.sql",
    "fetch_all_handler": "tradewind.hooks.sql",
    "fetch_one_handler": "tradewind.hooks.sql",
    "SqliteHook": "tradewind.hooks.sqlite",
    "PostgresHook": "tradewind.hooks.postgres",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
