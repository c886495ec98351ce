"""Serving the API with uvicorn (what ``tradewind api-server`` runs).

Each uvicorn worker process builds its own app with :func:`app_from_environment`, from the
same settings (``$TRADEWIND_HOME/tradewind.toml`` and ``TRADEWIND__…`` variables).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tradewind.config import Settings

__all__ = ["app_from_environment", "serve"]


def app_from_environment() -> FastAPI:
    """The API app for the settings this process's environment gives."""
    from tradewind.api.app import create_app
    from tradewind.config import load_settings
    from tradewind.db.database import Database

    settings = load_settings()
    return create_app(settings, Database.from_settings(settings))


def serve(settings: Settings, *, host: str, port: int, workers: int) -> None:
    """Run uvicorn until it is stopped (Ctrl-C or SIGTERM)."""
    import uvicorn

    uvicorn.run(
        "tradewind.api.server:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.logging.level.lower(),
        # The client address in the audit log comes from X-Forwarded-For only when a proxy on
        # this machine says so.
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )
