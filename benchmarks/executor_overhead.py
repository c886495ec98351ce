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
* **throughput**: ``--burst`` tries submitted at once to ``--burst-parallelism`` workers
  (default 2), tries per second, and what a try cost in CPU time below the executor
  interface, split by process: the **executor** (this process: dispatching, the data
  requests, the events), the **workers** (forking, waiting) and the **task processes** (the
  try itself, its fork and exit), each with its minor page faults (on a 2-core VM most of a
  task process's time goes to copy-on-write faults, about 3 us each).

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
        try:
            __import__(name)
        except ImportError:
            continue  # the executor skips missing names too
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


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_times(pid: int) -> tuple[float, float, int, int]:
    """(own CPU s, reaped children's CPU s, own minor faults, children's) of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / _TICK
    children = (int(fields[13]) + int(fields[14])) / _TICK
    return own, children, int(fields[7]), int(fields[8])


def _cpu_snapshot(executor: Any) -> dict[str, float]:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    snap = {
        "executor_s": usage.ru_utime + usage.ru_stime,
        "executor_faults": float(usage.ru_minflt),
        "workers_s": 0.0,
        "workers_faults": 0.0,
        "tasks_s": 0.0,
        "tasks_faults": 0.0,
    }
    for pid in executor.worker_pids():
        own, children, own_faults, children_faults = _proc_times(pid)
        snap["workers_s"] += own
        snap["workers_faults"] += own_faults
        snap["tasks_s"] += children
        snap["tasks_faults"] += children_faults
    return snap


def throughput(folder: Path, *, count: int, parallelism: int) -> dict[str, float]:
    """Tries per second with ``count`` tries submitted at once, and CPU per try by process
    (from /proc on Linux: the workers' own times, and their reaped task processes')."""
    from tradewind.executors import LocalExecutor

    dag_file = folder / "bench_executor.py"
    executor = LocalExecutor(parallelism=parallelism, data=MemoryData(), log_folder=folder / "logs")
    executor.start()
    try:
        executor.submit([_workload(dag_file, -1 - i) for i in range(parallelism * 2)])
        _finish(executor, parallelism * 2)
        time.sleep(0.2)
        measured = os.path.isdir("/proc")
        before = _cpu_snapshot(executor) if measured else {}
        workers = executor.worker_pids()
        start = time.perf_counter()
        executor.submit([_workload(dag_file, 10_000 + i) for i in range(count)])
        _finish(executor, count)
        elapsed = time.perf_counter() - start
        result = {"tries_per_s": count / elapsed}
        if measured and executor.worker_pids() == workers:  # no worker replaced meanwhile
            after = _cpu_snapshot(executor)
            for name in ("executor", "workers", "tasks"):
                result[f"{name}_ms"] = (after[f"{name}_s"] - before[f"{name}_s"]) * 1000 / count
                faults = after[f"{name}_faults"] - before[f"{name}_faults"]
                result[f"{name}_faults"] = faults / count
            result["total_ms"] = sum(result[f"{n}_ms"] for n in ("executor", "workers", "tasks"))
        return result
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
    parser.add_argument("--burst-parallelism", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument(
        "--tmp-dir",
        default=None,
        help="where the DAG file and the task logs go (default: the system's temporary "
        "folder). Each try creates folders for its log: on a file system busy creating and "
        "deleting files (a CI machine's /tmp), that alone can cost a millisecond per try",
    )
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"date": datetime.now().isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
        folder = Path(tmp)
        (folder / "bench_executor.py").write_text(DAG_FILE)
        common = {"tries": args.tries, "parallelism": args.parallelism}
        results["paced"] = _summary(round_trips(folder, pause=0.005, spares=4, **common))
        results["back_to_back"] = _summary(round_trips(folder, pause=0.0, spares=4, **common))
        results["no_spare"] = _summary(round_trips(folder, pause=0.0, spares=0, **common))
        burst = throughput(folder, count=args.burst, parallelism=args.burst_parallelism)
        results["throughput_per_s"] = burst.pop("tries_per_s")
        results["cpu_per_try"] = burst
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
    workers = f"{args.burst_parallelism} workers"
    print(
        f"  throughput, {args.burst} at once, {workers:9s} {results['throughput_per_s']:7.0f} tries/s"
    )
    cpu = results["cpu_per_try"]
    if cpu:
        print("  CPU per try (ms) and minor page faults per try, by process:")
        for name in ("executor", "workers", "tasks"):
            label = "task processes" if name == "tasks" else name
            print(
                f"    {label:16s} {cpu[f'{name}_ms']:6.2f} ms  {cpu[f'{name}_faults']:7.0f} faults"
            )
        print(f"    {'total':16s} {cpu['total_ms']:6.2f} ms")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
