"""What the local executor costs per task try, beside the floor measured in the same run.

    python benchmarks/executor_overhead.py                  # 200 tries, parallelism 4
    python benchmarks/executor_overhead.py --tries 500 --json out.json

Figures (a trivial task returning a small value, its DAG already imported by the workers):

* **floor**: fork a child from a process holding the task runtime (as a worker does), and read
  one message it writes to a pipe; median of ``--tries``;
* **paced**: submit one try, wait for its FINISHED event, pause 5 ms (standing in for the
  scheduler's own work between two hops), repeat; the median of submit -> FINISHED;
* **back to back**: the same without the pause (each try starts while the previous task process
  is still exiting and its worker is preparing the next spare);
* **no spare**: back to back with ``spare_processes=0`` (every task process forked on arrival);
* **throughput**: ``--burst`` tries submitted at once to 2 workers, tries per second.

The data service is in memory, so no database time is included: this is the executor alone
(fork server, warm workers, a task process per try, the start handshake, one XCom push, the
outcome).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

DAG_FILE = """
from datetime import datetime
from tradewind import DAG, task

with DAG("bench_executor", schedule=None, start_date=datetime(2024, 1, 1)):
    @task
    def trivial():
        return 1

    trivial()
"""


class MemoryData:
    """The TaskDataService protocol over dicts; every start is accepted."""

    def __init__(self) -> None:
        self.xcoms: dict[tuple[str, str, str, str, int], Any] = {}

    def start_task(self, ti_id: str, key: Any, *, pid: int, hostname: str, now: datetime) -> bool:
        return True

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> Any:
        return self.xcoms[(dag_id, run_id, task_id, key, map_index)]

    def get_xcom_map_indexes(self, dag_id: str, run_id: str, task_id: str, key: str) -> list[int]:
        return sorted(k[4] for k in self.xcoms if k[:4] == (dag_id, run_id, task_id, key))

    def set_xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int, value: Any
    ) -> None:
        self.xcoms[(dag_id, run_id, task_id, key, map_index)] = value

    def get_variable(self, key: str) -> str:
        raise KeyError(key)

    def get_connection(self, conn_id: str) -> Any:
        raise KeyError(conn_id)


def fork_floor(tries: int) -> list[float]:
    """Fork a child that writes one byte to a pipe; time until the parent has read it (ms)."""
    from tradewind.executors.local import PRELOAD_MODULES

    for name in PRELOAD_MODULES:
        __import__(name)
    gc.freeze()
    out = []
    for _ in range(tries):
        r, w = os.pipe()
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.write(w, b"x")
            os._exit(0)
        os.close(w)
        os.read(r, 1)
        out.append((time.perf_counter() - start) * 1000)
        os.waitpid(pid, 0)
        os.close(r)
    return out


def _workload(fileloc: Path, index: int) -> Any:
    from tradewind.executors import ExecuteTask, RunSpec, TaskInstanceKey

    return ExecuteTask(
        key=TaskInstanceKey("bench_executor", f"run_{index}", "trivial"),
        ti_id=uuid.uuid4().hex,
        dag_version_id=1,
        fileloc=str(fileloc),
        run=RunSpec(),
        max_tries=0,
    )


def _finish(executor: Any, count: int) -> None:
    done = 0
    deadline = time.monotonic() + 120
    while done < count:
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the executor")
        for event in executor.process_io(1.0):
            if event.kind != "started":
                if event.state != "success":
                    raise SystemExit(f"a benchmark try did not succeed: {event}")
                done += 1


def round_trips(
    folder: Path, *, tries: int, parallelism: int, pause: float, spares: int
) -> list[float]:
    """Sequential submit -> FINISHED times (ms)."""
    from tradewind.executors import LocalExecutor

    dag_file = folder / "bench_executor.py"
    executor = LocalExecutor(
        parallelism=parallelism,
        data=MemoryData(),
        log_folder=folder / "logs",
        spare_processes=spares,
    )
    executor.start()
    try:
        # Every worker imports the DAG file once (its first try), as in a running system.
        executor.submit([_workload(dag_file, -1 - i) for i in range(parallelism * 2)])
        _finish(executor, parallelism * 2)
        time.sleep(0.2)
        out = []
        for i in range(tries):
            if pause:
                time.sleep(pause)
            start = time.perf_counter()
            executor.submit([_workload(dag_file, i)])
            _finish(executor, 1)
            out.append((time.perf_counter() - start) * 1000)
        return out
    finally:
        executor.end()


def throughput(folder: Path, *, count: int, parallelism: int) -> float:
    """Tries per second with ``count`` tries submitted at once."""
    from tradewind.executors import LocalExecutor

    dag_file = folder / "bench_executor.py"
    executor = LocalExecutor(parallelism=parallelism, data=MemoryData(), log_folder=folder / "logs")
    executor.start()
    try:
        executor.submit([_workload(dag_file, -1 - i) for i in range(parallelism)])
        _finish(executor, parallelism)
        time.sleep(0.2)
        start = time.perf_counter()
        executor.submit([_workload(dag_file, 10_000 + i) for i in range(count)])
        _finish(executor, count)
        return count / (time.perf_counter() - start)
    finally:
        executor.end()


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": statistics.median(ordered),
        "p90_ms": ordered[int(len(ordered) * 0.9) - 1],
        "min_ms": ordered[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tries", type=int, default=200)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--burst", type=int, default=400)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"date": datetime.now().isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "bench_executor.py").write_text(DAG_FILE)
        common = {"tries": args.tries, "parallelism": args.parallelism}
        results["paced"] = _summary(round_trips(folder, pause=0.005, spares=4, **common))
        results["back_to_back"] = _summary(round_trips(folder, pause=0.0, spares=4, **common))
        results["no_spare"] = _summary(round_trips(folder, pause=0.0, spares=0, **common))
        results["throughput_per_s"] = throughput(folder, count=args.burst, parallelism=2)
    # Last: it imports the runtime into this process.
    results["floor"] = _summary(fork_floor(args.tries))

    floor = results["floor"]["median_ms"]
    print(f"local executor, trivial task, median of {args.tries} (parallelism {args.parallelism})")
    print(f"  floor: fork + read one pipe message     {floor:7.2f} ms")
    for name, label in (
        ("paced", "submit -> FINISHED, 5 ms apart"),
        ("back_to_back", "submit -> FINISHED, back to back"),
        ("no_spare", "same, without spare processes"),
    ):
        figure = results[name]
        print(
            f"  {label:36s} {figure['median_ms']:7.2f} ms  (p90 {figure['p90_ms']:.2f}, "
            f"{figure['median_ms'] / floor:.1f}x floor)"
        )
    print(
        f"  throughput, {args.burst} at once, 2 workers  {results['throughput_per_s']:7.0f} tries/s"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
