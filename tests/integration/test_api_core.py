"""The API's common ground: authentication and throttling, tokens, the error shape,
pagination, the published schema, health, version and the audit trail of changes."""

from __future__ import annotations

import json
from datetime import timedelta

from api_support import NOW, ApiEnv, assert_problem, basic

from tradewind.db import jobs as db_jobs


def test_requests_without_credentials_get_401_with_a_challenge(api: ApiEnv) -> None:
    # when a request carries no credentials
    response = api.client().get("/api/v1/dags")
    # expect 401, a problem document and a WWW-Authenticate challenge
    assert_problem(response, 401, detail="authentication required")
    assert "Basic" in response.headers["www-authenticate"]


def test_basic_auth_logs_in_and_stamps_the_login(api: ApiEnv) -> None:
    # when the admin calls with the right password
    response = api.client("admin").get("/api/v1/users/me")
    # expect the caller, their permissions and a recorded login
    assert response.status_code == 200
    me = response.json()
    assert me["username"] == "admin" and me["auth"] == "basic"
    assert "users.create" in me["permissions"]
    assert me["login_count"] == 1 and me["last_login"] is not None


def test_wrong_passwords_are_throttled_then_the_lock_expires(api: ApiEnv) -> None:
    client = api.client()
    # given three wrong passwords in a row (the test policy locks after 3)
    for _ in range(2):
        assert_problem(client.get("/api/v1/dags", headers=basic("viewer", "nope")), 401)
    third = client.get("/api/v1/dags", headers=basic("viewer", "nope"))
    # expect the account locked: 429 with Retry-After, even for the right password
    assert_problem(third, 429, detail="too many failed logins")
    assert int(third.headers["retry-after"]) >= 1
    assert_problem(client.get("/api/v1/dags", headers=basic("viewer")), 429)
    # when the lock has passed, the right password works again and resets the count
    api.clock.advance(seconds=31)
    assert client.get("/api/v1/dags", headers=basic("viewer")).status_code == 200
    me = client.get("/api/v1/users/me", headers=basic("viewer")).json()
    assert me["failed_login_count"] == 0 and me["locked_until"] is None


def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password(api: ApiEnv) -> None:
    unknown = api.client().get("/api/v1/dags", headers=basic("ghost", "whatever1"))
    wrong = api.client().get("/api/v1/dags", headers=basic("viewer", "whatever1"))
    assert assert_problem(unknown, 401)["detail"] == assert_problem(wrong, 401)["detail"]


def test_a_deactivated_user_cannot_log_in(api: ApiEnv) -> None:
    # given the admin deactivates the viewer
    response = api.client("admin").patch("/api/v1/users/viewer", json={"active": False})
    assert response.status_code == 200 and response.json()["active"] is False
    # expect the viewer's password no longer works
    assert_problem(api.client().get("/api/v1/dags", headers=basic("viewer")), 401)


def test_personal_tokens_work_until_revoked_or_expired(api: ApiEnv) -> None:
    viewer = api.client("viewer")
    # given the viewer creates two tokens, one expiring in a day
    created = viewer.post("/api/v1/users/me/tokens", json={"name": "ci"})
    short = viewer.post("/api/v1/users/me/tokens", json={"name": "short", "expires_in_days": 1})
    assert created.status_code == 200 and short.status_code == 200
    token, short_token = created.json()["token"], short.json()["token"]
    assert token.startswith("twp_")
    bearer = {"Authorization": f"Bearer {token}"}
    # expect the token to authenticate, and to be listed without its value
    me = api.client().get("/api/v1/users/me", headers=bearer).json()
    assert me["username"] == "viewer" and me["auth"] == "token"
    listed = viewer.get("/api/v1/users/me/tokens").json()
    assert listed["total_entries"] == 2
    assert all("token" not in t for t in listed["tokens"])
    # when a day passes the short one stops working
    api.clock.advance(days=1, seconds=1)
    short_bearer = {"Authorization": f"Bearer {short_token}"}
    assert_problem(api.client().get("/api/v1/dags", headers=short_bearer), 401)
    # when the first is revoked it stops working too
    token_id = created.json()["id"]
    assert viewer.delete(f"/api/v1/users/me/tokens/{token_id}").status_code == 204
    assert_problem(api.client().get("/api/v1/dags", headers=bearer), 401, detail="revoked")
    assert api.audit("api.tokens.revoke")[0].extra["token_id"] == token_id


def test_a_made_up_token_is_rejected(api: ApiEnv) -> None:
    for value in ("twp_nonsense", "not-a-token"):
        response = api.client().get("/api/v1/dags", headers={"Authorization": f"Bearer {value}"})
        assert_problem(response, 401)


def test_errors_share_one_shape_naming_the_field_or_id(api: ApiEnv) -> None:
    admin = api.client("admin")
    # an unknown id: 404 naming it
    assert_problem(admin.get("/api/v1/dags/nope"), 404, detail="'nope'")
    # a query parameter of the wrong type: 400 naming it
    assert_problem(admin.get("/api/v1/dags?limit=abc"), 400, field="query.limit")
    # a body field that does not exist: 400 naming it
    response = admin.patch("/api/v1/dags/etl", json={"is_paused": True, "colour": "red"})
    assert_problem(response, 400, field="body.colour")
    # a body that is not JSON
    response = admin.post(
        "/api/v1/variables", content=b"{", headers={"content-type": "application/json"}
    )
    assert_problem(response, 400)
    # an unknown route and a wrong method
    assert_problem(admin.get("/api/v1/nothing-here"), 404)
    assert_problem(admin.put("/api/v1/dags/etl", json={}), 405)
    # a conflict with what exists
    response = admin.post("/api/v1/dags/etl/dagRuns", json={"dag_run_id": "r1"})
    assert_problem(response, 409, detail="already has a run")


def test_lists_are_paginated_and_ordered(api: ApiEnv) -> None:
    admin = api.client("admin")
    # when the three DAGs are read two at a time, newest id first
    first = admin.get("/api/v1/dags?limit=2&offset=0&order_by=-dag_id").json()
    second = admin.get("/api/v1/dags?limit=2&offset=2&order_by=-dag_id").json()
    # expect every page to carry the total and the pages to follow the order
    assert first["total_entries"] == second["total_entries"] == 3
    ids = [d["dag_id"] for d in first["dags"] + second["dags"]]
    assert ids == ["finance", "etl_hourly", "etl"]
    # and bad paging values to be rejected naming the parameter
    assert_problem(admin.get("/api/v1/dags?limit=0"), 400, field="query.limit")
    assert_problem(admin.get("/api/v1/dags?limit=100000"), 400, field="query.limit")
    assert_problem(admin.get("/api/v1/dags?offset=-1"), 400, field="query.offset")
    assert_problem(admin.get("/api/v1/dags?order_by=colour"), 400, field="order_by")


def test_the_schema_and_the_docs_are_published(api: ApiEnv) -> None:
    client = api.client()
    schema = client.get("/api/v1/openapi.json").json()
    # expect the Airflow paths, problem documents for errors, and no 422 responses
    paths = schema["paths"]
    for path in (
        "/api/v1/dags",
        "/api/v1/dags/{dag_id}/dagRuns",
        "/api/v1/dags/{dag_id}/clearTaskInstances",
        "/api/v1/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{task_try_number}",
        "/api/v1/eventLogs",
        "/api/v1/health",
    ):
        assert path in paths
    text = json.dumps(paths)
    assert '"422"' not in text
    assert "application/problem+json" in text
    assert client.get("/api/v1/docs").status_code == 200


def test_health_reports_the_database_and_component_heartbeats(api: ApiEnv) -> None:
    # given a scheduler beating now and a DAG processor that stopped beating long ago
    with api.database.session() as s:
        db_jobs.start_job(s, "scheduler", hostname="h", pid=1, now=NOW)
        db_jobs.start_job(s, "dag_processor", hostname="h", pid=2, now=NOW - timedelta(hours=1))
    # when anyone asks (no login needed)
    health = api.client().get("/api/v1/health").json()
    # expect each component's state and heartbeat
    assert health["metadatabase"]["status"] == "healthy"
    assert health["scheduler"]["status"] == "healthy"
    assert health["scheduler"]["latest_scheduler_heartbeat"].startswith("2024-03-01T12:00")
    assert health["dag_processor"]["status"] == "unhealthy"
    assert health["triggerer"]["status"] is None


def test_version(api: ApiEnv) -> None:
    from tradewind import __version__

    assert api.client().get("/api/v1/version").json()["version"] == __version__


def test_changes_are_audited_with_who_when_where_and_what(api: ApiEnv) -> None:
    # when the user pauses a DAG
    response = api.client("user").patch("/api/v1/dags/etl", json={"is_paused": True})
    assert response.status_code == 200 and response.json()["is_paused"] is True
    # expect one audit row naming the user, the time, the client and the change
    (row,) = api.audit("api.dags.patch")
    assert row.actor == "user" and row.dag_id == "etl" and row.when == NOW
    assert row.extra["client"] == "testclient"
    assert row.extra["before"] == {"is_paused": False}
    assert row.extra["after"] == {"is_paused": True}
    # and the audit log to be readable but not changeable through the API
    op = api.client("op")
    events = op.get("/api/v1/eventLogs?event=api.dags.patch").json()
    assert events["total_entries"] == 1
    entry = events["event_logs"][0]
    assert entry["owner"] == "user" and json.loads(entry["extra"])["after"] == {"is_paused": True}
    one = op.get(f"/api/v1/eventLogs/{entry['event_log_id']}")
    assert one.json()["event"] == "api.dags.patch"
    assert_problem(op.delete(f"/api/v1/eventLogs/{entry['event_log_id']}"), 405)
    assert_problem(op.post("/api/v1/eventLogs", json={}), 405)


def test_event_logs_filter(api: ApiEnv) -> None:
    admin = api.client("admin")
    admin.patch("/api/v1/dags/etl", json={"is_paused": True})
    admin.patch("/api/v1/dags/finance", json={"is_paused": True})
    admin.post("/api/v1/variables", json={"key": "k", "value": "v"})
    data = admin.get("/api/v1/eventLogs?dag_id=finance").json()
    assert [e["dag_id"] for e in data["event_logs"]] == ["finance"]
    data = admin.get("/api/v1/eventLogs?excluded_events=api.dags.patch").json()
    assert {e["event"] for e in data["event_logs"]} == {"api.variables.create"}
    data = admin.get("/api/v1/eventLogs?owner=admin&order_by=event_log_id").json()
    assert [e["event"] for e in data["event_logs"]][:2] == ["api.dags.patch", "api.dags.patch"]
    assert_problem(admin.get("/api/v1/eventLogs/999999"), 404)
