"""What the API tests share: a migrated SQLite database with DAGs, runs and one user per role,
an app on it with a settable clock, and a TestClient per user.

The database is built once per test session (hashing five passwords with argon2 takes a
moment) and copied for each test.

Users (password ``<name>-password``): ``admin`` (Admin), ``op`` (Op), ``user`` (User),
``viewer`` (Viewer) and ``etl_editor`` (role EtlEditor: User's permissions on DAGs whose id
matches ``etl*`` only). DAGs: ``etl`` (tags team, daily), ``etl_hourly`` (tag team) and
``finance`` (tag secret), each with a run ``r1``; ``etl`` also has ``r2``.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tradewind.config import Settings
from tradewind.db import dags as db_dags
from tradewind.db import roles as db_roles
from tradewind.db import runs as db_runs
from tradewind.db import users as db_users
from tradewind.db.database import Database
from tradewind.db.users import LoginPolicy
from tradewind.state import RunState

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
ROLES = {
    "admin": "Admin",
    "op": "Op",
    "user": "User",
    "viewer": "Viewer",
    "etl_editor": "EtlEditor",
}


def password(name: str) -> str:
    return f"{name}-password"


def basic(name: str, secret: str | None = None) -> dict[str, str]:
    raw = f"{name}:{secret if secret is not None else password(name)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def dag_document(dag_id: str, tags: list[str]) -> dict[str, Any]:
    """a >> b >> m (mapped over 3) >> z, with a param ``rows`` (integer >= 1)."""
    from tradewind import DAG, Param, task
    from tradewind.operators.empty import EmptyOperator
    from tradewind.serialization import serialize_dag

    with DAG(
        dag_id,
        schedule="@daily",
        start_date=datetime(2024, 1, 1, tzinfo=UTC),
        tags=tags,
        description=f"the {dag_id} DAG",
        params={"rows": Param(3, type="integer", minimum=1)},
    ) as dag:
        a = EmptyOperator(task_id="a", retries=1)
        b = EmptyOperator(task_id="b")

        @task
        def m(x: int) -> int:
            return x

        z = EmptyOperator(task_id="z")
        a >> b >> m.expand(x=[1, 2, 3]) >> z
    return serialize_dag(dag)


def _build(home: Path) -> None:
    settings = Settings(home=home)
    db = Database.from_settings(settings)
    db.migrate()
    with db.session() as s:
        db_roles.sync_builtin_roles(s, now=NOW)
        db_roles.create_role(
            s,
            "EtlEditor",
            db_roles.BUILTIN_ROLES["User"][1],
            now=NOW,
            dag_ids=["etl*"],
        )
        for name, role in ROLES.items():
            db_users.create_user(s, name, password(name), roles=[role], now=NOW)
        for dag_id, tags in (
            ("etl", ["team", "daily"]),
            ("etl_hourly", ["team"]),
            ("finance", ["secret"]),
        ):
            doc = dag_document(dag_id, tags)
            version = db_dags.sync_dag(s, doc, now=NOW, paused_upon_creation=False)
            runs = (
                [("r1", NOW - timedelta(days=1)), ("r2", NOW)] if dag_id == "etl" else [("r1", NOW)]
            )
            for run_id, logical in runs:
                db_runs.create_run(
                    s,
                    doc,
                    run_id=run_id,
                    run_type="manual",
                    run_after=logical,
                    now=logical,
                    dag_version_id=version.version_id,
                    logical_date=logical,
                    data_interval=(logical, logical + timedelta(days=1)),
                    state=RunState.RUNNING,
                )
    db.dispose()


@pytest.fixture(scope="session")
def api_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("api-template")
    _build(home)
    return home


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class ApiEnv:
    """An app on a fresh copy of the test database."""

    settings: Settings
    database: Database
    app: Any
    clock: Clock
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, name: str | None = None) -> Any:
        """A TestClient logged in as ``name`` with basic auth (None: no credentials)."""
        from fastapi.testclient import TestClient

        key = name or ""
        if key not in self.clients:
            client = TestClient(self.app, raise_server_exceptions=False)
            if name is not None:
                client.headers.update(basic(name))
            self.clients[key] = client
        return self.clients[key]

    def audit(self, event: str) -> list[Any]:
        from tradewind.db import audit

        with self.database.session() as s:
            return audit.list_audit(s, event=event)


def make_env(template: Path, tmp_path: Path, **app_kwargs: Any) -> ApiEnv:
    from tradewind.api import create_app

    home = tmp_path / "home"
    shutil.copytree(template, home)
    settings = Settings(home=home)
    database = Database.from_settings(settings)
    clock = Clock()
    app_kwargs.setdefault(
        "login_policy", LoginPolicy(max_failures=3, first_lock=timedelta(seconds=30))
    )
    app = create_app(settings, database, clock=clock, **app_kwargs)
    return ApiEnv(settings, database, app, clock)


@pytest.fixture
def api(api_template: Path, tmp_path: Path) -> Iterator[ApiEnv]:
    env = make_env(api_template, tmp_path)
    yield env
    for client in env.clients.values():
        client.close()
    env.app.state.tradewind.read_database.dispose()
    env.database.dispose()


def assert_problem(
    response: Any, status: int, *, field: str | None = None, detail: str | None = None
) -> dict[str, Any]:
    """The response is a problem document with this status (and field / detail part)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert set(body) >= {"type", "title", "status", "detail"}
    if field is not None:
        assert body.get("field") == field, body
    if detail is not None:
        assert detail in body["detail"], body
    return body
