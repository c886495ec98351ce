"""Parsing a whole DAGs folder: one isolated process per file, a few at a time, with a time limit.

The parent imports the SDK, serialization and the built-in operators once, then forks one child
per file (at most ``processes`` at once). A child starts with all of that already in memory,
imports its one file, and sends its DAG documents and import errors back as JSON through a
pipe, so a file that hangs, crashes the interpreter, leaks memory or changes global state hurts
nobody else. A child that overruns its time limit raises inside the file (so the import error
shows where it was stuck); one stuck in C code is killed by the parent shortly after.

Where ``fork`` is not available each file runs in a fresh interpreter instead
(``python -m tradewind.dag_processing.parser``), which is slower but isolated the same way.

Example::

    options = ParseOptions(dags_folder=Path("dags"), timeout=30, processes=4)
    collection = collect_dags(options)
    for error in collection.import_errors:
        print(error.display_path, error.line, error.message)
"""

from __future__ import annotations

import importlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tradewind.dag_processing.discovery import find_dag_files
from tradewind.dag_processing.parser import (
    FileResult,
    ImportErrorInfo,
    apply_parse_settings,
    parse_one_file,
    timeout_message,
)

if TYPE_CHECKING:
    from tradewind.config import Settings

__all__ = [
    "PRELOAD_MODULES",
    "DagCollection",
    "ParseOptions",
    "ProgressCallback",
    "collect_dags",
    "example_dags_folder",
    "parse_files",
]

#: Modules the parent imports before forking, so no child pays for them. Listed by name: this is
#: a warm-up of what DAG files import, not a dependency of DAG processing on these layers.
#: Names that do not exist (yet) are skipped.
PRELOAD_MODULES: tuple[str, ...] = (
    "tradewind.sdk.dag_definition",
    "tradewind.sdk.baseoperator",
    "tradewind.sdk.decorators",
    "tradewind.sdk.taskgroup",
    "tradewind.sdk.edges",
    "tradewind.sdk.mapping",
    "tradewind.sdk.params",
    "tradewind.sdk.xcom_arg",
    "tradewind.sdk.schedule",
    "tradewind.sdk.timezone",
    "tradewind.sdk.trigger_rule",
    "tradewind.sdk.assets",
    "tradewind.sdk.validation",
    "tradewind.timetables",
    "tradewind.serialization",
    "tradewind.operators.empty",
    "tradewind.operators.python",
    "tradewind.operators.bash",
    "tradewind.operators.branch",
    "tradewind.sensors",
    "croniter",
    "dateutil.relativedelta",
)

# A child stuck where the timer signal cannot interrupt it (C code) gets this much longer
# before the parent kills it.
_KILL_GRACE_SECONDS = 2.0
_READ_SIZE = 1 << 16

#: Called after each file: (files done, files in total, the file just done).
ProgressCallback = Callable[[int, int, Path], None]


def example_dags_folder() -> Path:
    """The folder of the example DAGs shipped with Tradewind."""
    return Path(__file__).resolve().parent.parent / "examples" / "dags"


@dataclass(frozen=True)
class ParseOptions:
    """How to parse a DAGs folder. :meth:`from_settings` builds one from the settings."""

    dags_folder: Path
    include_examples: bool = False
    safe_mode: bool = True
    timeout: float = 30.0
    processes: int = 2
    default_timezone: str | None = None
    max_map_length: int | None = None
    #: "fork" (default where available) or "subprocess" (a fresh interpreter per file).
    isolation: Literal["fork", "subprocess"] | None = None
    preload_modules: tuple[str, ...] = PRELOAD_MODULES

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        dags_folder: Path | None = None,
        include_examples: bool | None = None,
    ) -> ParseOptions:
        """Options from ``[core]`` and ``[scheduler]``, with optional overrides."""
        core = settings.core
        return cls(
            dags_folder=Path(dags_folder if dags_folder is not None else core.dags_folder),
            include_examples=core.load_examples if include_examples is None else include_examples,
            safe_mode=core.dag_discovery_safe_mode,
            timeout=float(core.dag_file_processor_timeout),
            processes=settings.scheduler.parsing_processes,
            default_timezone=core.default_timezone,
            max_map_length=core.max_map_length,
        )


@dataclass
class DagCollection:
    """The outcome of parsing a folder.

    ``dags`` maps each DAG id to its serialized document; ``dag_files`` maps it to the file
    that defined it. ``import_errors`` lists every failure, in file order. ``files`` are the
    files parsed, and ``parse_durations`` the seconds each took (by absolute path).
    """

    dags: dict[str, dict[str, Any]] = field(default_factory=dict)
    dag_files: dict[str, str] = field(default_factory=dict)
    import_errors: list[ImportErrorInfo] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    parse_durations: dict[str, float] = field(default_factory=dict)

    def close_matches(self, dag_id: str, limit: int = 5) -> list[str]:
        """DAG ids that look like ``dag_id`` (for "did you mean" messages)."""
        import difflib

        return difflib.get_close_matches(dag_id, list(self.dags), n=limit, cutoff=0.5)


def _preload(modules: Sequence[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            # A missing module is simply not warmed up; a broken one fails the DAG files that
            # import it, which report it as their import error, where the author looks.
            continue
    _warm_up()


def _warm_up() -> None:
    """Define and serialize a small DAG once in the parent, before any fork.

    Each child then finds the lazy imports done and the regular-expression and cron caches
    filled (a cold child spends most of its time there, not in the DAG file).
    """
    from datetime import datetime

    from tradewind.sdk import DAG, BaseOperator, TaskGroup
    from tradewind.sdk._context_stack import collecting

    class _Noop(BaseOperator):
        def execute(self, context: Any) -> None:
            return None

    try:
        with (
            collecting(),
            DAG("_tradewind_warm_up", schedule="@daily", start_date=datetime(2024, 1, 1)) as dag,
        ):
            with TaskGroup("g"):
                first = _Noop(task_id="a")
            first >> _Noop(task_id="b")
        from tradewind.serialization import serialize_dag

        serialize_dag(dag)
    except Exception:
        # Only an optimisation: a failure here shows up again, properly, in the DAG files.
        return


def _roots(options: ParseOptions) -> list[tuple[Path, Path]]:
    """(file, the folder it is relative to), user files first."""
    folder = Path(os.path.abspath(options.dags_folder))
    pairs = [
        (f, folder if folder.is_dir() else f.parent)
        for f in find_dag_files(folder, safe_mode=options.safe_mode)
    ]
    if options.include_examples:
        examples = example_dags_folder()
        pairs += [(f, examples) for f in find_dag_files(examples, safe_mode=False)]
    return pairs


def collect_dags(
    options: ParseOptions, *, progress: ProgressCallback | None = None
) -> DagCollection:
    """Find and parse every DAG file of ``options.dags_folder`` (and the examples, if asked).

    A DAG id defined by two files is kept from the first (in sorted path order, user files
    before examples) and reported as an import error on the other, naming both files.
    """
    pairs = _roots(options)
    results = parse_files(pairs, options, progress=progress)
    collection = DagCollection(files=[p for p, _ in pairs])
    roots = {str(f): r for f, r in pairs}
    for result in results:
        collection.parse_durations[result.path] = result.duration
        collection.import_errors.extend(result.import_errors)
        for parsed in result.dags:
            first = collection.dag_files.get(parsed.dag_id)
            if first is not None:
                collection.import_errors.append(
                    _duplicate_error(parsed.dag_id, first, result.path, roots)
                )
                continue
            collection.dags[parsed.dag_id] = parsed.document
            collection.dag_files[parsed.dag_id] = result.path
    return collection


def _duplicate_error(
    dag_id: str, first: str, again: str, roots: dict[str, Path]
) -> ImportErrorInfo:
    def shown(path: str) -> str:
        root = roots.get(path)
        if root is not None and Path(path).is_relative_to(root):
            return Path(path).relative_to(root).as_posix()
        return path

    return ImportErrorInfo(
        path=again,
        message=f"DAG id {dag_id!r} is defined in two files: {shown(first)} and {shown(again)} "
        f"(the DAG from {shown(first)} is kept)",
        relative_path=shown(again) if shown(again) != again else None,
    )


def parse_files(
    pairs: Sequence[tuple[Path, Path]],
    options: ParseOptions,
    *,
    progress: ProgressCallback | None = None,
) -> list[FileResult]:
    """Parse each (file, root folder) in its own process; results in the order given."""
    if not pairs:
        return []
    isolation = options.isolation or ("fork" if hasattr(os, "fork") else "subprocess")
    if isolation == "fork":
        return _ForkPool(options, progress).run(pairs)
    return _parse_in_subprocesses(pairs, options, progress)


# --- fork --------------------------------------------------------------------------------------


class _Child:
    """One forked parsing process and what it has sent so far."""

    __slots__ = ("buffer", "deadline", "fd", "index", "path", "pid", "started")

    def __init__(self, index: int, path: str, pid: int, fd: int, started: float, deadline: float):
        self.index = index
        self.path = path
        self.pid = pid
        self.fd = fd
        self.started = started
        self.deadline = deadline
        self.buffer = bytearray()


class _ForkPool:
    def __init__(self, options: ParseOptions, progress: ProgressCallback | None) -> None:
        self.options = options
        self.progress = progress
        self.selector = selectors.DefaultSelector()
        self.running: dict[int, _Child] = {}

    def run(self, pairs: Sequence[tuple[Path, Path]]) -> list[FileResult]:
        options = self.options
        _preload(options.preload_modules)
        results: list[FileResult | None] = [None] * len(pairs)
        limit = max(1, options.processes)
        next_index = done = 0
        try:
            while done < len(pairs):
                while next_index < len(pairs) and len(self.running) < limit:
                    file, root = pairs[next_index]
                    self._start(next_index, str(file), str(root))
                    next_index += 1
                for child, result in self._wait():
                    results[child.index] = result
                    done += 1
                    if self.progress is not None:
                        self.progress(done, len(pairs), Path(child.path))
        finally:
            for child in list(self.running.values()):
                self._kill(child)
            self.selector.close()
        return [r for r in results if r is not None]

    def _start(self, index: int, path: str, root: str) -> None:
        read_fd, write_fd = os.pipe()
        # Unflushed output would otherwise be written twice, once by each process.
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, measured through its output
            os.close(read_fd)
            # Settings apply in the child only, so the calling process keeps its own.
            apply_parse_settings(
                default_timezone=self.options.default_timezone,
                max_map_length=self.options.max_map_length,
            )
            _child_main(path, root, self.options.timeout, write_fd)
        os.close(write_fd)
        now = time.monotonic()
        child = _Child(
            index, path, pid, read_fd, now, now + self.options.timeout + _KILL_GRACE_SECONDS
        )
        self.running[read_fd] = child
        self.selector.register(read_fd, selectors.EVENT_READ, child)

    def _wait(self) -> list[tuple[_Child, FileResult]]:
        finished: list[tuple[_Child, FileResult]] = []
        now = time.monotonic()
        wait_for = max(0.0, min(c.deadline for c in self.running.values()) - now)
        for key, _ in self.selector.select(timeout=wait_for):
            child: _Child = key.data
            try:
                chunk = os.read(child.fd, _READ_SIZE)
            except InterruptedError:
                continue
            if chunk:
                child.buffer += chunk
                continue
            finished.append((child, self._finish(child)))
        now = time.monotonic()
        for child in list(self.running.values()):
            if now >= child.deadline:
                self._kill(child)
                finished.append(
                    (child, _timed_out(child.path, self.options.timeout, now - child.started))
                )
        return finished

    def _release(self, child: _Child) -> None:
        self.selector.unregister(child.fd)
        os.close(child.fd)
        del self.running[child.fd]

    def _finish(self, child: _Child) -> FileResult:
        self._release(child)
        _, status = os.waitpid(child.pid, 0)
        elapsed = time.monotonic() - child.started
        if child.buffer:
            try:
                return FileResult.from_json(bytes(child.buffer))
            except ValueError:
                pass
        return _crashed(child.path, _describe_exit(status), elapsed)

    def _kill(self, child: _Child) -> None:
        try:
            os.kill(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._release(child)
        try:
            os.waitpid(child.pid, 0)
        except ChildProcessError:
            pass


def _child_main(path: str, root: str, timeout: float, write_fd: int) -> None:  # pragma: no cover
    """Body of a forked parsing process; never returns."""
    code = 0
    try:
        # The parent's Ctrl-C handling and stdout belong to the parent: what a DAG file prints
        # goes to stderr so it can never corrupt JSON the CLI writes on stdout.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.dup2(2, 1)
        result = parse_one_file(path, root=root, timeout=timeout)
        data = result.to_json().encode("utf-8")
        view = memoryview(data)
        while view:
            written = os.write(write_fd, view)
            view = view[written:]
    except BaseException:
        code = 70  # EX_SOFTWARE: the parent reports it as a crash of the parsing process
    finally:
        os._exit(code)


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return f"the parsing process was killed by signal {name}"
    return (
        f"the parsing process exited with code {os.waitstatus_to_exitcode(status)} without a result"
    )


def _crashed(path: str, message: str, elapsed: float) -> FileResult:
    return FileResult(
        path=path,
        import_errors=[ImportErrorInfo(path=path, message=message)],
        duration=elapsed,
    )


def _timed_out(path: str, timeout: float, elapsed: float) -> FileResult:
    return FileResult(
        path=path,
        import_errors=[ImportErrorInfo(path=path, message=timeout_message(timeout))],
        duration=elapsed,
    )


# --- fresh interpreter per file --------------------------------------------------------------------


def _parse_in_subprocesses(
    pairs: Sequence[tuple[Path, Path]],
    options: ParseOptions,
    progress: ProgressCallback | None,
) -> list[FileResult]:
    total = len(pairs)
    done = 0

    def one(pair: tuple[Path, Path]) -> FileResult:
        file, root = pair
        command = [
            sys.executable,
            "-m",
            "tradewind.dag_processing.parser",
            str(file),
            "--root",
            str(root),
            "--timeout",
            str(options.timeout),
        ]
        if options.default_timezone:
            command += ["--default-timezone", options.default_timezone]
        if options.max_map_length:
            command += ["--max-map-length", str(options.max_map_length)]
        started = time.monotonic()
        try:
            proc = subprocess.run(
                command,
                stdout=subprocess.PIPE,
                timeout=options.timeout + _KILL_GRACE_SECONDS + 5.0,  # + interpreter start-up
                check=False,
            )
        except subprocess.TimeoutExpired:
            return _timed_out(str(file), options.timeout, time.monotonic() - started)
        try:
            return FileResult.from_json(proc.stdout)
        except ValueError:
            return _crashed(
                str(file),
                f"the parsing process exited with code {proc.returncode} without a result",
                time.monotonic() - started,
            )

    results: list[FileResult] = []
    with ThreadPoolExecutor(max_workers=max(1, options.processes)) as pool:
        for pair, result in zip(pairs, pool.map(one, pairs), strict=True):
            results.append(result)
            done += 1
            if progress is not None:
                progress(done, total, pair[0])
    return results
