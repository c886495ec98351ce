"""One runner for Tradewind's benchmarks: a table on the terminal, JSON to a file.

    python benchmarks/run.py                 # every workload available
    python benchmarks/run.py --only W7,P1    # some of them
    python benchmarks/run.py --repeat 9 --json benchmarks/results/latest.json

Each figure is the median of ``--repeat`` runs, printed beside a floor measured in the same run
(machines are shared and noisy; compare against the floor, not across days). Workload ids follow
``shared/BENCHMARKS.md`` where they exist there:

- W7  ``import tradewind`` (+ the authoring names) minus a bare ``python -c pass``.
- P1  one 10-task DAG file parsed, validated and serialized in a fresh process
      (floor: ``python -c pass``).
- S1  building and serializing a 10,000-task DAG in this process.
- W4  cold DAG processing of 100 (and 1,000) files of 10 tasks each, until every DAG is
      serialized (floor: forking and reaping one child per file with no work).
- W1, W1b, W2-200, W2-2000, W3-1000, W3-10000, W5, W6: the engine (a running scheduler with
  the local executor on SQLite, ``dags test``, ``standalone``); see ``engine.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from engine import BenchError
from engine import workloads as engine_workloads

HERE = Path(__file__).resolve().parent
PY = sys.executable

TEN_TASK_DAG = textwrap.dedent(
    '''
    """A 10-task DAG of the common shape: a start, a TaskFlow chain, a group, a join."""
    from datetime import datetime

    from tradewind import DAG, TaskGroup, task
    from tradewind.operators import BashOperator, EmptyOperator

    with DAG("{dag_id}", schedule="@daily", start_date=datetime(2024, 1, 1), tags=["bench"]):
        start = EmptyOperator(task_id="start")

        @task
        def extract() -> list[int]:
            return [1, 2, 3]

        @task
        def transform(values: list[int]) -> int:
            return sum(values)

        with TaskGroup("load") as load:
            for i in range(4):
                BashOperator(task_id=f"part_{{i}}", bash_command="echo {{{{ ds }}}}")
        report = BashOperator(task_id="report", bash_command="echo done")
        end = EmptyOperator(task_id="end")
        start >> transform(extract()) >> load >> report >> end
    '''
)

PARSE_ONE = textwrap.dedent(
    """
    import runpy, sys
    from tradewind.sdk._context_stack import collecting
    from tradewind.serialization import serialize_dag, to_json
    with collecting() as dags:
        runpy.run_path(sys.argv[1])
    for d in dags:
        d.validate()
        to_json(serialize_dag(d))
    assert dags
    """
)


@dataclass
class Result:
    id: str
    name: str
    unit: str
    median: float
    runs: list[float]
    floor: float | None = None
    floor_name: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def _time_cmd(args: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _median_of(fn: Callable[[], float], repeat: int) -> tuple[float, list[float]]:
    runs = [fn() for _ in range(repeat)]
    return statistics.median(runs), runs


def bench_import(repeat: int) -> Result:
    bare, _ = _median_of(lambda: _time_cmd([PY, "-c", "pass"]), repeat)
    code = "import tradewind; from tradewind import DAG, task, TaskGroup, BaseOperator"
    med, runs = _median_of(lambda: _time_cmd([PY, "-c", code]), repeat)
    return Result(
        "W7",
        "import tradewind, over a bare interpreter",
        "ms",
        (med - bare) * 1000,
        [r * 1000 for r in runs],
        bare * 1000,
        "python -c pass",
        extra={"absolute_ms": med * 1000},
    )


def bench_parse_one(repeat: int) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_dag.py"
        path.write_text(TEN_TASK_DAG.format(dag_id="bench_ten"))
        bare, _ = _median_of(lambda: _time_cmd([PY, "-c", "pass"]), repeat)
        med, runs = _median_of(lambda: _time_cmd([PY, "-c", PARSE_ONE, str(path)]), repeat)
    return Result(
        "P1",
        "one 10-task DAG file parsed + serialized in a fresh process",
        "ms",
        med * 1000,
        [r * 1000 for r in runs],
        bare * 1000,
        "python -c pass",
    )


def bench_serialize_10k(repeat: int) -> Result:
    code = textwrap.dedent(
        """
        import time
        t0 = time.perf_counter()
        from tradewind import DAG
        from tradewind.operators import EmptyOperator
        from tradewind.serialization import serialize_dag, to_json
        with DAG("big") as d:
            prev = EmptyOperator(task_id="t0")
            for i in range(1, 10000):
                cur = EmptyOperator(task_id=f"t{i}")
                prev >> cur
                prev = cur
        t1 = time.perf_counter()
        doc = to_json(serialize_dag(d))
        t2 = time.perf_counter()
        print(t1 - t0, t2 - t1)
        """
    )

    def once() -> tuple[float, float]:
        out = subprocess.run([PY, "-c", code], check=True, capture_output=True, text=True).stdout
        build, ser = map(float, out.split())
        return build, ser

    pairs = [once() for _ in range(repeat)]
    totals = [b + s for b, s in pairs]
    return Result(
        "S1",
        "build + serialize a 10,000-task DAG",
        "ms",
        statistics.median(totals) * 1000,
        [t * 1000 for t in totals],
        extra={
            "build_ms": statistics.median(b for b, _ in pairs) * 1000,
            "serialize_ms": statistics.median(s for _, s in pairs) * 1000,
        },
    )


def _fork_floor(n: int) -> float:
    """Fork and reap ``n`` children doing nothing, two at a time (the parsing concurrency)."""
    code = textwrap.dedent(
        f"""
        import os, time
        t0 = time.perf_counter()
        running = 0
        for _ in range({n}):
            if running >= 2:
                os.wait(); running -= 1
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            running += 1
        while running:
            os.wait(); running -= 1
        print(time.perf_counter() - t0)
        """
    )
    return float(
        subprocess.run([PY, "-c", code], check=True, capture_output=True, text=True).stdout
    )


def bench_dag_processing(repeat: int, n_files: int) -> Result:
    code = textwrap.dedent(
        """
        import sys, time
        t0 = time.perf_counter()
        from pathlib import Path
        from tradewind.dag_processing import ParseOptions, collect_dags
        result = collect_dags(ParseOptions(dags_folder=Path(sys.argv[1]), include_examples=False))
        elapsed = time.perf_counter() - t0
        assert not result.import_errors, result.import_errors[:1]
        assert len(result.dags) == int(sys.argv[2]), len(result.dags)
        print(elapsed)
        """
    )
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n_files):
            (Path(tmp) / f"dag_{i:04d}.py").write_text(TEN_TASK_DAG.format(dag_id=f"bench_{i:04d}"))
        env = dict(os.environ, TRADEWIND_HOME=tmp)

        def once() -> float:
            t0 = time.perf_counter()
            subprocess.run(
                [PY, "-c", code, tmp, str(n_files)], check=True, env=env, stdout=subprocess.DEVNULL
            )
            return time.perf_counter() - t0

        med, runs = _median_of(once, repeat)
        floor = statistics.median(_fork_floor(n_files) for _ in range(max(1, repeat // 2)))
    return Result(
        f"W4-{n_files}",
        f"cold DAG processing of {n_files} files x 10 tasks (wall, interpreter start included)",
        "ms",
        med * 1000,
        [r * 1000 for r in runs],
        floor * 1000,
        f"fork+reap {n_files} idle children",
    )


WORKLOADS: dict[str, Callable[[int], Result]] = {
    "W7": bench_import,
    "P1": bench_parse_one,
    "S1": bench_serialize_10k,
    "W4-100": lambda r: bench_dag_processing(r, 100),
    "W4-1000": lambda r: bench_dag_processing(max(1, r // 2), 1000),
    **engine_workloads(Result),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="comma-separated workload ids (default: all)")
    parser.add_argument(
        "--repeat", type=int, default=7, help="runs per figure (median is reported)"
    )
    parser.add_argument(
        "--json",
        default=str(HERE / "results" / "latest.json"),
        help="where to write the JSON results",
    )
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(WORKLOADS)
    unknown = [c for c in chosen if c not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; known: {', '.join(WORKLOADS)}")
    results = []
    failed: dict[str, str] = {}
    for wid in chosen:
        print(f"running {wid} ...", file=sys.stderr, flush=True)
        try:
            results.append(WORKLOADS[wid](args.repeat))
        except (BenchError, subprocess.SubprocessError) as exc:
            # One broken workload must not cost the figures of the others.
            failed[wid] = str(exc)
            print(f"{wid} FAILED: {exc}", file=sys.stderr, flush=True)
    print(f"\n{'id':<8} {'median':>10} {'floor':>10}  workload")
    for r in results:
        floor = "-" if r.floor is None else f"{r.floor:.1f}" if r.floor >= 1 else f"{r.floor:.3f}"
        print(
            f"{r.id:<8} {r.median:>8.1f}{r.unit} {floor:>8}{r.unit if r.floor is not None else '  '}  {r.name}"
            + (f"  (floor: {r.floor_name})" if r.floor_name else "")
        )
        for k, v in r.extra.items():
            unit = "ms" if k.endswith("_ms") else "  "
            print(f"{'':<8} {v:>8.1f}{unit} {'':>10}  - {k}")
    for wid, why in failed.items():
        print(f"{wid:<8} {'FAILED':>10}  {why.splitlines()[0] if why else ''}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                },
                "repeat": args.repeat,
                "results": [asdict(r) for r in results],
                "failed": failed,
            },
            indent=2,
        )
    )
    print(f"\nJSON written to {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
