"""DAG and DAG-run routes: list, filter, pause, delete, details, tasks, source; trigger, mark,
clear and delete runs."""

from __future__ import annotations

from api_support import NOW, ApiEnv, assert_problem


def test_dags_list_filters(api: ApiEnv) -> None:
    admin = api.client("admin")
    by_tag = admin.get("/api/v1/dags?tags=secret").json()
    assert [d["dag_id"] for d in by_tag["dags"]] == ["finance"]
    by_pattern = admin.get("/api/v1/dags?dag_id_pattern=ETL").json()
    assert [d["dag_id"] for d in by_pattern["dags"]] == ["etl", "etl_hourly"]
    dag = by_pattern["dags"][0]
    assert sorted(t["name"] for t in dag["tags"]) == ["daily", "team"]
    assert dag["timetable_summary"] == "0 0 * * *" and dag["is_paused"] is False
    assert admin.get("/api/v1/dags?paused=true").json()["total_entries"] == 0


def test_patch_many_dags_pauses_the_matching_ones(api: ApiEnv) -> None:
    admin = api.client("admin")
    response = admin.patch(
        "/api/v1/dags?dag_id_pattern=etl&update_mask=is_paused", json={"is_paused": True}
    )
    assert response.status_code == 200
    assert {d["dag_id"]: d["is_paused"] for d in response.json()["dags"]} == {
        "etl": True,
        "etl_hourly": True,
    }
    assert admin.get("/api/v1/dags/finance").json()["is_paused"] is False
    assert len(api.audit("api.dags.patch")) == 2
    assert_problem(
        admin.patch("/api/v1/dags?dag_id_pattern=etl&update_mask=owners", json={"is_paused": True}),
        400,
        field="update_mask",
    )


def test_dag_details_tasks_versions_and_source(api: ApiEnv, tmp_path) -> None:
    admin = api.client("admin")
    details = admin.get("/api/v1/dags/etl/details").json()
    assert details["catchup"] is False and details["task_count"] == 4
    assert details["params"]["rows"]["value"] == 3
    assert details["params"]["rows"]["schema"]["minimum"] == 1
    tasks = admin.get("/api/v1/dags/etl/tasks?order_by=-task_id").json()
    assert [t["task_id"] for t in tasks["tasks"]] == ["z", "m", "b", "a"]
    a = admin.get("/api/v1/dags/etl/tasks/a").json()
    assert a["retries"] == 1 and a["downstream_task_ids"] == ["b"]
    assert a["retry_delay"]["__type"] == "TimeDelta"
    assert_problem(admin.get("/api/v1/dags/etl/tasks/nope"), 404)
    versions = admin.get("/api/v1/dags/etl/dagVersions").json()
    assert versions["total_entries"] == 1 and versions["dag_versions"][0]["version_number"] == 1
    # the source is read from the DAG's file
    dag = admin.get("/api/v1/dags/etl").json()
    source = admin.get(f"/api/v1/dagSources/{dag['file_token']}")
    assert source.status_code == 200 and "def dag_document" in source.json()["content"]
    plain = admin.get(f"/api/v1/dagSources/{dag['file_token']}", headers={"accept": "text/plain"})
    assert plain.headers["content-type"].startswith("text/plain")
    assert_problem(admin.get("/api/v1/dagSources/%%%"), 400, field="file_token")


def test_delete_dag_refuses_while_tasks_run_then_deletes(api: ApiEnv) -> None:
    admin = api.client("admin")
    # given a running task instance
    admin.patch("/api/v1/dags/finance/dagRuns/r1/taskInstances/a", json={"new_state": "success"})
    from tradewind.db import task_instances as db_tis
    from tradewind.db.state_changes import transition_task
    from tradewind.state import TaskState

    with api.database.session() as s:
        ti_id = db_tis.get_ti_by_key(s, "finance", "r1", "b").id
        transition_task(s, ti_id, TaskState.CREATED, TaskState.SCHEDULED, now=NOW)
        transition_task(s, ti_id, TaskState.SCHEDULED, TaskState.QUEUED, now=NOW)
    assert_problem(admin.delete("/api/v1/dags/finance"), 409, detail="queued or running")
    with api.database.session() as s:
        transition_task(s, ti_id, TaskState.QUEUED, TaskState.FAILED, now=NOW)
    assert admin.delete("/api/v1/dags/finance").status_code == 204
    assert_problem(admin.get("/api/v1/dags/finance"), 404)
    assert api.audit("api.dags.delete")[0].dag_id == "finance"


def test_runs_list_one_dag_all_dags_and_batch(api: ApiEnv) -> None:
    admin = api.client("admin")
    one = admin.get("/api/v1/dags/etl/dagRuns?order_by=-logical_date").json()
    assert [r["dag_run_id"] for r in one["dag_runs"]] == ["r2", "r1"]
    assert one["dag_runs"][0]["execution_date"] == one["dag_runs"][0]["logical_date"]
    every = admin.get("/api/v1/dags/~/dagRuns").json()
    assert every["total_entries"] == 4
    since = admin.get("/api/v1/dags/~/dagRuns?logical_date_gte=2024-03-01T00:00:00Z").json()
    assert since["total_entries"] == 3
    batch = admin.post(
        "/api/v1/dags/~/dagRuns/list", json={"dag_ids": ["etl", "finance"], "page_limit": 2}
    ).json()
    assert batch["total_entries"] == 3 and len(batch["dag_runs"]) == 2
    assert_problem(admin.get("/api/v1/dags/~/dagRuns?state=bogus"), 400, field="state")
    assert_problem(admin.get("/api/v1/dags/nope/dagRuns"), 404)


def test_trigger_validates_conf_against_params(api: ApiEnv) -> None:
    admin = api.client("admin")
    bad = admin.post("/api/v1/dags/etl/dagRuns", json={"conf": {"rows": 0}})
    assert_problem(bad, 400, field="conf.rows")
    response = admin.post(
        "/api/v1/dags/etl/dagRuns",
        json={"dag_run_id": "mine", "logical_date": "2024-02-01T00:00:00Z", "conf": {"rows": 5}},
    )
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["dag_run_id"] == "mine" and run["state"] == "queued" and run["conf"] == {"rows": 5}
    assert run["data_interval_start"] is not None
    assert run["external_trigger"] is True
    api.clock.advance(hours=1)
    default_id = admin.post("/api/v1/dags/etl/dagRuns", json={}).json()
    assert default_id["dag_run_id"] == f"manual__{api.clock.now.isoformat()}"
    (row, *_) = api.audit("api.dag_runs.trigger")
    assert row.actor == "admin" and row.extra["client"] == "testclient"
    # the same logical date twice is a conflict
    again = admin.post("/api/v1/dags/etl/dagRuns", json={"logical_date": "2024-02-01T00:00:00Z"})
    assert_problem(again, 409)
    half = admin.post(
        "/api/v1/dags/etl/dagRuns", json={"data_interval_start": "2024-02-01T00:00:00Z"}
    )
    assert_problem(half, 400, field="data_interval_start")


def test_mark_run_success_and_failed(api: ApiEnv) -> None:
    admin = api.client("admin")
    done = admin.patch("/api/v1/dags/etl/dagRuns/r1", json={"state": "success"})
    assert done.status_code == 200 and done.json()["state"] == "success"
    tis = admin.get("/api/v1/dags/etl/dagRuns/r1/taskInstances").json()["task_instances"]
    assert {t["state"] for t in tis} == {"success"}
    failed = admin.patch("/api/v1/dags/etl/dagRuns/r2", json={"state": "failed"}).json()
    assert failed["state"] == "failed" and failed["end_date"] is not None
    states = {
        t["state"]
        for t in admin.get("/api/v1/dags/etl/dagRuns/r2/taskInstances").json()["task_instances"]
    }
    assert states == {"skipped"}
    (row, *_) = api.audit("api.dag_runs.patch")
    assert row.extra["before"] == {"state": "running"}
    assert_problem(admin.patch("/api/v1/dags/etl/dagRuns/r1", json={"state": "running"}), 400)


def test_clear_run_dry_run_then_for_real(api: ApiEnv) -> None:
    admin = api.client("admin")
    admin.patch("/api/v1/dags/etl/dagRuns/r1", json={"state": "failed"})
    dry = admin.post("/api/v1/dags/etl/dagRuns/r1/clear", json={}).json()
    assert dry["total_entries"] == 4
    assert admin.get("/api/v1/dags/etl/dagRuns/r1").json()["state"] == "failed"
    cleared = admin.post("/api/v1/dags/etl/dagRuns/r1/clear", json={"dry_run": False}).json()
    assert cleared["state"] == "queued" and cleared["clear_number"] == 1
    assert len(api.audit("api.dag_runs.clear")) == 1


def test_delete_run(api: ApiEnv) -> None:
    admin = api.client("admin")
    assert admin.delete("/api/v1/dags/etl/dagRuns/r1").status_code == 204
    assert_problem(admin.get("/api/v1/dags/etl/dagRuns/r1"), 404)
    assert_problem(admin.delete("/api/v1/dags/etl/dagRuns/r1"), 404)
    assert api.audit("api.dag_runs.delete")[0].run_id == "r1"
