"""Every route checks its permission the same way: each built-in role, and a role limited to
some DAGs, gets exactly what its permissions say (403 otherwise), and lists over every DAG
show a limited role only its DAGs."""

from __future__ import annotations

import pytest
from api_support import ApiEnv, assert_problem

from tradewind.db.roles import BUILTIN_ROLES

D = "{dag}"
TI = f"/api/v1/dags/{D}/dagRuns/r1/taskInstances"

# (permission, method, path, json body). {dag} is filled in with the DAG under test; the
# bodies make an allowed request harmless (a dry run, an unknown id, a duplicate).
OPERATIONS: list[tuple[str, str, str, object]] = [
    ("dags.read", "GET", f"/api/v1/dags/{D}", None),
    ("dags.read", "GET", f"/api/v1/dags/{D}/details", None),
    ("dags.read", "GET", f"/api/v1/dags/{D}/tasks", None),
    ("dags.read", "GET", f"/api/v1/dags/{D}/dagVersions", None),
    ("dags.edit", "PATCH", f"/api/v1/dags/{D}", {"is_paused": False}),
    ("dag_runs.read", "GET", f"/api/v1/dags/{D}/dagRuns", None),
    ("dag_runs.read", "GET", f"/api/v1/dags/{D}/dagRuns/r1", None),
    ("dag_runs.create", "POST", f"/api/v1/dags/{D}/dagRuns", {"dag_run_id": "r1"}),
    ("dag_runs.edit", "PATCH", f"/api/v1/dags/{D}/dagRuns/nope", {"state": "success"}),
    ("dag_runs.edit", "POST", f"/api/v1/dags/{D}/dagRuns/nope/clear", {}),
    ("dag_runs.delete", "DELETE", f"/api/v1/dags/{D}/dagRuns/nope", None),
    ("task_instances.read", "GET", TI, None),
    ("task_instances.read", "GET", TI + "/a", None),
    ("task_instances.read", "GET", TI + "/a/dependencies", None),
    ("task_instances.edit", "PATCH", TI + "/a", {"new_state": "success", "dry_run": True}),
    ("task_instances.edit", "POST", f"/api/v1/dags/{D}/clearTaskInstances", {}),
    (
        "task_instances.edit",
        "POST",
        f"/api/v1/dags/{D}/updateTaskInstancesState",
        {"dag_run_id": "r1", "task_id": "a", "new_state": "success"},
    ),
    ("task_logs.read", "GET", TI + "/a/logs/1", None),
    ("xcoms.read", "GET", TI + "/a/xcomEntries", None),
    ("variables.read", "GET", "/api/v1/variables", None),
    ("variables.create", "POST", "/api/v1/variables", {"key": "k", "value": "v"}),
    ("variables.edit", "PATCH", "/api/v1/variables/nope", {"value": "x"}),
    ("variables.delete", "DELETE", "/api/v1/variables/nope", None),
    ("connections.read", "GET", "/api/v1/connections", None),
    ("connections.create", "POST", "/api/v1/connections", {"connection_id": "c"}),
    ("connections.edit", "PATCH", "/api/v1/connections/nope", {"host": "h"}),
    ("connections.delete", "DELETE", "/api/v1/connections/nope", None),
    ("pools.read", "GET", "/api/v1/pools", None),
    ("pools.create", "POST", "/api/v1/pools", {"name": "default_pool", "slots": 1}),
    ("pools.edit", "PATCH", "/api/v1/pools/nope", {"slots": 1}),
    ("pools.delete", "DELETE", "/api/v1/pools/nope", None),
    ("import_errors.read", "GET", "/api/v1/importErrors", None),
    ("audit_log.read", "GET", "/api/v1/eventLogs", None),
    ("users.read", "GET", "/api/v1/users", None),
    ("users.create", "POST", "/api/v1/users", {"username": "admin", "password": "12345678"}),
    ("users.edit", "PATCH", "/api/v1/users/nope", {"email": "x@y"}),
    ("users.edit", "GET", "/api/v1/users/nope/tokens", None),
    ("users.delete", "DELETE", "/api/v1/users/nope", None),
    ("roles.read", "GET", "/api/v1/roles", None),
    ("roles.read", "GET", "/api/v1/permissions", None),
    ("roles.create", "POST", "/api/v1/roles", {"name": "Admin"}),
    ("roles.edit", "PATCH", "/api/v1/roles/nope", {"description": "d"}),
    ("roles.delete", "DELETE", "/api/v1/roles/nope", None),
    ("tokens.read", "GET", "/api/v1/users/me/tokens", None),
    ("tokens.create", "POST", "/api/v1/users/me/tokens", {"name": "t"}),
    ("tokens.delete", "DELETE", "/api/v1/users/me/tokens/999", None),
    # last: when allowed it really deletes the DAG
    ("dags.delete", "DELETE", f"/api/v1/dags/{D}", None),
]

_DAG_RESOURCES = ("dags.", "dag_runs.", "task_instances.", "task_logs.", "xcoms.")


def _allowed(user: str, permission: str, dag: str) -> bool:
    if user == "etl_editor":
        held = set(BUILTIN_ROLES["User"][1])
        if permission.startswith(_DAG_RESOURCES):
            return permission in held and dag.startswith("etl")
        return permission in held
    role = {"admin": "Admin", "op": "Op", "user": "User", "viewer": "Viewer"}[user]
    return permission in BUILTIN_ROLES[role][1]


def _cases() -> list[tuple[str, str]]:
    out = [(u, "etl") for u in ("admin", "op", "user", "viewer", "etl_editor")]
    return [*out, ("etl_editor", "finance")]


@pytest.mark.parametrize(("user", "dag"), _cases())
def test_each_route_checks_its_permission(api: ApiEnv, user: str, dag: str) -> None:
    client = api.client(user)
    wrong = []
    for permission, method, path, body in OPERATIONS:
        url = path.replace(D, dag)
        response = client.request(method, url, json=body)
        allowed = _allowed(user, permission, dag)
        if allowed and response.status_code in (401, 403):
            wrong.append(f"{method} {url}: {response.status_code}, expected it allowed")
        if not allowed:
            if response.status_code != 403:
                wrong.append(f"{method} {url}: {response.status_code}, expected 403")
            else:
                assert_problem(response, 403, detail=permission)
        if response.status_code >= 500:
            wrong.append(f"{method} {url}: {response.status_code} {response.text}")
    assert wrong == []


def test_a_dag_limited_role_sees_only_its_dags_in_lists(api: ApiEnv) -> None:
    client = api.client("etl_editor")
    dags = client.get("/api/v1/dags").json()
    assert [d["dag_id"] for d in dags["dags"]] == ["etl", "etl_hourly"]
    assert dags["total_entries"] == 2
    runs = client.get("/api/v1/dags/~/dagRuns").json()
    assert {r["dag_id"] for r in runs["dag_runs"]} == {"etl", "etl_hourly"}
    batch = client.post("/api/v1/dags/~/dagRuns/list", json={"dag_ids": ["finance", "etl"]}).json()
    assert {r["dag_id"] for r in batch["dag_runs"]} == {"etl"}
    tis = client.get("/api/v1/dags/~/dagRuns/~/taskInstances").json()
    assert {t["dag_id"] for t in tis["task_instances"]} == {"etl", "etl_hourly"}
    patched = client.patch("/api/v1/dags?dag_id_pattern=a", json={"is_paused": True}).json()
    assert {d["dag_id"] for d in patched["dags"]} == set()
    source = client.get("/api/v1/dags/etl").json()["file_token"]
    assert client.get(f"/api/v1/dagSources/{source}").status_code == 200
    finance_token = api.client("admin").get("/api/v1/dags/finance").json()["file_token"]
    assert_problem(client.get(f"/api/v1/dagSources/{finance_token}"), 403)


def test_tag_scoped_roles(api: ApiEnv) -> None:
    admin = api.client("admin")
    admin.post(
        "/api/v1/roles",
        json={
            "name": "TeamReader",
            "actions": [
                {"action": {"name": "read"}, "resource": {"name": "dags"}},
                {"action": {"name": "read"}, "resource": {"name": "dag_runs"}},
            ],
            "dag_tags": ["team"],
        },
    )
    admin.post(
        "/api/v1/users",
        json={
            "username": "reader",
            "password": "reader-password",
            "roles": [{"name": "TeamReader"}],
        },
    )
    reader = api.client("reader")
    assert [d["dag_id"] for d in reader.get("/api/v1/dags").json()["dags"]] == ["etl", "etl_hourly"]
    assert reader.get("/api/v1/dags/etl_hourly/dagRuns").status_code == 200
    assert_problem(reader.get("/api/v1/dags/finance/dagRuns"), 403)
    assert_problem(reader.patch("/api/v1/dags/etl", json={"is_paused": True}), 403)
