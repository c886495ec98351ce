"""Task-instance routes: listing across runs, get, mark, clear with options, why a task
waits, logs per try (paged while the try runs) and XComs."""

from __future__ import annotations

import itertools

from api_support import NOW, ApiEnv, assert_problem

from tradewind.db import task_instances as db_tis
from tradewind.db import xcom as db_xcom
from tradewind.db.state_changes import transition_task
from tradewind.executors.workload import TaskInstanceKey, default_log_path
from tradewind.state import TaskState

T = TaskState
BASE = "/api/v1/dags/etl/dagRuns/r1/taskInstances"


def _move(api: ApiEnv, run_id: str, task_id: str, *path: TaskState, **fields: object) -> None:
    with api.database.session() as s:
        ti_id = db_tis.get_ti_by_key(s, "etl", run_id, task_id).id
        for old, new in itertools.pairwise(path):
            transition_task(s, ti_id, old, new, now=NOW, **(fields if new is path[-1] else {}))


def test_list_one_run_every_run_and_batch(api: ApiEnv) -> None:
    admin = api.client("admin")
    one = admin.get(BASE).json()
    assert one["total_entries"] == 4
    assert [t["task_id"] for t in one["task_instances"]] == ["a", "b", "m", "z"]
    assert one["task_instances"][0]["state"] is None  # "created" shows as Airflow's none
    every = admin.get("/api/v1/dags/~/dagRuns/~/taskInstances?task_id=a&order_by=dag_id").json()
    assert [(t["dag_id"], t["dag_run_id"]) for t in every["task_instances"]] == [
        ("etl", "r1"),
        ("etl", "r2"),
        ("etl_hourly", "r1"),
        ("finance", "r1"),
    ]
    assert (
        admin.get("/api/v1/dags/etl/dagRuns/~/taskInstances?state=none").json()["total_entries"]
        == 8
    )
    batch = admin.post(
        "/api/v1/dags/~/dagRuns/~/taskInstances/list",
        json={"dag_ids": ["finance"], "task_ids": ["a", "b"], "state": ["none"]},
    ).json()
    assert batch["total_entries"] == 2
    assert_problem(admin.get(BASE + "?state=sleepy"), 400, field="state")
    assert_problem(admin.get("/api/v1/dags/etl/dagRuns/nope/taskInstances"), 404)


def test_get_one_and_mapped_instances(api: ApiEnv) -> None:
    admin = api.client("admin")
    a = admin.get(BASE + "/a").json()
    assert a["task_id"] == "a" and a["map_index"] == -1 and a["max_tries"] == 1
    with api.database.session() as s:
        db_tis.expand_mapped(s, "etl", "r1", "m", 3, now=NOW)
    mapped = admin.get(BASE + "/m/listMapped").json()
    assert [t["map_index"] for t in mapped["task_instances"]] == [0, 1, 2]
    assert admin.get(BASE + "/m/2").json()["map_index"] == 2
    assert_problem(admin.get(BASE + "/m/7"), 404)
    assert_problem(admin.get(BASE + "/nope"), 404)


def test_mark_a_task_instance(api: ApiEnv) -> None:
    admin = api.client("admin")
    dry = admin.patch(BASE + "/a", json={"new_state": "success", "dry_run": True}).json()
    assert [t["task_id"] for t in dry["task_instances"]] == ["a"]
    assert admin.get(BASE + "/a").json()["state"] is None
    done = admin.patch(BASE + "/a", json={"new_state": "success"}).json()
    assert done["task_instances"][0]["state"] is None  # the state before
    assert admin.get(BASE + "/a").json()["state"] == "success"
    (row,) = api.audit("api.task_instances.patch")
    assert (row.task_id, row.extra["before"], row.extra["after"]) == (
        "a",
        {"state": "none"},
        {"state": "success"},
    )
    assert_problem(
        admin.patch(BASE + "/a", json={"new_state": "running"}), 400, field="body.new_state"
    )


def test_mark_with_downstream(api: ApiEnv) -> None:
    admin = api.client("admin")
    body = {"dag_run_id": "r1", "task_id": "b", "new_state": "failed", "include_downstream": True}
    dry = admin.post("/api/v1/dags/etl/updateTaskInstancesState", json=body).json()
    assert sorted(t["task_id"] for t in dry["task_instances"]) == ["b", "m", "z"]
    done = admin.post(
        "/api/v1/dags/etl/updateTaskInstancesState", json={**body, "dry_run": False}
    ).json()
    assert len(done["task_instances"]) == 3
    states = {t["task_id"]: t["state"] for t in admin.get(BASE).json()["task_instances"]}
    assert states == {"a": None, "b": "failed", "m": "failed", "z": "failed"}


def test_clear_task_instances_with_options(api: ApiEnv) -> None:
    admin = api.client("admin")
    _move(api, "r1", "a", T.CREATED, T.SUCCESS)
    _move(api, "r1", "b", T.CREATED, T.FAILED)
    _move(api, "r2", "b", T.CREATED, T.FAILED)
    url = "/api/v1/dags/etl/clearTaskInstances"
    # the defaults: a dry run of the failed ones
    dry = admin.post(url, json={}).json()
    assert sorted((t["dag_run_id"], t["task_id"]) for t in dry["task_instances"]) == [
        ("r1", "b"),
        ("r2", "b"),
    ]
    # one run, the task with its upstream, every state
    body = {"dag_run_id": "r1", "task_ids": ["b"], "include_upstream": True, "only_failed": False}
    upstream = admin.post(url, json=body).json()
    assert sorted(t["task_id"] for t in upstream["task_instances"]) == ["a", "b"]
    done = admin.post(url, json={**body, "dry_run": False}).json()
    assert {t["state"] for t in done["task_instances"]} == {"success", "failed"}
    states = {t["task_id"]: t["state"] for t in admin.get(BASE).json()["task_instances"]}
    assert states["a"] is None and states["b"] is None
    (row,) = api.audit("api.task_instances.clear")
    assert row.extra["cleared"] == 2 and row.extra["upstream"] is True
    assert_problem(admin.post(url, json={"task_ids": ["nope"]}), 400, field="task_ids")


def test_dependencies_explain_why_a_task_waits(api: ApiEnv) -> None:
    admin = api.client("admin")
    why = admin.get(BASE + "/b/dependencies").json()
    assert why["state"] is None and why["run_state"] == "running"
    assert [d["name"] for d in why["dependencies"]] == ["trigger_rule"]
    assert any("upstream" in r for r in why["reasons"])
    assert why["upstream"] == [{"task_id": "a", "map_index": -1, "state": None}]
    done = admin.get(BASE + "/a/dependencies")
    assert done.status_code == 200


def test_logs_are_paged_and_followed_while_the_try_runs(api: ApiEnv) -> None:
    admin = api.client("admin")
    _move(api, "r1", "a", T.CREATED, T.SCHEDULED, T.QUEUED, T.RUNNING, try_number=1)
    key = TaskInstanceKey("etl", "r1", "a", -1, 1)
    path = default_log_path(api.settings.logging.base_log_folder, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("line one\nline two\nhalf a li")
    url = BASE + "/a/logs/1"
    # while the try runs, whole lines come back and the log is not over
    first = admin.get(url).json()
    assert first["content"] == "line one\nline two\n" and first["end_of_log"] is False
    # a small page cuts at a line end and continues from the token
    small = admin.get(url + "?max_bytes=12").json()
    assert small["content"] == "line one\n"
    rest = admin.get(url, params={"token": small["continuation_token"]}).json()
    assert rest["content"] == "line two\n"
    # the try writes more and ends: the rest arrives and the log is over
    with path.open("a") as fh:
        fh.write("ne\nthe end\n")
    _move(api, "r1", "a", T.RUNNING, T.SUCCESS)
    last = admin.get(url, params={"token": first["continuation_token"]}).json()
    assert last["content"] == "half a line\nthe end\n" and last["end_of_log"] is True
    full = admin.get(url + "?full_content=true", headers={"accept": "text/plain"})
    assert full.text.startswith("line one") and full.headers["x-end-of-log"] == "true"
    assert_problem(admin.get(BASE + "/a/logs/2"), 404)
    assert_problem(admin.get(url + "?token=garbage!"), 400, field="token")


def test_xcom_entries(api: ApiEnv) -> None:
    from datetime import date

    admin = api.client("admin")
    with api.database.session() as s:
        db_xcom.set_xcom(s, "etl", "r1", "a", "return_value", -1, {"n": 1}, now=NOW)
        db_xcom.set_xcom(s, "etl", "r1", "a", "day", -1, date(2024, 1, 2), now=NOW)
    listed = admin.get(BASE + "/a/xcomEntries").json()
    assert [x["key"] for x in listed["xcom_entries"]] == ["day", "return_value"]
    one = admin.get(BASE + "/a/xcomEntries/return_value").json()
    assert one["value"] == {"n": 1} and one["dag_run_id"] == "r1"
    day = admin.get(BASE + "/a/xcomEntries/day?stringify=true").json()
    assert day["value"] == "2024-01-02"
    assert_problem(admin.get(BASE + "/a/xcomEntries/nope"), 404)
