"""Variables, connections (secrets never returned), pools, import errors, users and roles."""

from __future__ import annotations

from api_support import NOW, ApiEnv, assert_problem, basic

from tradewind.db import import_errors as db_import_errors


def test_variables_crud_masks_secret_values(api: ApiEnv) -> None:
    op = api.client("op")
    assert op.post("/api/v1/variables", json={"key": "region", "value": "eu"}).status_code == 200
    created = op.post("/api/v1/variables", json={"key": "db_password", "value": "hunter22"})
    assert created.json()["value"] == "***"
    listed = op.get("/api/v1/variables?order_by=-key").json()
    assert [(v["key"], v["value"]) for v in listed["variables"]] == [
        ("region", "eu"),
        ("db_password", "***"),
    ]
    patched = op.patch("/api/v1/variables/region", json={"value": "us", "description": "where"})
    assert patched.json() == {"key": "region", "value": "us", "description": "where"}
    assert_problem(
        op.patch("/api/v1/variables/region", json={"key": "other", "value": "x"}), 400, field="key"
    )
    assert op.delete("/api/v1/variables/region").status_code == 204
    assert_problem(op.get("/api/v1/variables/region"), 404, detail="'region'")
    # the audit log never holds a variable's value
    for event in ("api.variables.create", "api.variables.patch", "api.variables.delete"):
        for row in api.audit(event):
            assert "hunter22" not in str(row.extra) and "'eu'" not in str(row.extra)


def test_connections_never_return_secrets(api: ApiEnv) -> None:
    op = api.client("op")
    body = {
        "connection_id": "warehouse",
        "conn_type": "postgres",
        "host": "db",
        "login": "etl",
        "password": "s3cr3t!",
        "port": 5432,
        "extra": {"sslmode": "require", "api_token": "tok"},
    }
    created = op.post("/api/v1/connections", json=body)
    assert created.status_code == 200, created.text
    shown = op.get("/api/v1/connections/warehouse").json()
    assert shown["password"] == "***" and shown["schema"] is None
    assert '"api_token": "***"' in shown["extra"] and "require" in shown["extra"]
    assert "s3cr3t" not in op.get("/api/v1/connections").text
    assert_problem(op.post("/api/v1/connections", json=body), 409)
    # sending the mask back keeps the stored password
    op.patch("/api/v1/connections/warehouse", json={"host": "db2", "password": "***"})
    from tradewind.db import connections as db_connections

    with api.database.session() as s:
        stored = db_connections.get_connection(s, "warehouse", fernet=api.database.fernet)
    assert (stored.host, stored.password) == ("db2", "s3cr3t!")
    rows = api.audit("api.connections.create") + api.audit("api.connections.patch")
    assert all("s3cr3t" not in str(r.extra) for r in rows)
    bad = op.post("/api/v1/connections", json={**body, "connection_id": "x", "extra": "[1]"})
    assert_problem(bad, 400, field="body.extra")
    assert_problem(op.post("/api/v1/connections", json={**body, "port": 0}), 400, field="body.port")
    assert op.delete("/api/v1/connections/warehouse").status_code == 204


def test_pools_crud(api: ApiEnv) -> None:
    op = api.client("op")
    created = op.post("/api/v1/pools", json={"name": "gpu", "slots": 2})
    assert created.json()["open_slots"] == 2
    assert_problem(op.post("/api/v1/pools", json={"name": "gpu", "slots": 2}), 409)
    assert op.patch("/api/v1/pools/gpu", json={"slots": 4}).json()["slots"] == 4
    names = [p["name"] for p in op.get("/api/v1/pools").json()["pools"]]
    assert names == ["default_pool", "gpu"]
    assert_problem(op.delete("/api/v1/pools/default_pool"), 400)
    assert op.delete("/api/v1/pools/gpu").status_code == 204
    assert_problem(op.get("/api/v1/pools/gpu"), 404)
    assert_problem(
        op.post("/api/v1/pools", json={"name": "x", "slots": -1}), 400, field="body.slots"
    )


def test_import_errors(api: ApiEnv) -> None:
    class Err:
        path = "/dags/broken.py"
        relative_path = "broken.py"
        message = "SyntaxError: invalid syntax"
        line = 3
        traceback = "Traceback ...\nSyntaxError"

    with api.database.session() as s:
        db_import_errors.replace_import_errors(s, [], [Err()], now=NOW)
    viewer = api.client("viewer")
    listed = viewer.get("/api/v1/importErrors").json()
    assert listed["total_entries"] == 1
    error = listed["import_errors"][0]
    assert error["filename"] == "/dags/broken.py" and "Traceback" in error["stack_trace"]
    one = viewer.get(f"/api/v1/importErrors/{error['import_error_id']}").json()
    assert one["line"] == 3
    assert_problem(viewer.get("/api/v1/importErrors/12345"), 404)


def test_users_crud(api: ApiEnv) -> None:
    admin = api.client("admin")
    body = {"username": "ada", "password": "long-enough", "roles": [{"name": "Op"}]}
    created = admin.post("/api/v1/users", json=body)
    assert created.status_code == 200 and created.json()["roles"] == [{"name": "Op"}]
    assert "password" not in created.text
    assert_problem(admin.post("/api/v1/users", json=body), 409)
    assert_problem(
        admin.post("/api/v1/users", json={**body, "username": "bob", "roles": [{"name": "Nope"}]}),
        404,
    )
    assert_problem(admin.post("/api/v1/users", json={**body, "password": "short"}), 400)
    assert (
        api.client().get("/api/v1/users/me", headers=basic("ada", "long-enough")).status_code == 200
    )
    patched = admin.patch(
        "/api/v1/users/ada", json={"roles": [{"name": "Viewer"}], "password": "another-one"}
    ).json()
    assert patched["roles"] == [{"name": "Viewer"}]
    assert_problem(api.client().get("/api/v1/dags", headers=basic("ada", "long-enough")), 401)
    (row,) = api.audit("api.users.patch")
    assert row.extra["after"]["roles"] == ["Viewer"] and row.extra["after"]["password"] == "***"
    names = [u["username"] for u in admin.get("/api/v1/users?limit=3").json()["users"]]
    assert names == ["ada", "admin", "etl_editor"]
    assert_problem(admin.delete("/api/v1/users/admin"), 409)
    assert admin.delete("/api/v1/users/ada").status_code == 204
    assert_problem(admin.get("/api/v1/users/ada"), 404)


def test_admin_manages_other_users_tokens(api: ApiEnv) -> None:
    token = api.client("viewer").post("/api/v1/users/me/tokens", json={"name": "t"}).json()
    admin = api.client("admin")
    listed = admin.get("/api/v1/users/viewer/tokens").json()
    assert [t["name"] for t in listed["tokens"]] == ["t"]
    assert admin.delete(f"/api/v1/users/viewer/tokens/{token['id']}").status_code == 204
    bearer = {"Authorization": f"Bearer {token['token']}"}
    assert_problem(api.client().get("/api/v1/dags", headers=bearer), 401)
    assert_problem(admin.delete(f"/api/v1/users/op/tokens/{token['id']}"), 404)


def test_roles_crud_and_builtin_roles_are_fixed(api: ApiEnv) -> None:
    admin = api.client("admin")
    names = [r["name"] for r in admin.get("/api/v1/roles").json()["roles"]]
    assert names == ["Admin", "EtlEditor", "Op", "User", "Viewer"]
    body = {
        "name": "FinanceReader",
        "actions": [{"action": {"name": "read"}, "resource": {"name": "dags"}}],
        "dag_tags": ["secret"],
    }
    created = admin.post("/api/v1/roles", json=body).json()
    assert created["dag_tags"] == ["secret"] and created["builtin"] is False
    assert_problem(admin.post("/api/v1/roles", json=body), 409)
    bad = {
        **body,
        "name": "Bad",
        "actions": [{"action": {"name": "fly"}, "resource": {"name": "dags"}}],
    }
    assert_problem(admin.post("/api/v1/roles", json=bad), 400, field="permissions")
    patched = admin.patch("/api/v1/roles/FinanceReader", json={"dag_ids": ["fin*"]}).json()
    assert patched["dag_ids"] == ["fin*"]
    assert_problem(admin.patch("/api/v1/roles/Viewer", json={"dag_ids": ["x"]}), 400)
    assert_problem(admin.delete("/api/v1/roles/Admin"), 400)
    assert admin.delete("/api/v1/roles/FinanceReader").status_code == 204
    perms = admin.get("/api/v1/permissions").json()
    assert "dag_runs" in perms["dag_resources"] and perms["resources"]["variables"][0] == "read"
