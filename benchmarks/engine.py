"""Engine benchmarks: workloads W1, W1b, W2, W3, W5 and W6 of ``shared/BENCHMARKS.md``.

Registered in ``run.py`` (``python benchmarks/run.py --only W1,W2-200``; one workload alone:
``python benchmarks/engine.py W1 3``). Every workload builds a throw-away ``TRADEWIND_HOME``
(SQLite) in a temporary folder, migrates it and parses its DAG files with the real commands
(``tradewind db migrate``, ``tradewind dag-processor --once``), and runs the engine as its own
processes (``tradewind scheduler`` with the local executor, ``dags test``, ``standalone``).

Figures come from the run's own timestamps: trigger-to-success is ``queued_at`` ->
``end_date``, split into *pickup* (``queued_at`` -> ``start_date``: until the scheduler noticed
the run) and *execution* (``start_date`` -> ``end_date``). Engine runs use
``TRADEWIND__CORE__PARALLELISM`` = :data:`PARALLELISM` (W6 keeps every default). A scheduler
first does one warm-up run (kept as ``first_run_ms``; skipped for the big workloads); before
each measured trigger the driver sleeps a random 0.05-1 s, so runs are triggered at random
phases of the scheduler's poll. Processes are started in sessions of their own and stopped,
with every descendant, whatever happens; a workload that cannot finish raises
:class:`BenchError` saying why, with the end of the component's log.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["PARALLELISM", "BenchError", "workloads"]

PY = sys.executable
#: Worker processes of the local executor (and of the ProcessPool floor) on this 2-core machine.
PARALLELISM = 8
_TICK = os.sysconf("SC_CLK_TCK")
_POLL = 0.05  # seconds between looks at a run's state (the figures come from its timestamps)
_START = "datetime(2024, 1, 1)"
R = TypeVar("R")


class BenchError(RuntimeError):
    """A workload could not be measured (the engine failed, hung, or is not there yet)."""


# --- DAG files -------------------------------------------------------------------------------------


def chain_dag(dag_id: str, n: int, sleep: float = 0.0) -> str:
    """A chain of ``n`` TaskFlow tasks, each depending on the previous one."""
    body = f"time.sleep({sleep})" if sleep else "return None"
    return textwrap.dedent(
        f"""
        import time
        from datetime import datetime
        from tradewind import DAG, task

        with DAG("{dag_id}", schedule=None, start_date={_START}):
            @task
            def step() -> None:
                {body}

            prev = None
            for i in range({n}):
                cur = step.override(task_id=f"t{{i:04d}}")()
                if prev is not None:
                    prev >> cur
                prev = cur
        """
    )


def fanout_dag(dag_id: str, n: int) -> str:
    """One start task, ``n`` parallel tasks, one join."""
    return textwrap.dedent(
        f"""
        from datetime import datetime
        from tradewind import DAG, task

        with DAG("{dag_id}", schedule=None, start_date={_START}):
            @task
            def start() -> None:
                return None

            @task
            def work() -> None:
                return None

            @task
            def join() -> None:
                return None

            first, last = start(), join()
            for i in range({n}):
                first >> work.override(task_id=f"w{{i:05d}}")() >> last
        """
    )


def mapped_dag(dag_id: str, n: int) -> str:
    """A producer of ``n`` items, a task mapped over them, and a reduce."""
    return textwrap.dedent(
        f"""
        from datetime import datetime
        from tradewind import DAG, task

        with DAG("{dag_id}", schedule=None, start_date={_START}):
            @task
            def make() -> list[int]:
                return list(range({n}))

            @task
            def one(x: int) -> int:
                return x

            @task
            def total(values) -> int:
                return sum(values)

            total(one.expand(x=make()))
        """
    )


# --- processes ---------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, start time, CPU ticks including reaped children) of a process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[19]), sum(int(x) for x in fields[11:15])


def process_tree(root: int) -> dict[int, tuple[int, int, int]]:
    """``root`` and all its live descendants: ``{pid: (ppid, start time, cpu ticks)}``.

    The ticks include those of children a process has reaped, so summing them over the tree
    at two moments gives the CPU used in between even by processes born and gone meanwhile.
    """
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                stats[int(entry)] = st
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, tuple[int, int, int]] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in stats and pid not in out:
            out[pid] = stats[pid]
            todo.extend(children.get(pid, ()))
    return out


def memory_kb(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of a process in KiB from ``/proc/<pid>/smaps_rollup`` (0, 0 if gone)."""
    pss = rss = 0
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0, 0
    for line in lines:
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
        elif line.startswith("Rss:"):
            rss = int(line.split()[1])
    return pss, rss


@dataclass
class Proc:
    """A component started by a workload, in a session of its own, logging to a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def tail(self, lines: int = 25) -> str:
        """The end of its log (stdout and stderr)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after ``grace``; then SIGKILL whatever it left behind."""
        members = process_tree(self.popen.pid)
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        deadline = time.monotonic() + 5.0
        left = dict(members)
        while left and time.monotonic() < deadline:
            left = {p: v for p, v in left.items() if (st := _stat(p)) and st[1] == v[1]}
            if left:
                time.sleep(0.1)
        for pid in left:  # same pid and start time: still the process we started
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _base_env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND")}
    env.update(
        {
            "TRADEWIND_HOME": str(home),
            "TRADEWIND__CORE__DAGS_FOLDER": str(home / "dags"),
            "TRADEWIND__CORE__LOAD_EXAMPLES": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def tradewind_cmd() -> list[str]:
    """How to run the ``tradewind`` command with this interpreter (the console script if any)."""
    script = Path(PY).parent / "tradewind"
    return [str(script)] if script.exists() else [PY, "-m", "tradewind.cli.main"]


# --- a throw-away installation ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunTimes:
    """What the run's own timestamps say (seconds), and the CPU its processes used."""

    trigger_to_success: float
    pickup: float  # queued_at -> start_date: until the scheduler noticed the new run
    execution: float  # start_date -> end_date
    cpu: float  # CPU seconds of the scheduler and all its descendants meanwhile


class Stack:
    """A temporary ``TRADEWIND_HOME`` with DAG files; with ``prepare`` the database is
    migrated, the files parsed into it, and the DAGs unpaused (all checked)."""

    def __init__(
        self, dags: dict[str, str], *, env: dict[str, str] | None = None, prepare: bool = True
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="tw-bench-")
        self.home = Path(self._tmp.name)
        (self.home / "dags").mkdir()
        for dag_id, source in dags.items():
            (self.home / "dags" / f"{dag_id}.py").write_text(source)
        self.dag_ids = list(dags)
        self.env = _base_env(self.home, env or {})
        self.procs: list[Proc] = []
        self._db: Any = None
        self._reader: Any = None
        self._views: dict[int, Any] = {}
        self._runs = 0
        self._prepare = prepare

    def __enter__(self) -> Stack:
        try:
            if self._prepare:
                self.cli("db", "migrate")
                self.cli("dag-processor", "--once")
                self._check_and_unpause()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every component (newest first), close the database, delete the folder."""
        for proc in reversed(self.procs):
            proc.stop()
        for db in (self._db, self._reader):
            if db is not None:
                db.dispose()
        self._tmp.cleanup()

    # -- commands and components ---------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 300) -> str:
        """Run one ``tradewind`` command to completion; its output, or BenchError."""
        try:
            done = subprocess.run(
                [*tradewind_cmd(), *args],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise BenchError(f"`tradewind {' '.join(args)}` took more than {timeout:.0f} s")
        if done.returncode != 0:
            raise BenchError(
                f"`tradewind {' '.join(args)}` exited with {done.returncode}:\n"
                + (done.stderr or done.stdout)[-3000:]
            )
        return done.stdout + done.stderr

    def start(self, name: str, *args: str, ready: str | None, timeout: float = 60) -> Proc:
        """Start ``tradewind ARGS`` in the background; wait until its log shows ``ready``."""
        log = self.home / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [*tradewind_cmd(), *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        while ready is not None and ready not in log.read_text(errors="replace"):
            if not proc.alive():
                raise BenchError(
                    f"`tradewind {' '.join(args)}` exited with {popen.returncode} before it "
                    f"was ready; its log ends:\n{proc.tail()}"
                )
            if time.monotonic() > deadline:
                raise BenchError(
                    f"`tradewind {' '.join(args)}` not ready after {timeout:.0f} s (no "
                    f"{ready!r} in its log); its log ends:\n{proc.tail()}"
                )
            time.sleep(0.1)
        return proc

    def start_scheduler(self) -> Proc:
        """``tradewind scheduler``, once it says it started and its workers had a moment."""
        proc = self.start("scheduler", "scheduler", ready="scheduler started")
        time.sleep(1.0)  # the fork server and the warm workers come up after that line
        return proc

    # -- the database ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The SQLite URL of this installation's metadata database."""
        return f"sqlite:///{self.home}/tradewind.db"

    def db(self, *, write: bool = False) -> Any:
        """A :class:`tradewind.db.Database` on it (the reader never takes the write lock)."""
        from tradewind.db.database import Database

        if write:
            if self._db is None:
                self._db = Database.from_url(self.url)
            return self._db
        if self._reader is None:
            self._reader = Database.from_url(self.url, sqlite_immediate=False)
        return self._reader

    def _check_and_unpause(self) -> None:
        import sqlalchemy as sa

        from tradewind.db import dags as db_dags
        from tradewind.db.models import Dag, DagImportError

        with self.db(write=True).session() as s:
            known = set(s.scalars(sa.select(Dag.dag_id)))
            errors = [f"{e.filename}: {e.message}" for e in s.scalars(sa.select(DagImportError))]
            missing = [d for d in self.dag_ids if d not in known]
            if missing or errors:
                raise BenchError(f"DAGs {missing} did not reach the database; errors: {errors}")
            for dag_id in self.dag_ids:
                db_dags.set_paused(s, dag_id, False)

    def trigger(self, dag_id: str) -> str:
        """Queue a manual run (as ``tradewind dags trigger`` does); returns its run id."""
        from tradewind.db import dags as db_dags
        from tradewind.db import runs as db_runs
        from tradewind.scheduler import decisions as d
        from tradewind.sdk.timezone import utcnow
        from tradewind.serialization import deserialize_dag

        self._runs += 1
        run_id = f"bench__{self._runs:04d}"
        with self.db(write=True).session() as s:
            version = db_dags.get_latest_version(s, dag_id)
            view = self._views.get(version.id)
            if view is None:
                view = self._views[version.id] = deserialize_dag(version.document)
            now = utcnow()
            interval = d.manual_run_interval(view.timetable, now)
            db_runs.create_run(
                s, view, run_id=run_id, run_type="manual", run_after=now, now=now,
                dag_version_id=version.id, logical_date=now,
                data_interval=(interval.start, interval.end),
            )  # fmt: skip
        return run_id

    def wait(self, dag_id: str, run_id: str, scheduler: Proc, timeout: float) -> RunTimes:
        """Wait for the run to succeed; its timestamps. BenchError if it fails or hangs."""
        from tradewind.db import runs as db_runs
        from tradewind.db import task_instances as db_tis
        from tradewind.state import RunState

        deadline = time.monotonic() + timeout
        while True:
            with self.db().session() as s:
                run = db_runs.get_run(s, dag_id, run_id)
                state, times = run.state, (run.queued_at, run.start_date, run.end_date)
                if state in (RunState.SUCCESS, RunState.FAILED) or time.monotonic() > deadline:
                    counts = {
                        str(k): v for k, v in db_tis.count_by_state(s, dag_id, run_id).items()
                    }
                    failed = [
                        f"{ti.task_id}[{ti.map_index}]: {ti.last_error}"
                        for ti in db_tis.list_tis(s, dag_id, run_id)
                        if ti.last_error
                    ][:5]
                    break
            if not scheduler.alive():
                raise BenchError(
                    f"the scheduler exited ({scheduler.popen.returncode}) during run {run_id} of "
                    f"{dag_id}; its log ends:\n{scheduler.tail()}"
                )
            time.sleep(_POLL)
        if state is not RunState.SUCCESS:
            done = sum(v for k, v in counts.items() if k in ("success", "skipped", "failed"))
            what = (
                "failed"
                if state is RunState.FAILED
                else f"is {state} after {timeout:.0f} s ({done:,} task instances finished by "
                f"then: {done / timeout:.1f} per second)"
            )
            raise BenchError(
                f"run {run_id} of {dag_id} {what}; task instances {counts}; errors {failed}; "
                f"the scheduler's log ends:\n{scheduler.tail()}"
            )
        queued, started, ended = times
        assert queued is not None and started is not None and ended is not None
        return RunTimes(
            (ended - queued).total_seconds(),
            (started - queued).total_seconds(),
            (ended - started).total_seconds(),
            0.0,
        )

    def measure_run(self, dag_id: str, scheduler: Proc, timeout: float) -> RunTimes:
        """Trigger a run, wait for it, and add the CPU its scheduler's process tree used."""
        before = sum(t for _, _, t in process_tree(scheduler.popen.pid).values())
        times = self.wait(dag_id, self.trigger(dag_id), scheduler, timeout)
        after = sum(t for _, _, t in process_tree(scheduler.popen.pid).values())
        return RunTimes(
            times.trigger_to_success, times.pickup, times.execution, (after - before) / _TICK
        )


def _engine_env() -> dict[str, str]:
    return {
        "TRADEWIND__CORE__PARALLELISM": str(PARALLELISM),
        "TRADEWIND__CORE__MAX_MAP_LENGTH": "100000",
    }


def measured_runs(
    dags: dict[str, str], dag_id: str, repeat: int, timeout: float, *, warm_up: bool = True
) -> tuple[RunTimes | None, list[RunTimes]]:
    """``repeat`` measured runs of ``dag_id`` through one scheduler, after one warm-up run
    (skipped for the big workloads, where the workers' first import of the DAG file is
    lost in the noise)."""
    rng = random.Random(20261125)
    with Stack(dags, env=_engine_env()) as stack:
        scheduler = stack.start_scheduler()
        first = stack.measure_run(dag_id, scheduler, timeout) if warm_up else None
        runs = []
        for _ in range(repeat):
            time.sleep(rng.uniform(0.05, 1.0))
            runs.append(stack.measure_run(dag_id, scheduler, timeout))
    return first, runs


# --- floors -------------------------------------------------------------------------------------------

_HOP_FLOOR = textwrap.dedent(
    """
    import os, sqlite3, statistics, sys, time
    hops, path = int(sys.argv[1]), sys.argv[2]
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("pragma journal_mode=wal"); con.execute("pragma synchronous=normal")
    con.execute("create table ti (id integer primary key, state text)")
    con.execute("insert into ti values (1, 'queued')")
    to_child, from_parent = os.pipe(); to_parent, from_child = os.pipe()
    pid = os.fork()
    if pid == 0:
        while os.read(to_child, 1) == b"x":
            os.write(from_child, b"y")
        os._exit(0)
    runs = []
    for _ in range(30):
        t0 = time.perf_counter()
        for i in range(hops):
            con.execute("begin immediate")
            con.execute("update ti set state = ? where id = 1", (str(i),))
            con.execute("commit")
            os.write(from_parent, b"x"); os.read(to_parent, 1)
        runs.append(time.perf_counter() - t0)
    os.write(from_parent, b"q"); os.waitpid(pid, 0)
    print(statistics.median(runs))
    """
)


def hop_floor(hops: int) -> float:
    """Seconds for ``hops`` x (one SQLite WAL commit + one pipe round trip between processes)."""
    with tempfile.TemporaryDirectory(prefix="tw-floor-") as tmp:
        out = []
        for i in range(3):
            done = subprocess.run(
                [PY, "-c", _HOP_FLOOR, str(hops), f"{tmp}/floor{i}.db"],
                check=True,
                capture_output=True,
                text=True,
                timeout=120,
            )
            out.append(float(done.stdout))
    return statistics.median(out)


_POOL_FLOOR = textwrap.dedent(
    """
    import statistics, sys, time
    from concurrent.futures import ProcessPoolExecutor, wait

    def start(): return None
    def work(): return None
    def join(): return None
    def make(n): return list(range(n))
    def one(x): return x
    def total(values): return sum(values)

    def fanout(pool, n):
        pool.submit(start).result()
        wait([pool.submit(work) for _ in range(n)])
        pool.submit(join).result()

    def mapped(pool, n):
        items = pool.submit(make, n).result()
        values = [f.result() for f in [pool.submit(one, x) for x in items]]
        assert pool.submit(total, values).result() == sum(range(n))

    if __name__ == "__main__":
        kind, n, workers, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        fn = fanout if kind == "fanout" else mapped
        with ProcessPoolExecutor(workers) as pool:
            wait([pool.submit(work) for _ in range(workers * 4)])  # every worker started
            runs = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn(pool, n)
                runs.append(time.perf_counter() - t0)
        print(statistics.median(runs))
    """
)


def pool_floor(kind: str, n: int, reps: int) -> float:
    """Median seconds of the same callables through a warm ProcessPoolExecutor."""
    with tempfile.TemporaryDirectory(prefix="tw-floor-") as tmp:
        script = Path(tmp) / "pool_floor.py"  # a file: the pool's workers unpickle by name
        script.write_text(_POOL_FLOOR)
        done = subprocess.run(
            [PY, str(script), kind, str(n), str(PARALLELISM), str(reps)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
    return float(done.stdout)


def _time_cmd(
    args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 120
) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise BenchError(
            f"`{' '.join(args)}` exited with {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return elapsed


# --- workloads ----------------------------------------------------------------------------------------


def _ms(values: Sequence[float]) -> list[float]:
    return [v * 1000 for v in values]


def _run_extra(first: RunTimes | None, runs: list[RunTimes], tasks: int) -> dict[str, float]:
    """Medians of the parts of trigger-to-success, and the CPU per task."""
    extra = {
        "pickup_ms": statistics.median(r.pickup for r in runs) * 1000,
        "execution_ms": statistics.median(r.execution for r in runs) * 1000,
        "cpu_per_task_ms": statistics.median(r.cpu for r in runs) * 1000 / tasks,
    }
    if first is not None:
        extra["first_run_ms"] = first.trigger_to_success * 1000
    return extra


def bench_chain(result: Callable[..., R], repeat: int, hops: int, sleep: float) -> R:
    """W1 (trivial tasks; the figure is per hop) and W1b (tasks sleeping; total)."""
    dag_id = f"bench_chain_{hops}"
    first, runs = measured_runs({dag_id: chain_dag(dag_id, hops, sleep)}, dag_id, repeat, 120)
    floor = hop_floor(hops)
    totals = [r.trigger_to_success for r in runs]
    extra = _run_extra(first, runs, hops)
    if not sleep:
        extra["trigger_to_success_ms"] = statistics.median(totals) * 1000
        extra["execution_per_hop_ms"] = extra["execution_ms"] / hops
        extra["floor_total_ms"] = floor * 1000
        return result(
            id="W1",
            name=f"chain of {hops} trivial tasks, trigger-to-success per hop (running scheduler)",
            unit="ms",
            median=statistics.median(totals) * 1000 / hops,
            runs=[t * 1000 / hops for t in totals],
            floor=floor * 1000 / hops,
            floor_name="1 SQLite WAL commit + 1 pipe round trip between 2 processes, per hop",
            extra=extra,
        )
    return result(
        id="W1b",
        name=f"chain of {hops} tasks sleeping {sleep * 1000:.0f} ms, trigger-to-success",
        unit="ms",
        median=statistics.median(totals) * 1000,
        runs=_ms(totals),
        floor=(hops * sleep + floor) * 1000,
        floor_name=f"{hops * sleep:.1f} s of sleep + the W1 floor for {hops} hops",
        extra=extra,
    )


def _parallel(
    result: Callable[..., R],
    wid: str,
    kind: str,
    n: int,
    repeat: int,
    timeout: float,
    *,
    warm_up: bool = True,
) -> R:
    """W2/W3: trigger-to-success of a fan-out or a map/reduce, beside the ProcessPool floor."""
    tasks = n + 2
    dag_id = f"bench_{kind}_{n}"
    source = fanout_dag(dag_id, n) if kind == "fanout" else mapped_dag(dag_id, n)
    first, runs = measured_runs({dag_id: source}, dag_id, repeat, timeout, warm_up=warm_up)
    floor = pool_floor(kind, n, max(3, repeat))
    total = statistics.median(r.trigger_to_success for r in runs)
    extra = _run_extra(first, runs, tasks)
    shape = (
        f"1 -> {n:,} -> 1 fan-out" if kind == "fanout" else f"{n:,} mapped instances + map/reduce"
    )
    return result(
        id=wid,
        name=f"{shape} ({tasks:,} tasks), trigger-to-success, parallelism {PARALLELISM}",
        unit="ms",
        median=total * 1000,
        runs=_ms([r.trigger_to_success for r in runs]),
        floor=floor * 1000,
        floor_name=f"same callables, warm ProcessPoolExecutor({PARALLELISM})",
        extra={
            "tasks_per_s": tasks / total,
            "tasks_per_s_execution": tasks / extra["execution_ms"] * 1000,
            "floor_tasks_per_s": tasks / floor,
            "ratio_to_floor": total / floor,
            **extra,
        },
    )


def bench_dags_test(result: Callable[..., R], repeat: int) -> R:
    """W5: ``tradewind dags test`` of the W1 chain, whole command."""
    with Stack({"bench_chain": chain_dag("bench_chain", 20)}, prepare=False) as stack:
        cmd = [*tradewind_cmd(), "dags", "test", "bench_chain"]
        _time_cmd(cmd, stack.env)  # warm the page cache and the bytecode caches
        runs = [_time_cmd(cmd, stack.env) for _ in range(repeat)]
        bare = statistics.median(_time_cmd([PY, "-c", "pass"]) for _ in range(repeat))
    return result(
        id="W5",
        name="`tradewind dags test` of the 20-task chain (whole command)",
        unit="ms",
        median=statistics.median(runs) * 1000,
        runs=_ms(runs),
        floor=bare * 1000,
        floor_name="python -c pass",
    )


def _component_of(pid: int, supervisor: int, tree: dict[int, tuple[int, int, int]]) -> str:
    """Which supervised component (by its command line) a process belongs to."""
    while pid in tree and tree[pid][0] != supervisor and pid != supervisor:
        pid = tree[pid][0]
    if pid == supervisor:
        return "supervisor"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    return next((a.decode() for a in argv if a in (b"scheduler", b"dag-processor")), "other")


def standalone_idle(settle: float = 20.0, window: float = 60.0) -> dict[str, float]:
    """Start ``tradewind standalone`` with the examples, let it settle, measure it idle."""
    import sqlalchemy as sa

    env = {"TRADEWIND__CORE__LOAD_EXAMPLES": "true"}
    with Stack({}, env=env, prepare=False) as stack:
        proc = stack.start("standalone", "standalone", ready="started scheduler")
        t0 = time.monotonic()
        counts: list[int] = []
        while True:  # settled: at least `settle` s, and the DAG count unchanged for 5 s
            time.sleep(1.0)
            if not proc.alive():
                raise BenchError(f"standalone exited ({proc.popen.returncode}):\n{proc.tail()}")
            with contextlib.suppress(Exception), stack.db().session() as s:
                counts.append(int(s.scalar(sa.text("select count(*) from dag")) or 0))
            stable = len(counts) >= 5 and counts[-1] > 0 and len(set(counts[-5:])) == 1
            if time.monotonic() - t0 >= settle and stable:
                break
            if time.monotonic() - t0 > settle + 120:
                raise BenchError(
                    f"no example DAGs in the database after {settle + 120:.0f} s "
                    f"(counts {counts[-5:]}); standalone's log ends:\n{proc.tail()}"
                )
        root = proc.popen.pid
        before = process_tree(root)
        mem = {pid: memory_kb(pid) for pid in before}
        c0 = time.monotonic()
        time.sleep(window)
        after = process_tree(root)
        elapsed = time.monotonic() - c0
        if not proc.alive():
            raise BenchError(f"standalone exited during the window:\n{proc.tail()}")
        out = {
            "pss_mb": sum(p for p, _ in mem.values()) / 1024,
            "rss_mb": sum(r for _, r in mem.values()) / 1024,
            "processes": float(len(before)),
            "dags": float(counts[-1]),
            "cpu_pct": 0.0,
        }
        # CPU per component: processes alive at the end count all their ticks; those at the
        # start are subtracted (those that ended meanwhile reappear in their parent's reaped
        # children's ticks).
        for tree, sign in ((after, 1), (before, -1)):
            for pid, (_, _, ticks) in tree.items():
                comp = _component_of(pid, root, tree)
                share = sign * ticks / _TICK / elapsed * 100
                out["cpu_pct"] += share
                out[f"cpu_pct_{comp}"] = out.get(f"cpu_pct_{comp}", 0.0) + share
        for pid, (pss, _) in mem.items():
            key = f"pss_mb_{_component_of(pid, root, before)}"
            out[key] = out.get(key, 0.0) + pss / 1024
        out["pss_mb_end"] = sum(memory_kb(pid)[0] for pid in after) / 1024
    return out


def bench_standalone(result: Callable[..., R], repeat: int) -> R:
    """W6: ``tradewind standalone`` idle with the example DAGs: PSS and CPU share."""
    samples = [standalone_idle() for _ in range(repeat)]
    with subprocess.Popen([PY, "-c", "import time; time.sleep(30)"]) as bare:
        time.sleep(1.0)
        bare_pss = memory_kb(bare.pid)[0] / 1024
        bare.kill()
    keys = sorted({k for s in samples for k in s})
    extra = {k: statistics.median(s.get(k, 0.0) for s in samples) for k in keys if k != "pss_mb"}
    extra["bare_python_pss_mb"] = bare_pss
    return result(
        id="W6",
        name="`tradewind standalone` idle with the example DAGs: PSS summed over its processes",
        unit="MB",
        median=statistics.median(s["pss_mb"] for s in samples),
        runs=[s["pss_mb"] for s in samples],
        extra=extra,
    )


def workloads(result: Callable[..., R]) -> dict[str, Callable[[int], R]]:
    """The engine workloads for ``run.py``'s table; ``result`` builds its Result records."""
    return {
        "W1": lambda r: bench_chain(result, r, 20, 0.0),
        "W1b": lambda r: bench_chain(result, r, 40, 0.01),
        "W2-200": lambda r: _parallel(result, "W2-200", "fanout", 200, r, 300),
        # The big ones: fewer runs, no warm-up run, and a bound on how long a run may take.
        "W2-2000": lambda r: _parallel(
            result, "W2-2000", "fanout", 2000, max(1, r // 2), 600, warm_up=False
        ),
        "W3-1000": lambda r: _parallel(result, "W3-1000", "mapped", 1000, max(1, r // 2), 300),
        "W3-10000": lambda r: _parallel(
            result, "W3-10000", "mapped", 10000, max(1, r // 2), 600, warm_up=False
        ),
        "W5": lambda r: bench_dags_test(result, r),
        "W6": lambda r: bench_standalone(result, max(1, r // 3)),
    }


if __name__ == "__main__":  # quick look at one workload: python benchmarks/engine.py W1 3
    from pprint import pprint

    wid, rep = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    pprint(workloads(dict)[wid](rep))
