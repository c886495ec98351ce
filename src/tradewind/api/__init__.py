"""The REST API: a FastAPI application serving ``/api/v1``.

::

    from tradewind.api import create_app
    app = create_app(settings, database)      # serve with uvicorn (``tradewind api-server``)

Paths, parameters and field names follow Airflow's stable REST API v1 where the resource
exists there; Tradewind-only resources extend it in the same style. The schema is at
``/api/v1/openapi.json``, interactive docs at ``/api/v1/docs``.

Names load on first use, so importing this package does not import FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradewind._lazy import lazy_exports

if TYPE_CHECKING:
    from tradewind.api.app import API_PREFIX, create_app

__all__ = ["API_PREFIX", "create_app"]

__getattr__, __dir__ = lazy_exports(
    __name__, {"API_PREFIX": "tradewind.api.app", "create_app": "tradewind.api.app"}, globals()
)
