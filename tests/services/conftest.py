"""Fixtures for tests against real servers (PostgreSQL, …).

A server that cannot be reached skips its tests locally, but fails them when
``TRADEWIND_REQUIRE_SERVICES=1`` (CI sets it), so CI never goes green by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_DB = "test"
POSTGRES_USER = "postgres"


def services_required() -> bool:
    """Whether unreachable services must fail tests instead of skipping them."""
    return os.environ.get("TRADEWIND_REQUIRE_SERVICES", "").strip() == "1"


def require_service(name: str, check: Callable[[], object]) -> None:
    """Run ``check``; when it raises, skip the test, or fail it if services are required."""
    try:
        check()
    except Exception as exc:  # any failure to reach the server counts
        message = f"{name} is not reachable: {type(exc).__name__}: {exc}"
        if services_required():
            pytest.fail(f"{message} (TRADEWIND_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(message)


@dataclass(frozen=True)
class PostgresServer:
    """Where the test PostgreSQL server is (trust authentication, no password)."""

    host: str = POSTGRES_HOST
    port: int = POSTGRES_PORT
    dbname: str = POSTGRES_DB
    user: str = POSTGRES_USER

    @property
    def uri(self) -> str:
        """A Tradewind connection URI for it."""
        return f"postgres://{self.user}@{self.host}:{self.port}/{self.dbname}"


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """The test PostgreSQL server, checked to answer ``SELECT 1``."""
    server = PostgresServer()

    def check() -> None:
        import psycopg

        with psycopg.connect(
            host=server.host,
            port=server.port,
            dbname=server.dbname,
            user=server.user,
            connect_timeout=3,
        ) as conn:
            conn.execute("SELECT 1")

    require_service(f"PostgreSQL at {server.host}:{server.port}/{server.dbname}", check)
    return server
