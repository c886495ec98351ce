"""Importing one DAG file: its DAGs, validated and serialized, or the import errors it raised.

This is the work one parsing process does for one file (see
:mod:`tradewind.dag_processing.collection` for running many of them in parallel), and what the
task runtime and ``tasks test`` use to get a live :class:`~tradewind.sdk.dag_definition.DAG` back
(:func:`load_dag_from_file`).

Each file is imported as a module with a name derived from its absolute path
(``_tradewind_dagfile_<hash>_<stem>``), so two files both called ``etl.py`` in different
folders never replace each other in ``sys.modules``. The DAGs a file defines are the ones
created while it is imported (``with DAG(...)``, ``@dag`` calls, plain ``DAG(...)`` objects)
plus any DAG object left in the module's globals.

Run as a program, it parses one file in a fresh interpreter and prints the result as JSON on
stdout (used where ``fork`` is unavailable, and by the "one file in a fresh process"
benchmark)::

    python -m tradewind.dag_processing.parser dags/etl.py --root dags --timeout 30
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from tradewind.errors import DagDefinitionError, NotFound

if TYPE_CHECKING:
    from tradewind.sdk.dag_definition import DAG

__all__ = [
    "FileResult",
    "ImportErrorInfo",
    "ParsedDag",
    "apply_parse_settings",
    "dag_file_module_name",
    "import_dag_file",
    "load_dag_from_file",
    "parse_one_file",
]

_MODULE_PREFIX = "_tradewind_dagfile_"
_NON_IDENT = re.compile(r"\W")


@dataclass(frozen=True)
class ImportErrorInfo:
    """One DAG file that failed to import (or one of its DAGs that failed to load).

    ``path`` is absolute; ``relative_path`` is relative to the DAGs folder (None for files
    outside it). ``line`` is where the problem is in that file when known: the line of a syntax
    error, the deepest traceback frame inside the file, or the location a definition problem
    names. ``traceback`` is the formatted traceback from the file's own frames down (empty when
    there is none, e.g. a timeout killed the process).
    """

    path: str
    message: str
    line: int | None = None
    traceback: str = ""
    relative_path: str | None = None

    @property
    def display_path(self) -> str:
        """``relative_path`` when known, else ``path``."""
        return self.relative_path or self.path

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (also the ``--output json`` form in the CLI)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportErrorInfo:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            path=data["path"],
            message=data["message"],
            line=data.get("line"),
            traceback=data.get("traceback", ""),
            relative_path=data.get("relative_path"),
        )


@dataclass(frozen=True)
class ParsedDag:
    """One DAG a file defined: its id and its serialized document."""

    dag_id: str
    document: dict[str, Any]


@dataclass
class FileResult:
    """What parsing one file produced: DAG documents, import errors, and the time it took."""

    path: str
    dags: list[ParsedDag] = field(default_factory=list)
    import_errors: list[ImportErrorInfo] = field(default_factory=list)
    duration: float = 0.0

    def to_json(self) -> str:
        """Encode for the pipe from a parsing process to its parent."""
        return json.dumps(
            {
                "path": self.path,
                "dags": [{"dag_id": d.dag_id, "document": d.document} for d in self.dags],
                "import_errors": [e.to_dict() for e in self.import_errors],
                "duration": self.duration,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> FileResult:
        """Decode :meth:`to_json` output."""
        data = json.loads(text)
        return cls(
            path=data["path"],
            dags=[ParsedDag(d["dag_id"], d["document"]) for d in data["dags"]],
            import_errors=[ImportErrorInfo.from_dict(e) for e in data["import_errors"]],
            duration=float(data["duration"]),
        )


class _ParseTimeout(BaseException):
    """Raised inside a file's import when its time is up.

    A BaseException so that a DAG file's own ``except Exception`` cannot swallow it.
    """


# --- settings --------------------------------------------------------------------------------


def apply_parse_settings(
    *, default_timezone: str | None = None, max_map_length: int | None = None
) -> None:
    """Apply the settings DAG files are defined under, in this process.

    Parsing processes inherit them from the parent (``fork``) or receive them as arguments.
    """
    if max_map_length is not None:
        from tradewind.sdk.mapping import set_max_map_length

        set_max_map_length(max_map_length)
    if default_timezone is not None:
        from tradewind.sdk.timezone import set_default_timezone

        set_default_timezone(default_timezone)


# --- importing -------------------------------------------------------------------------------


def dag_file_module_name(path: str | os.PathLike[str]) -> str:
    """The unique module name a DAG file is imported under (stable for one absolute path)."""
    absolute = os.path.abspath(os.fspath(path))
    digest = hashlib.sha1(absolute.encode("utf-8"), usedforsecurity=False).hexdigest()[:12]
    stem = _NON_IDENT.sub("_", Path(absolute).stem)
    return f"{_MODULE_PREFIX}{digest}_{stem}"


def _ensure_on_sys_path(folder: str | None) -> None:
    # DAG files import helper modules that sit next to them in the DAGs folder, as in Airflow.
    if folder and folder not in sys.path:
        sys.path.append(folder)


def import_dag_file(path: str | os.PathLike[str]) -> tuple[ModuleType, list[DAG]]:
    """Import the file as a fresh module and return it with every DAG it defined.

    Each DAG's ``fileloc`` is set to the file (also for DAGs built by a helper module the file
    calls), because that is the file to import again to get the DAG back. Exceptions raised by
    the file propagate; the module is removed from ``sys.modules`` when it fails.
    """
    from tradewind.sdk._context_stack import collecting
    from tradewind.sdk.dag_definition import DAG

    absolute = os.path.abspath(os.fspath(path))
    name = dag_file_module_name(absolute)
    spec = importlib.util.spec_from_file_location(name, absolute)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {absolute}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with collecting() as collected:
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    dags: list[DAG] = []
    for candidate in [*collected, *vars(module).values()]:
        if isinstance(candidate, DAG) and not any(candidate is d for d in dags):
            dags.append(candidate)
    for dag in dags:
        dag.fileloc = absolute
    return module, dags


def _relative_to(path: str, root: str | None) -> str | None:
    if not root:
        return None
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return None


def load_dag_from_file(
    path: str | os.PathLike[str],
    dag_id: str,
    *,
    root: str | os.PathLike[str] | None = None,
) -> DAG:
    """Import ``path`` in this process and return its DAG ``dag_id``, validated.

    For running tasks and ``tasks test``/``dags test``, which need the live objects (callables,
    operators) rather than the serialized document. ``root`` (the DAGs folder) is put on
    ``sys.path`` and used for ``relative_fileloc``.

    Raises:
        DagFileError: the file failed to import (with path, line and traceback).
        NotFound: the file imported but defines no DAG ``dag_id``.
        DagDefinitionError: the DAG is invalid.
    """
    from tradewind.errors import DagFileError

    absolute = os.path.abspath(os.fspath(path))
    root_str = os.path.abspath(os.fspath(root)) if root is not None else None
    _ensure_on_sys_path(root_str)
    try:
        _, dags = import_dag_file(absolute)
    except Exception as exc:
        info = import_error_from_exception(absolute, exc, root=root_str)
        raise DagFileError(absolute, info.message, info.line, info.traceback) from exc
    for dag in dags:
        if dag.dag_id == dag_id:
            dag.relative_fileloc = _relative_to(absolute, root_str)
            dag.validate()
            return dag
    raise NotFound("DAG", f"{dag_id} (in {absolute})")


# --- errors ----------------------------------------------------------------------------------


def _same_file(a: str | None, b: str) -> bool:
    return a is not None and a != "" and os.path.abspath(a) == b


def _line_from_problems(exc: DagDefinitionError, path: str) -> int | None:
    for problem in exc.problems:
        if not problem.location:
            continue
        file_part, _, line_part = problem.location.rpartition(":")
        if line_part.isdigit() and _same_file(file_part, path):
            return int(line_part)
    return None


def _first_frame_in(tb: TracebackType | None, path: str) -> TracebackType | None:
    while tb is not None:
        if _same_file(tb.tb_frame.f_code.co_filename, path):
            return tb
        tb = tb.tb_next
    return None


def error_line(exc: BaseException, path: str) -> int | None:
    """Where in ``path`` the error is: syntax-error line, a problem location, or deepest frame."""
    if isinstance(exc, SyntaxError) and _same_file(exc.filename, path):
        return exc.lineno
    if isinstance(exc, DagDefinitionError):
        line = _line_from_problems(exc, path)
        if line is not None:
            return line
    found: int | None = None
    tb = exc.__traceback__
    while tb is not None:
        if _same_file(tb.tb_frame.f_code.co_filename, path):
            found = tb.tb_lineno
        tb = tb.tb_next
    return found


def _format_traceback(exc: BaseException, path: str, *, last_line: str | None = None) -> str:
    # Frames above the file's own (importlib, this module) say nothing to the DAG author.
    start = _first_frame_in(exc.__traceback__, path)
    if last_line is not None:
        # A timeout: show where the file was when time ran out, without the timer's own frame.
        frames = [f for f in traceback.extract_tb(start) if f.filename != __file__]
        if not frames:
            return ""
        listing = "".join(traceback.format_list(frames))
        return f"Traceback (most recent call last):\n{listing}{last_line}\n"
    if start is None:
        return "".join(traceback.format_exception_only(type(exc), exc))
    return "".join(traceback.format_exception(type(exc), exc, start))


def import_error_from_exception(
    path: str, exc: BaseException, *, root: str | None = None, timeout: float | None = None
) -> ImportErrorInfo:
    """Describe ``exc``, raised while importing ``path``, as an :class:`ImportErrorInfo`."""
    last_line: str | None = None
    if isinstance(exc, _ParseTimeout):
        message = last_line = timeout_message(timeout or 0)
    elif isinstance(exc, SystemExit):
        message = f"the file called sys.exit({exc.code!r}) while being imported"
    else:
        message = f"{type(exc).__name__}: {exc}"
    return ImportErrorInfo(
        path=path,
        message=message,
        line=error_line(exc, path),
        traceback=_format_traceback(exc, path, last_line=last_line),
        relative_path=_relative_to(path, root),
    )


def timeout_message(timeout: float) -> str:
    """The import-error message of a file that took longer than ``timeout`` seconds."""
    return f"timed out after {timeout:g} s (setting core.dag_file_processor_timeout)"


# --- parsing one file ------------------------------------------------------------------------


@contextlib.contextmanager
def import_time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`_ParseTimeout` in this thread after ``seconds`` (main thread only)."""
    usable = (
        seconds is not None
        and seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise _ParseTimeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))  # type: ignore[arg-type]
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def parse_one_file(
    path: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
) -> FileResult:
    """Import one DAG file in this process and return its serialized DAGs and import errors.

    Never raises for a problem in the file: a failed import, an invalid DAG, a DAG that cannot
    be serialized or two DAGs with the same id each become an :class:`ImportErrorInfo`, and the
    file's other DAGs are still returned. ``root`` is the DAGs folder (for
    ``relative_fileloc``, and put on ``sys.path``). ``timeout`` limits import, validation and
    serialization together (enforced with a timer signal; main thread only).

    Call it in a process of its own: the file's module and everything it imports stay loaded.
    """
    started = time.perf_counter()
    absolute = os.path.abspath(os.fspath(path))
    root_str = os.path.abspath(os.fspath(root)) if root is not None else None
    result = FileResult(path=absolute)
    _ensure_on_sys_path(root_str)
    try:
        with import_time_limit(timeout):
            try:
                _, dags = import_dag_file(absolute)
            except (Exception, SystemExit, _ParseTimeout) as exc:
                result.import_errors.append(
                    import_error_from_exception(absolute, exc, root=root_str, timeout=timeout)
                )
                return result
            _load_dags(result, dags, root_str)
    except _ParseTimeout as exc:
        # Time ran out after the import, while validating or serializing.
        result.import_errors.append(
            import_error_from_exception(absolute, exc, root=root_str, timeout=timeout)
        )
    finally:
        result.duration = time.perf_counter() - started
    return result


def _load_dags(result: FileResult, dags: Sequence[DAG], root: str | None) -> None:
    path = result.path
    relative = _relative_to(path, root)
    seen: set[str] = set()
    for dag in dags:
        if dag.dag_id in seen:
            result.import_errors.append(
                ImportErrorInfo(
                    path=path,
                    message=f"DAG id {dag.dag_id!r} is defined twice in this file",
                    relative_path=relative,
                )
            )
            continue
        seen.add(dag.dag_id)
        dag.relative_fileloc = relative
        try:
            from tradewind.serialization import serialize_dag

            dag.validate()
            document = serialize_dag(dag)
        except Exception as exc:
            result.import_errors.append(import_error_from_exception(path, exc, root=root))
            continue
        result.dags.append(ParsedDag(dag.dag_id, document))


# --- one file in a fresh interpreter ---------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Parse one file and print its :class:`FileResult` as JSON on stdout."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tradewind.dag_processing.parser")
    parser.add_argument("path")
    parser.add_argument("--root", default=None, help="the DAGs folder")
    parser.add_argument("--timeout", type=float, default=None, help="seconds")
    parser.add_argument("--default-timezone", default=None)
    parser.add_argument("--max-map-length", type=int, default=None)
    args = parser.parse_args(argv)
    apply_parse_settings(default_timezone=args.default_timezone, max_map_length=args.max_map_length)
    # Whatever the DAG file prints must not corrupt the JSON on stdout.
    out = sys.stdout
    sys.stdout = sys.stderr
    try:
        result = parse_one_file(args.path, root=args.root, timeout=args.timeout)
    finally:
        sys.stdout = out
    out.write(result.to_json())
    out.write("\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
