"""Parsing a DAGs folder in isolated processes: good files, every kind of import error, time
limits, duplicates, same-named files, and loading one DAG back in-process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tradewind.dag_processing import (
    DagCollection,
    ParseOptions,
    collect_dags,
    example_dags_folder,
    load_dag_from_file,
    parse_one_file,
)
from tradewind.errors import DagDefinitionError, DagFileError, NotFound

GOOD = """
from datetime import datetime
from tradewind import DAG
from tradewind.operators.empty import EmptyOperator

with DAG("{dag_id}", schedule="@daily", start_date=datetime(2024, 1, 1), tags=["t"]):
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
"""


def write(folder: Path, rel: str, text: str) -> Path:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def collect(folder: Path, **kwargs: object) -> DagCollection:
    options = ParseOptions(dags_folder=folder, **{"timeout": 10.0, "processes": 2, **kwargs})  # type: ignore[arg-type]
    return collect_dags(options)


def errors_by_file(collection: DagCollection) -> dict[str, list]:
    out: dict[str, list] = {}
    for error in collection.import_errors:
        out.setdefault(error.relative_path or error.path, []).append(error)
    return out


def test_good_file_yields_a_serialized_dag_with_file_locations(tmp_path: Path) -> None:
    # given
    path = write(tmp_path, "team/etl.py", GOOD.format(dag_id="etl"))
    # when
    collection = collect(tmp_path)
    # expect
    assert collection.import_errors == []
    assert list(collection.dags) == ["etl"]
    body = collection.dags["etl"]["dag"]
    assert body["fileloc"] == str(path)
    assert body["relative_fileloc"] == "team/etl.py"
    assert [t["task_id"] for t in body["tasks"]] == ["a", "b"]
    assert collection.dag_files["etl"] == str(path)
    assert collection.files == [path]
    assert set(collection.parse_durations) == {str(path)}


def test_each_failure_is_recorded_with_its_line_and_others_still_load(tmp_path: Path) -> None:
    # given a good file and three broken ones
    write(tmp_path, "good.py", GOOD.format(dag_id="good"))
    write(tmp_path, "syntax.py", "from tradewind import DAG\n\nx = (\n")
    write(
        tmp_path,
        "runtime.py",
        """
        from tradewind import DAG

        def build():
            return {}["missing"]

        build()
        """,
    )
    write(
        tmp_path,
        "cycle.py",
        """
        from tradewind import DAG
        from tradewind.operators.empty import EmptyOperator

        with DAG("cyclic"):
            a = EmptyOperator(task_id="a")
            b = EmptyOperator(task_id="b")
            a >> b >> a
        """,
    )
    # when
    collection = collect(tmp_path)
    errors = errors_by_file(collection)
    # expect the good DAG loaded and one error per broken file
    assert list(collection.dags) == ["good"]
    assert sorted(errors) == ["cycle.py", "runtime.py", "syntax.py"]
    (syntax,) = errors["syntax.py"]
    assert syntax.line == 3
    assert syntax.message.startswith("SyntaxError:")
    (runtime,) = errors["runtime.py"]
    assert runtime.line == 4  # the deepest frame inside the file, not the call site
    assert runtime.message == "KeyError: 'missing'"
    assert 'runtime.py", line 4, in build' in runtime.traceback
    assert "importlib" not in runtime.traceback
    (cycle,) = errors["cycle.py"]
    assert cycle.line == 4  # the `with DAG(...)` block that failed validation
    assert "cycle between tasks" in cycle.message and "a >> b >> a" in cycle.message
    assert all(e.path.startswith(str(tmp_path)) for e in collection.import_errors)


def test_invalid_dag_outside_a_with_block_fails_alone(tmp_path: Path) -> None:
    # given a file defining a valid DAG and, as plain objects, a DAG with a cycle
    write(
        tmp_path,
        "two.py",
        """
        from tradewind import DAG
        from tradewind.operators.empty import EmptyOperator

        ok = DAG("ok")
        EmptyOperator(task_id="x", dag=ok)
        bad = DAG("bad")
        a = EmptyOperator(task_id="a", dag=bad)
        b = EmptyOperator(task_id="b", dag=bad)
        a >> b
        b >> a
        """,
    )
    # when
    collection = collect(tmp_path)
    # expect the valid DAG kept and the invalid one reported
    assert list(collection.dags) == ["ok"]
    (error,) = collection.import_errors
    assert "'bad'" in error.message and "cycle" in error.message


def test_duplicate_task_id_reports_the_line_of_the_second_definition(tmp_path: Path) -> None:
    write(
        tmp_path,
        "dup_task.py",
        """
        from tradewind import DAG
        from tradewind.operators.empty import EmptyOperator

        with DAG("dup_task"):
            EmptyOperator(task_id="same")
            EmptyOperator(task_id="same")
        """,
    )
    (error,) = collect(tmp_path).import_errors
    assert error.line == 6
    assert "used twice" in error.message


def test_a_file_over_the_time_limit_is_reported_as_timed_out(tmp_path: Path) -> None:
    # given a file that sleeps far beyond a 1 s limit, next to a good file
    write(tmp_path, "good.py", GOOD.format(dag_id="good"))
    write(tmp_path, "slow.py", "import time\n# a dag file\ntime.sleep(60)\n")
    # when
    collection = collect(tmp_path, timeout=1.0)
    # expect
    assert list(collection.dags) == ["good"]
    (error,) = collection.import_errors
    assert error.relative_path == "slow.py"
    assert "timed out after 1 s" in error.message
    assert error.line == 3  # where the file was when time ran out
    assert "time.sleep(60)" in error.traceback


def test_a_file_that_blocks_the_timer_is_killed_by_the_parent(tmp_path: Path) -> None:
    # given a file that ignores the alarm signal the child uses to stop itself
    write(
        tmp_path,
        "stubborn.py",
        """
        import signal, time
        # dag
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        time.sleep(60)
        """,
    )
    # when
    collection = collect(tmp_path, timeout=1.0)
    # expect the parent's hard limit to have killed it
    (error,) = collection.import_errors
    assert "timed out after 1 s" in error.message
    assert error.line is None


def test_a_file_that_kills_its_process_does_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path, "a_good.py", GOOD.format(dag_id="good"))
    write(tmp_path, "exits.py", "import os\n# dag\nos._exit(3)\n")
    write(tmp_path, "sys_exit.py", "import sys\n# dag\nsys.exit(4)\n")
    collection = collect(tmp_path)
    errors = errors_by_file(collection)
    assert list(collection.dags) == ["good"]
    assert "exited with code 3" in errors[str(tmp_path / "exits.py")][0].message
    (sys_exit,) = errors["sys_exit.py"]
    assert "sys.exit(4)" in sys_exit.message and sys_exit.line == 3


def test_dag_id_defined_in_two_files_is_an_error_on_the_later_file(tmp_path: Path) -> None:
    write(tmp_path, "a.py", GOOD.format(dag_id="shared"))
    write(tmp_path, "b.py", GOOD.format(dag_id="shared"))
    collection = collect(tmp_path)
    assert collection.dag_files == {"shared": str(tmp_path / "a.py")}
    (error,) = collection.import_errors
    assert error.relative_path == "b.py"
    assert "'shared'" in error.message and "a.py" in error.message and "b.py" in error.message


def test_same_dag_id_twice_in_one_file_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "twice.py", "from tradewind import DAG\nx = DAG('same')\ny = DAG('same')\n")
    collection = collect(tmp_path)
    assert list(collection.dags) == ["same"]
    assert "defined twice in this file" in collection.import_errors[0].message


def test_files_with_the_same_name_in_different_folders_do_not_clash(tmp_path: Path) -> None:
    # given two etl.py files whose module-level state would collide under one module name
    for team in ("team_a", "team_b"):
        write(tmp_path, f"{team}/etl.py", GOOD.format(dag_id=f"{team}_etl"))
    # when
    collection = collect(tmp_path, processes=1)
    # expect
    assert collection.import_errors == []
    assert sorted(collection.dags) == ["team_a_etl", "team_b_etl"]
    assert collection.dags["team_a_etl"]["dag"]["relative_fileloc"] == "team_a/etl.py"
    assert collection.dags["team_b_etl"]["dag"]["relative_fileloc"] == "team_b/etl.py"


def test_dag_files_import_helpers_from_the_dags_folder(tmp_path: Path) -> None:
    # given a factory module in the DAGs folder that builds DAGs only when called
    write(
        tmp_path,
        "common/factory.py",
        """
        from tradewind import DAG as Pipeline

        def build(name):
            return Pipeline(name)
        """,
    )
    user = write(
        tmp_path,
        "uses_factory.py",
        "# a dag\nfrom common.factory import build\nd = build('made')\n",
    )
    # when
    collection = collect(tmp_path)
    # expect the DAG is attributed to the file that was parsed, not the factory
    assert collection.import_errors == []
    assert collection.dags["made"]["dag"]["fileloc"] == str(user)
    assert collection.dag_files == {"made": str(user)}


def test_output_printed_by_a_dag_file_does_not_reach_stdout(tmp_path: Path) -> None:
    # given a DAG file that prints while being imported
    write(tmp_path, "noisy.py", "print('hello from a dag file')\n" + GOOD.format(dag_id="noisy"))
    script = (
        "from pathlib import Path; from tradewind.dag_processing import ParseOptions, collect_dags;"
        f"c = collect_dags(ParseOptions(dags_folder=Path({str(tmp_path)!r})));"
        "print(sorted(c.dags))"
    )
    # when
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    # expect
    assert proc.stdout.strip() == "['noisy']"
    assert "hello from a dag file" in proc.stderr


def test_max_map_length_setting_is_applied_before_parsing(tmp_path: Path) -> None:
    write(
        tmp_path,
        "mapped.py",
        """
        from tradewind import DAG, task

        with DAG("mapped"):
            @task
            def double(x):
                return 2 * x

            double.expand(x=[1, 2, 3, 4, 5])
        """,
    )
    assert list(collect(tmp_path, max_map_length=10).dags) == ["mapped"]
    (error,) = collect(tmp_path, max_map_length=3).import_errors
    assert "maximum map length 3" in error.message


def test_subprocess_isolation_gives_the_same_result_as_fork(tmp_path: Path) -> None:
    write(tmp_path, "good.py", GOOD.format(dag_id="good"))
    write(tmp_path, "bad.py", "# dag\nraise RuntimeError('boom')\n")
    forked = collect(tmp_path, isolation="fork")
    spawned = collect(tmp_path, isolation="subprocess")
    assert forked.dags == spawned.dags
    assert [(e.relative_path, e.line, e.message) for e in forked.import_errors] == [
        (e.relative_path, e.line, e.message) for e in spawned.import_errors
    ]


def test_parse_one_file_as_a_program_prints_json(tmp_path: Path) -> None:
    path = write(tmp_path, "good.py", GOOD.format(dag_id="good"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tradewind.dag_processing.parser",
            str(path),
            "--root",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(proc.stdout)
    assert [d["dag_id"] for d in data["dags"]] == ["good"]
    assert data["import_errors"] == []


def test_example_dags_parse_without_errors(tmp_path: Path) -> None:
    collection = collect(tmp_path / "empty", include_examples=True)
    assert collection.files and all(
        f.is_relative_to(example_dags_folder()) for f in collection.files
    )
    assert [e.message for e in collection.import_errors] == []
    assert collection.dags


def test_parse_one_file_in_process(tmp_path: Path) -> None:
    path = write(tmp_path, "inproc.py", GOOD.format(dag_id="inproc"))
    result = parse_one_file(path, root=tmp_path)
    assert [d.dag_id for d in result.dags] == ["inproc"]
    assert result.import_errors == []


def test_load_dag_from_file_returns_the_live_dag(tmp_path: Path) -> None:
    path = write(tmp_path, "live.py", GOOD.format(dag_id="live"))
    dag = load_dag_from_file(path, "live", root=tmp_path)
    assert dag.task_ids == ["a", "b"]
    assert dag.fileloc == str(path)
    assert dag.relative_fileloc == "live.py"
    with pytest.raises(NotFound, match="other"):
        load_dag_from_file(path, "other", root=tmp_path)


def test_load_dag_from_file_reports_import_and_definition_errors(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.py", "x = 1\ny = undefined_name\n")
    with pytest.raises(DagFileError) as info:
        load_dag_from_file(broken, "whatever")
    assert info.value.line == 2 and "NameError" in str(info.value)
    invalid = write(
        tmp_path,
        "invalid.py",
        "from tradewind import DAG\nfrom tradewind.operators.empty import EmptyOperator\n"
        "d = DAG('invalid')\na = EmptyOperator(task_id='a', dag=d)\n"
        "b = EmptyOperator(task_id='b', dag=d)\na >> b >> a\n",
    )
    with pytest.raises(DagDefinitionError):
        load_dag_from_file(invalid, "invalid")


def test_default_timezone_setting_applies_to_naive_dates_in_the_child_only(tmp_path: Path) -> None:
    # given a DAG with a naive start date
    write(
        tmp_path,
        "naive.py",
        """
        from datetime import datetime
        from tradewind import DAG

        DAG("naive", schedule="@daily", start_date=datetime(2024, 1, 1))
        """,
    )
    # when the folder is parsed with Amsterdam as the default timezone
    doc = collect(tmp_path, default_timezone="Europe/Amsterdam").dags["naive"]["dag"]
    # expect midnight in Amsterdam (UTC+1 in winter), the DAG's timezone set to it ...
    assert doc["start_date"].startswith("2023-12-31T23:00:00")
    assert doc["timezone"] == "Europe/Amsterdam"
    # ... and this process's default left alone
    from tradewind.sdk.timezone import UTC, get_default_timezone

    assert get_default_timezone() is UTC
