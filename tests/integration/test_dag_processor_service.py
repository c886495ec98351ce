"""The DAG processor service against a real SQLite database and real DAG files: new, changed,
broken, fixed and deleted files, and the watch loop's job row."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tradewind.dag_processing import ParseOptions
from tradewind.dag_processing.service import DagProcessor, folder_snapshot
from tradewind.db import dags as db_dags
from tradewind.db import import_errors as db_errors
from tradewind.db.database import Database
from tradewind.db.models import Dag, Job

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def dag_source(dag_id: str, tasks: list[str], comment: str = "") -> str:
    body = "\n".join(f"    EmptyOperator(task_id={t!r})" for t in tasks)
    return textwrap.dedent(
        """\
        # {comment}
        from datetime import datetime
        from tradewind import DAG
        from tradewind.operators.empty import EmptyOperator

        with DAG({dag_id!r}, start_date=datetime(2024, 1, 1), schedule="@daily"):
        {body}
        """
    ).format(comment=comment, dag_id=dag_id, body=body)


def ticking_clock() -> Callable[[], datetime]:
    counter = itertools.count()
    return lambda: T0 + timedelta(seconds=next(counter))


@pytest.fixture
def dags_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    return folder


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database.from_url(f"sqlite:///{tmp_path / 'tradewind.db'}")
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture
def processor(database: Database, dags_folder: Path) -> DagProcessor:
    options = ParseOptions(dags_folder=dags_folder, timeout=20, processes=2)
    return DagProcessor(database, options, clock=ticking_clock(), full_interval=None)


def dag_row(db: Database, dag_id: str) -> Dag:
    with db.session() as s:
        row = db_dags.get_dag(s, dag_id)
        s.expunge(row)
        return row


def version_numbers(db: Database, dag_id: str) -> list[int]:
    with db.session() as s:
        return [v.version_number for v in db_dags.list_versions(s, dag_id)]


def test_a_full_pass_writes_every_dag_paused_and_active(
    processor: DagProcessor, database: Database, dags_folder: Path
) -> None:
    # given two DAG files
    (dags_folder / "a.py").write_text(dag_source("a", ["x", "y"]))
    (dags_folder / "b.py").write_text(dag_source("b", ["z"]))
    # when the processor runs once
    report = processor.run_once()
    # expect both DAGs stored with one version each, new DAGs paused as in Airflow
    assert sorted(report.dags) == ["a", "b"] and sorted(report.new_versions) == ["a", "b"]
    for dag_id in ("a", "b"):
        row = dag_row(database, dag_id)
        assert row.is_active and row.is_paused and not row.has_import_errors
        assert row.fileloc == str(dags_folder / f"{dag_id}.py")
        assert version_numbers(database, dag_id) == [1]
    # and a second pass over unchanged files writes no new version
    again = processor.run_once()
    assert again.new_versions == [] and version_numbers(database, "a") == [1]


def test_a_new_file_is_picked_up_without_reparsing_the_others(
    processor: DagProcessor, database: Database, dags_folder: Path
) -> None:
    # given a processed folder
    (dags_folder / "a.py").write_text(dag_source("a", ["x"]))
    processor.run_once()
    assert processor.check_for_changes() is None  # nothing changed yet
    # when a file is added
    (dags_folder / "b.py").write_text(dag_source("b", ["z"]))
    report = processor.check_for_changes()
    # expect only that file parsed, and its DAG stored
    assert report is not None and not report.full
    assert report.files == [str(dags_folder / "b.py")]
    assert dag_row(database, "b").is_active


def test_a_changed_file_gets_a_new_version_only_when_its_dag_changed(
    processor: DagProcessor, database: Database, dags_folder: Path
) -> None:
    path = dags_folder / "a.py"
    path.write_text(dag_source("a", ["x"]))
    processor.run_once()
    # when only a comment changes
    path.write_text(dag_source("a", ["x"], comment="a comment that changes nothing"))
    report = processor.check_for_changes()
    # expect the file re-parsed but no new version
    assert report is not None and report.files == [str(path)]
    assert report.new_versions == [] and version_numbers(database, "a") == [1]
    # when a task is added
    path.write_text(dag_source("a", ["x", "y"]))
    report = processor.check_for_changes()
    # expect version 2, and the DAG row pointing at it
    assert report is not None and report.new_versions == ["a"]
    assert version_numbers(database, "a") == [1, 2]
    with database.session() as s:
        assert sorted(
            t["task_id"] for t in db_dags.get_latest_document(s, "a")["dag"]["tasks"]
        ) == [
            "x",
            "y",
        ]


def test_an_import_error_is_recorded_then_cleared_when_fixed(
    processor: DagProcessor, database: Database, dags_folder: Path
) -> None:
    path = dags_folder / "a.py"
    path.write_text(dag_source("a", ["x"]))
    processor.run_once()
    # when the file breaks
    path.write_text(dag_source("a", ["x"]) + "\nraise RuntimeError('boom at import')\n")
    report = processor.check_for_changes()
    # expect the error stored for that file, and the DAG kept active but flagged
    assert report is not None and len(report.import_errors) == 1
    with database.session() as s:
        errors = db_errors.list_import_errors(s)
        assert [(e.filename, "boom at import" in e.message) for e in errors] == [(str(path), True)]
        assert errors[0].line is not None
    row = dag_row(database, "a")
    assert row.is_active and row.has_import_errors
    # when it is fixed
    path.write_text(dag_source("a", ["x"], comment="fixed"))
    processor.check_for_changes()
    # expect the error gone and the flag cleared
    with database.session() as s:
        assert db_errors.list_import_errors(s) == []
    assert not dag_row(database, "a").has_import_errors


def test_a_broken_new_file_is_an_import_error_of_a_full_pass(
    processor: DagProcessor, database: Database, dags_folder: Path
) -> None:
    (dags_folder / "broken.py").write_text("from tradewind import DAG\nthis is not python\n")
    report = processor.run_once()
    assert [e.path for e in report.import_errors] == [str(dags_folder / "broken.py")]
    with database.session() as s:
        assert db_errors.count_import_errors(s) == 1


def test_a_deleted_file_deactivates_its_dags_and_drops_its_errors(
    processor: DagProcessor, database: Database, dags_folder: Path
) -> None:
    (dags_folder / "a.py").write_text(dag_source("a", ["x"]))
    (dags_folder / "b.py").write_text(dag_source("b", ["z"]))
    (dags_folder / "bad.py").write_text("import dag_module_that_does_not_exist\n")
    processor.run_once()
    # when two files are deleted
    (dags_folder / "b.py").unlink()
    (dags_folder / "bad.py").unlink()
    report = processor.check_for_changes()
    # expect b inactive, a untouched, and the deleted file's import error gone
    assert report is not None and report.deactivated == ["b"]
    assert not dag_row(database, "b").is_active
    assert dag_row(database, "a").is_active
    with database.session() as s:
        assert db_errors.list_import_errors(s) == []


def test_a_dag_the_file_no_longer_defines_is_deactivated(
    processor: DagProcessor, database: Database, dags_folder: Path
) -> None:
    path = dags_folder / "a.py"
    path.write_text(dag_source("old_name", ["x"]))
    processor.run_once()
    # when the DAG is renamed in its file
    path.write_text(dag_source("new_name", ["x"]))
    report = processor.check_for_changes()
    # expect the old id inactive and the new one active
    assert report is not None and report.deactivated == ["old_name"]
    assert dag_row(database, "new_name").is_active
    assert not dag_row(database, "old_name").is_active


def test_a_file_that_becomes_ignored_counts_as_removed(
    processor: DagProcessor, database: Database, dags_folder: Path
) -> None:
    (dags_folder / "a.py").write_text(dag_source("a", ["x"]))
    processor.run_once()
    # when an ignore file excluding it appears (which triggers a full pass)
    (dags_folder / ".tradewindignore").write_text("a.py\n")
    report = processor.check_for_changes()
    # expect its DAG inactive
    assert report is not None and report.full and report.deactivated == ["a"]


def test_the_snapshot_sees_python_and_ignore_files_only(dags_folder: Path) -> None:
    (dags_folder / "a.py").write_text("x = 1\n")
    (dags_folder / "notes.txt").write_text("hello\n")
    (dags_folder / ".airflowignore").write_text("tmp\n")
    (dags_folder / "__pycache__").mkdir()
    (dags_folder / "__pycache__" / "a.cpython-311.py").write_text("")
    (dags_folder / ".hidden").mkdir()
    (dags_folder / ".hidden" / "b.py").write_text("")
    assert sorted(Path(p).name for p in folder_snapshot(dags_folder)) == [".airflowignore", "a.py"]


def test_run_forever_registers_a_job_and_ends_it_when_told_to_stop(
    processor: DagProcessor, database: Database, dags_folder: Path
) -> None:
    # given a DAG file and a stop request after the first pass
    (dags_folder / "a.py").write_text(dag_source("a", ["x"]))
    checks = itertools.count()
    # when the processor watches the folder
    processor.run_forever(should_stop=lambda: next(checks) >= 2)
    # expect the DAG written and a finished dag_processor job
    assert dag_row(database, "a").is_active
    with database.session() as s:
        jobs = s.execute(sa.select(Job.job_type, Job.state, Job.end_date)).all()
    assert [(j[0], j[1]) for j in jobs] == [("dag_processor", "success")]
    assert jobs[0][2] is not None
