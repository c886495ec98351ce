"""``tradewind api-server``: serve the REST API (and later the web UI) with uvicorn."""

from __future__ import annotations

import click

from tradewind.cli._output import ExitCode, echo_err, fail
from tradewind.cli._state import CliState, pass_state

__all__ = ["api_server"]


@click.command("api-server")
@click.option("--host", "-H", default=None, help="Address to bind (default: api.host).")
@click.option(
    "--port", "-p", type=click.IntRange(1, 65535), default=None, help="Port (default: api.port)."
)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: api.workers).",
)
@pass_state
def api_server(state: CliState, host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the REST API under /api/v1 until Ctrl-C.

    The metadata database must be at the newest schema (`tradewind db migrate`). Create a
    user to log in with `tradewind users create`.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        fail(
            "the API server needs FastAPI and uvicorn",
            ExitCode.FAILURE,
            hint="pip install 'tradewind[server]'",
        )
    from tradewind.api.server import serve
    from tradewind.cli._engine import database_at_head

    settings = state.settings()
    database_at_head(settings).dispose()
    host = host or settings.api.host
    port = port or settings.api.port
    workers = workers or settings.api.workers
    echo_err(f"Tradewind API on http://{host}:{port}/api/v1 (docs at /api/v1/docs)")
    serve(settings, host=host, port=port, workers=workers)
