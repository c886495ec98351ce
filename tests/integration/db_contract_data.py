"""Contract tests of the data aggregates (XCom, variables, connections, pools, audit, assets,
backfills, jobs, retention, task data); mixed into ``db_contract.DbContract``."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from db_contract_support import NOW, T, add_run, dag_document, set_state, ti_id_of

from tradewind.db import assets, audit, backfills, dags, jobs, pools, retention
from tradewind.db import connections as db_connections
from tradewind.db import runs as db_runs
from tradewind.db import task_instances as tis
from tradewind.db import variables as db_variables
from tradewind.db import xcom as db_xcom
from tradewind.db.crypto import fernet_from_keys, generate_key
from tradewind.db.database import Database
from tradewind.db.state_changes import transition_run, transition_task
from tradewind.db.task_data import DbSecretsBackend, DbTaskDataService
from tradewind.errors import (
    AlreadyExists,
    ConnectionNotFound,
    InvalidArgumentError,
    NotFound,
    TradewindError,
    VariableNotFound,
    XComError,
)
from tradewind.sdk.connection import Connection
from tradewind.serialization import xcom as codec
from tradewind.state import RunState


class DataContract:
    """Tests of the data aggregates; ``db`` comes from the backend's subclass."""

    # -- xcom ----------------------------------------------------------------------------------

    def test_xcom_round_trip_replace_list_delete(self, db: Database) -> None:
        add_run(db)
        value = {"n": Decimal("1.5"), "when": NOW, "pair": (1, 2), "tags": {"x"}}
        with db.session() as s:
            db_xcom.set_xcom(s, "etl", "r1", "a", "return_value", -1, value, now=NOW)
            db_xcom.set_xcom(s, "etl", "r1", "a", "return_value", -1, [1], now=NOW)
            db_xcom.set_xcom(s, "etl", "r1", "a", "return_value", -1, value, now=NOW)
            for index in (2, 0):
                db_xcom.set_xcom(s, "etl", "r1", "m", "return_value", index, index, now=NOW)
        with db.session() as s:
            assert db_xcom.get_xcom(s, "etl", "r1", "a", "return_value") == value
            assert db_xcom.get_xcom_map_indexes(s, "etl", "r1", "m", "return_value") == [0, 2]
            # every instance's value in one read, by map index
            assert db_xcom.get_xcom_values(s, "etl", "r1", "m", "return_value") == {0: 0, 2: 2}
            assert db_xcom.get_xcom_values(s, "etl", "r1", "a", "return_value") == {-1: value}
            texts = db_xcom.get_xcom_texts(s, "etl", "r1", "m", "return_value")
            assert {i: codec.decode(t) for i, t in texts.items()} == {0: 0, 2: 2}
            assert list(db_xcom.get_xcom_texts(s, "etl", "r1", "m", "return_value", 2)) == [2]
            with pytest.raises(KeyError, match="other"):
                db_xcom.get_xcom(s, "etl", "r1", "a", "other")
            rows = db_xcom.list_xcoms(s, "etl", "r1")
            assert [(r.task_id, r.map_index) for r in rows] == [("a", -1), ("m", 0), ("m", 2)]
            assert db_xcom.delete_xcoms(s, "etl", "r1", task_id="m", map_index=2) == 1
            assert db_xcom.get_xcom_map_indexes(s, "etl", "r1", "m", "return_value") == [0]

    def test_xcom_size_limit(self, db: Database) -> None:
        add_run(db)
        with db.session() as s:
            with pytest.raises(XComError, match="limit of 10 bytes"):
                db_xcom.set_xcom(s, "etl", "r1", "a", "big", -1, "x" * 50, now=NOW, max_size=10)
            assert db_xcom.list_xcoms(s, "etl", "r1") == []

    # -- variables and connections -------------------------------------------------------------

    def test_variables_are_encrypted_at_rest(self, db: Database) -> None:
        fernet = fernet_from_keys(generate_key())
        with db.session() as s:
            db_variables.set_variable(
                s, "api_key", "s3cret-value", fernet=fernet, now=NOW, description="d"
            )
        with db.engine.connect() as conn:
            raw, flag = conn.execute(
                sa.text("SELECT val, is_encrypted FROM variable WHERE key = 'api_key'")
            ).one()
        assert "s3cret" not in raw and bool(flag) is True
        with db.session() as s:
            assert db_variables.get_variable(s, "api_key", fernet=fernet) == "s3cret-value"
            # a different key cannot read it, and says why
            with pytest.raises(TradewindError, match="another key"):
                db_variables.get_variable(s, "api_key", fernet=fernet_from_keys(generate_key()))
            with pytest.raises(TradewindError, match="no Fernet key"):
                db_variables.get_variable(s, "api_key", fernet=None)

    def test_variables_crud(self, db: Database) -> None:
        with db.session() as s:
            db_variables.set_variable(s, "b", "1", fernet=None, now=NOW)
            db_variables.set_variable(s, "a", "x", fernet=None, now=NOW, description="first")
            db_variables.set_variable(s, "a", "y", fernet=None, now=NOW)
        with db.session() as s:
            rows = db_variables.list_variables(s)
            assert [(r.key, r.description, r.is_encrypted) for r in rows] == [
                ("a", "first", False),
                ("b", None, False),
            ]
            assert db_variables.get_variable(s, "a", fernet=None) == "y"
            db_variables.delete_variable(s, "a")
            with pytest.raises(VariableNotFound):
                db_variables.delete_variable(s, "a")
            with pytest.raises(KeyError):
                db_variables.get_variable(s, "a", fernet=None)

    def test_key_rotation_re_encrypts(self, db: Database) -> None:
        old, new = generate_key(), generate_key()
        with db.session() as s:
            db_variables.set_variable(s, "v", "value", fernet=fernet_from_keys(old), now=NOW)
            conn = Connection("c", conn_type="http", password="pw")
            db_connections.add_connection(s, conn, fernet=fernet_from_keys(old), now=NOW)
        both = fernet_from_keys(f"{new},{old}")
        with db.session() as s:
            assert db_variables.rotate_variables(s, both) == 1
            assert db_connections.rotate_connections(s, both, now=NOW) == 1
        with db.session() as s:
            only_new = fernet_from_keys(new)
            assert db_variables.get_variable(s, "v", fernet=only_new) == "value"
            assert db_connections.get_connection(s, "c", fernet=only_new).password == "pw"

    def test_connections_crud_and_encryption(self, db: Database) -> None:
        fernet = fernet_from_keys(generate_key())
        conn = Connection.from_uri("warehouse", "postgres://etl:p%40ss@db:5432/sales?sslmode=req")
        conn.description = "main db"
        with db.session() as s:
            db_connections.add_connection(s, conn, fernet=fernet, now=NOW)
            with pytest.raises(AlreadyExists):
                db_connections.add_connection(s, conn, fernet=fernet, now=NOW)
            db_connections.set_connection(s, Connection("http_api", "http"), fernet=fernet, now=NOW)
        with db.engine.connect() as conn_:
            raw = conn_.execute(
                sa.text("SELECT password, extra FROM connection WHERE conn_id = 'warehouse'")
            ).one()
        assert "p@ss" not in raw[0] and "sslmode" not in raw[1]
        with db.session() as s:
            back = db_connections.get_connection(s, "warehouse", fernet=fernet)
            assert back.to_dict() == conn.to_dict()
            assert [c.conn_id for c in db_connections.list_connections(s, fernet=fernet)] == [
                "http_api",
                "warehouse",
            ]
            db_connections.delete_connection(s, "warehouse")
            with pytest.raises(ConnectionNotFound):
                db_connections.get_connection(s, "warehouse", fernet=fernet)

    # -- pools ---------------------------------------------------------------------------------

    def test_pools_crud_and_occupancy(self, db: Database) -> None:
        add_run(db)
        with db.session() as s:
            pools.set_pool(s, "p1", 5, description="small")
            pools.set_pool(s, "p1", 4)  # keeps the description
            with pytest.raises(InvalidArgumentError):
                pools.set_pool(s, "bad", -1)
        set_state(db, ti_id_of(db, "b"), T.SCHEDULED, T.QUEUED)  # 2 slots of p1
        set_state(db, ti_id_of(db, "a"), T.SCHEDULED, T.QUEUED, T.RUNNING)  # 1 of default
        with db.session() as s:
            stats = {p.pool: p for p in pools.pool_stats(s)}
            assert (stats["p1"].slots, stats["p1"].description) == (4, "small")
            assert (stats["p1"].queued, stats["p1"].open) == (2, 2)
            assert (stats["default_pool"].running, stats["default_pool"].open) == (1, 127)
            assert pools.occupied_slots(s, ["p1"]) == {"p1": 2}
            with pytest.raises(InvalidArgumentError, match="default_pool"):
                pools.delete_pool(s, "default_pool")
            pools.delete_pool(s, "p1")
            with pytest.raises(NotFound):
                pools.get_pool(s, "p1")
            assert [p.pool for p in pools.list_pools(s)] == ["default_pool"]

    # -- audit ---------------------------------------------------------------------------------

    def test_audit_log_appends_and_lists_newest_first(self, db: Database) -> None:
        with db.session() as s:
            audit.record(s, "cli.variables.set", actor="ann", when=NOW, extra={"key": "a"})
            audit.record(s, "cli.dags.pause", actor="bob", when=NOW + timedelta(1), dag_id="etl")
        with db.session() as s:
            rows = audit.list_audit(s)
            assert [r.event for r in rows] == ["cli.dags.pause", "cli.variables.set"]
            assert rows[1].extra == {"key": "a"} and rows[1].when == NOW
            assert [r.actor for r in audit.list_audit(s, event_prefix="cli.var")] == ["ann"]
            assert [r.event for r in audit.list_audit(s, dag_id="etl")] == ["cli.dags.pause"]

    # -- assets --------------------------------------------------------------------------------

    def test_asset_events_queue_runs_for_consumers(self, db: Database) -> None:
        with db.session() as s:
            dags.sync_dag(s, dag_document("consumer"), now=NOW)
            asset = assets.upsert_asset(s, uri="s3://b/orders", group="data", now=NOW)
            again = assets.upsert_asset(s, uri="s3://b/orders", group="data", now=NOW)
            assert again.id == asset.id and asset.name == "s3://b/orders"
            assets.set_schedule_references(s, "consumer", [asset.id], now=NOW)
            assets.record_asset_event(s, asset.id, now=NOW, source_dag_id="etl")
            assets.record_asset_event(s, asset.id, now=NOW + timedelta(1))
        with db.session() as s:
            assert assets.list_queued(s) == {"consumer": {asset.id: NOW}}
            assert len(assets.list_asset_events(s, asset_id=asset.id)) == 2
            assert assets.get_asset(s, uri="s3://b/orders").group == "data"
            assert assets.clear_queue(s, "consumer") == 1
            assets.set_schedule_references(s, "consumer", [], now=NOW)
            assets.record_asset_event(s, asset.id, now=NOW)
            assert assets.list_queued(s) == {}
            assert [a.uri for a in assets.list_assets(s)] == ["s3://b/orders"]

    # -- backfills -----------------------------------------------------------------------------

    def test_backfill_lifecycle(self, db: Database) -> None:
        with db.session() as s:
            dags.sync_dag(s, dag_document(), now=NOW)
            with pytest.raises(InvalidArgumentError):
                backfills.create_backfill(s, "etl", NOW, NOW - timedelta(1), now=NOW)
            with pytest.raises(InvalidArgumentError):
                backfills.create_backfill(s, "etl", NOW, NOW, now=NOW, reprocess_behavior="x")
            backfill = backfills.create_backfill(
                s, "etl", NOW - timedelta(3), NOW, now=NOW, reprocess_behavior="failed"
            )
            with pytest.raises(AlreadyExists):
                backfills.create_backfill(s, "etl", NOW, NOW, now=NOW)
        queued = add_run(db, "b1", state=RunState.QUEUED, backfill_id=backfill.id)
        add_run(db, "b2", logical_date=NOW - timedelta(1), backfill_id=backfill.id)
        with db.session() as s:
            assert backfills.set_backfill_paused(s, backfill.id, True, now=NOW).is_paused
            assert backfills.cancel_backfill(s, backfill.id, now=NOW) == [queued]
            assert db_runs.get_run(s, "etl", "b1").state is RunState.FAILED
            assert db_runs.get_run(s, "etl", "b2").state is RunState.RUNNING
            assert backfills.list_backfills(s, active_only=True) == []
            assert [b.id for b in backfills.list_backfills(s, dag_id="etl")] == [backfill.id]
            assert not backfills.complete_backfill(s, backfill.id, now=NOW)

    # -- jobs ----------------------------------------------------------------------------------

    def test_job_heartbeats_and_stale_jobs(self, db: Database) -> None:
        with db.session() as s:
            old = jobs.start_job(s, "scheduler", hostname="h", pid=1, now=NOW)
            new = jobs.start_job(s, "scheduler", hostname="h", pid=2, now=NOW)
            assert jobs.heartbeat(s, new.id, now=NOW + timedelta(seconds=60))
            stale = jobs.find_stale_jobs(s, older_than=NOW + timedelta(seconds=30))
            assert [j.id for j in stale] == [old.id]
            assert jobs.end_job(s, old.id, now=NOW, state=jobs.JOB_FAILED)
            assert not jobs.heartbeat(s, old.id, now=NOW)  # declared dead: stop
            latest = jobs.latest_job(s, "scheduler")
            assert latest is not None and latest.id == new.id
            assert jobs.get_job(s, old.id).state == "failed"

    # -- retention -----------------------------------------------------------------------------

    def test_clean_deletes_old_finished_rows_in_batches(self, db: Database) -> None:
        # given an old running run, three old finished runs, and old audit rows
        old = NOW - timedelta(days=100)
        add_run(db, "running", logical_date=old - timedelta(days=5), now=old)
        for i in range(3):
            pk = add_run(db, f"old{i}", logical_date=old + timedelta(i), now=old)
            with db.session() as s:
                transition_run(s, pk, RunState.RUNNING, RunState.SUCCESS, now=old, end_date=old)
                db_xcom.set_xcom(s, "etl", f"old{i}", "a", "k", -1, i, now=old)
        with db.session() as s:
            for i in range(5):
                audit.record(s, "x", actor="a", when=old + timedelta(minutes=i))
            audit.record(s, "new", actor="a", when=NOW)
        before = NOW - timedelta(days=30)
        # when cleaning in dry-run mode
        dry = retention.clean(db.session_factory, before, dry_run=True)
        # expect counts, and nothing deleted (the newest run, old2, is kept)
        assert dry["dag_run"] == 2 and dry["task_instance"] == 8 and dry["xcom"] == 2
        assert dry["audit_log"] == 5
        with db.session() as s:
            assert len(db_runs.list_runs(s)) == 4
        # when cleaning for real with tiny batches
        calls: list[tuple[str, int]] = []
        done = retention.clean(
            db.session_factory, before, batch_size=2, progress=lambda t, n: calls.append((t, n))
        )
        assert done == dry
        assert ("audit_log", 2) in calls and ("audit_log", 4) in calls
        with db.session() as s:
            assert sorted(r.run_id for r in db_runs.list_runs(s)) == ["old2", "running"]
            assert [r.event for r in audit.list_audit(s)] == ["new"]
            assert len(tis.list_tis(s, "etl", "old0")) == 0
        with pytest.raises(InvalidArgumentError):
            retention.clean(db.session_factory, before, tables=["dag"])

    def test_clean_one_table_keeps_the_runs(self, db: Database) -> None:
        old = NOW - timedelta(days=100)
        for i in range(2):
            pk = add_run(db, f"old{i}", logical_date=old + timedelta(i), now=old)
            with db.session() as s:
                transition_run(s, pk, RunState.RUNNING, RunState.FAILED, now=old, end_date=old)
                db_xcom.set_xcom(s, "etl", f"old{i}", "a", "k", -1, i, now=old)
        done = retention.clean(db.session_factory, NOW, tables=["xcom"])
        assert done == {"xcom": 1}
        with db.session() as s:
            assert len(db_runs.list_runs(s)) == 2

    # -- task data service and secrets backend -------------------------------------------------

    def test_task_data_service(self, db: Database) -> None:
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class Key:
            dag_id: str
            run_id: str
            task_id: str
            map_index: int = -1
            try_number: int = 1

        add_run(db)
        ti_id = ti_id_of(db, "a")
        with db.session() as s:
            transition_task(s, ti_id, T.CREATED, T.SCHEDULED, now=NOW, try_number=1)
            transition_task(s, ti_id, T.SCHEDULED, T.QUEUED, now=NOW)
            db_xcom.set_xcom(s, "etl", "r1", "a", "stale", -1, "old try", now=NOW)
        fernet = fernet_from_keys(generate_key())
        with db.session() as s:
            db_variables.set_variable(s, "v", "value", fernet=fernet, now=NOW)
            db_connections.add_connection(
                s, Connection("c", "http", password="pw"), fernet=fernet, now=NOW
            )
        service = DbTaskDataService(
            db.session_factory, fernet=fernet, xcom_max_size=100, now=lambda: NOW
        )
        # the wrong try does not start; the right one starts once
        assert not service.start_task(
            ti_id, Key("etl", "r1", "a", try_number=2), pid=7, hostname="h", now=NOW
        )
        assert service.start_task(ti_id, Key("etl", "r1", "a"), pid=7, hostname="h", now=NOW)
        assert not service.start_task(ti_id, Key("etl", "r1", "a"), pid=7, hostname="h", now=NOW)
        with db.session() as s:  # committed, visible to another session
            ti = tis.get_ti(s, ti_id)
            assert (ti.state, ti.pid, ti.hostname, ti.start_date) == (T.RUNNING, 7, "h", NOW)
        # several handshakes in one transaction: each answered on its own
        b_id = ti_id_of(db, "b")
        with db.session() as s:
            transition_task(s, b_id, T.CREATED, T.SCHEDULED, now=NOW, try_number=1)
            transition_task(s, b_id, T.SCHEDULED, T.QUEUED, now=NOW)
        batch = [
            (b_id, Key("etl", "r1", "b", try_number=2), 8, "h"),
            (ti_id, Key("etl", "r1", "a"), 8, "h"),
            (b_id, Key("etl", "r1", "b"), 9, "h2"),
        ]
        assert service.start_tasks(batch, now=NOW) == [False, False, True]
        with db.session() as s:
            b = tis.get_ti(s, b_id)
            assert (b.state, b.pid, b.hostname) == (T.RUNNING, 9, "h2")
        with pytest.raises(KeyError):
            service.get_xcom("etl", "r1", "a", "stale", -1)  # the old try's XCom is gone
        service.set_xcom("etl", "r1", "a", "return_value", -1, {"rows": 3})
        assert service.get_xcom("etl", "r1", "a", "return_value", -1) == {"rows": 3}
        service.set_xcom("etl", "r1", "b", "return_value", -1, [10, 20])
        with db.session() as s:  # a mappable result records its length for mapped downstreams
            task_map = tis.get_task_map(s, "etl", "r1", "b")
            assert task_map is not None and task_map.length == 2
        assert service.get_xcom_map_indexes("etl", "r1", "a", "return_value") == [-1]
        assert service.get_xcom_values("etl", "r1", "b", "return_value") == {-1: [10, 20]}
        with pytest.raises(XComError):
            service.set_xcom("etl", "r1", "a", "big", -1, "x" * 200)
        assert service.get_variable("v") == "value"
        assert service.get_connection("c").password == "pw"
        with pytest.raises(VariableNotFound):
            service.get_variable("nope")
        with pytest.raises(ConnectionNotFound):
            service.get_connection("nope")

    def test_secrets_backend_serves_variable_get(self, db: Database) -> None:
        from tradewind.sdk import secrets
        from tradewind.sdk.variable import Variable

        with db.session() as s:
            db_variables.set_variable(s, "tw_contract_var", "from-db", fernet=None, now=NOW)
            conn = Connection("tw_contract_conn", "http", host="example")
            db_connections.add_connection(s, conn, fernet=None, now=NOW)
        backend = DbSecretsBackend(db.session_factory, fernet=None)
        secrets.register_backend(backend)
        try:
            assert Variable.get("tw_contract_var") == "from-db"
            assert secrets.get_connection("tw_contract_conn").host == "example"
            assert Variable.get("tw_contract_missing", default="d") == "d"
            assert backend.get_connection("missing") is None
        finally:
            secrets.unregister_backend(backend)
