"""Finding DAG files: which ``.py`` files under a folder DAG processing should import.

Rules, in the order they are applied while walking the folder:

* Folders named ``__pycache__`` and hidden entries (names starting with ``.``) are skipped.
* ``.tradewindignore`` files hold gitignore-style patterns (read with ``pathspec``). A file's
  patterns apply to the folder it sits in and everything below, matched against paths relative
  to that folder, so ``tmp/`` in ``dags/team_a/.tradewindignore`` skips ``dags/team_a/tmp`` and
  ``dags/team_a/x/tmp`` but not ``dags/tmp``. Deeper files are read after shallower ones, and as
  in git a later ``!pattern`` can bring back what an earlier pattern excluded.
  ``.airflowignore`` files are read the same way, so a folder moved over from Airflow keeps
  its exclusions.
* Only regular files ending in ``.py`` are candidates.
* In safe mode, a candidate whose bytes never mention ``dag`` (in any case) is skipped without
  being imported: a helper module with no DAG in it costs one read instead of one import.

Example::

    >>> find_dag_files("/srv/dags")
    [PosixPath('/srv/dags/etl.py'), PosixPath('/srv/dags/team_a/report.py')]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pathspec

__all__ = ["IGNORE_FILE_NAMES", "find_dag_files", "is_ignored", "might_contain_dag"]

#: Ignore files read in every folder, in this order (Tradewind's own first).
IGNORE_FILE_NAMES: tuple[str, ...] = (".tradewindignore", ".airflowignore")

_SKIPPED_DIRS = frozenset({"__pycache__"})
_SAFE_MODE_MARKER = b"dag"
# Files are read in chunks so a huge generated file is never held in memory at once; the
# overlap keeps a marker split across two chunks from being missed.
_CHUNK = 1 << 16


class _Scope:
    """The patterns of one ignore file and the folder they are relative to."""

    __slots__ = ("base", "spec")

    def __init__(self, base: str, spec: pathspec.PathSpec) -> None:
        self.base = base
        self.spec = spec

    def verdict(self, path: str, is_dir: bool) -> bool | None:
        """True: excluded; False: re-included by a ``!`` pattern; None: no pattern matched."""
        rel = os.path.relpath(path, self.base).replace(os.sep, "/")
        if is_dir:
            rel += "/"
        return self.spec.check_file(rel).include


def _read_scopes(folder: str, names: Iterable[str]) -> list[_Scope]:
    present = set(names)
    scopes: list[_Scope] = []
    for ignore_name in IGNORE_FILE_NAMES:
        if ignore_name not in present:
            continue
        try:
            with open(os.path.join(folder, ignore_name), encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue
        import pathspec

        spec = pathspec.GitIgnoreSpec.from_lines(lines)
        if len(spec):
            scopes.append(_Scope(folder, spec))
    return scopes


def _excluded(path: str, is_dir: bool, scopes: Sequence[_Scope]) -> bool:
    excluded = False
    for scope in scopes:
        verdict = scope.verdict(path, is_dir)
        if verdict is not None:
            excluded = verdict
    return excluded


def might_contain_dag(path: str | os.PathLike[str]) -> bool:
    """Whether the file's bytes mention ``dag`` in any case (the safe-mode test).

    Unreadable files count as possible DAG files, so importing them reports the real error.
    """
    tail = b""
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                if _SAFE_MODE_MARKER in (tail + chunk).lower():
                    return True
                tail = chunk[-(len(_SAFE_MODE_MARKER) - 1) :]
    except OSError:
        return True
    return False


def find_dag_files(
    folder: str | os.PathLike[str],
    *,
    safe_mode: bool = True,
) -> list[Path]:
    """Every DAG-file candidate under ``folder``, recursively, as absolute sorted paths.

    ``folder`` may also be a single ``.py`` file, which is returned as is (ignore files and
    safe mode do not apply: the user named it). A missing folder gives an empty list.
    See the module docstring for the ignore-file and safe-mode rules.
    """
    root = os.path.abspath(os.fspath(folder))
    if os.path.isfile(root):
        return [Path(root)] if root.endswith(".py") else []
    if not os.path.isdir(root):
        return []

    found: list[str] = []
    # Symlinked folders are followed (teams often link shared DAG folders in); remembering real
    # paths keeps a link pointing upwards from looping forever.
    seen_dirs: set[str] = set()
    stack: list[tuple[str, list[_Scope]]] = [(root, [])]
    while stack:
        current, inherited = stack.pop()
        real = os.path.realpath(current)
        if real in seen_dirs:
            continue
        seen_dirs.add(real)
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        # Sorted, and folders pushed in reverse, so the walk is depth-first in name order: a
        # folder reachable twice through a symlink is always listed under the same path.
        entries.sort(key=lambda e: e.name)
        scopes = inherited + _read_scopes(current, (e.name for e in entries))
        subdirs: list[str] = []
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name in _SKIPPED_DIRS:
                continue
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError:
                continue
            if is_dir:
                if not _excluded(entry.path, True, scopes):
                    subdirs.append(entry.path)
            elif is_file and name.endswith(".py"):
                if _excluded(entry.path, False, scopes):
                    continue
                if safe_mode and not might_contain_dag(entry.path):
                    continue
                found.append(entry.path)
        stack.extend((d, scopes) for d in reversed(subdirs))
    return [Path(p) for p in sorted(found)]


def is_ignored(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Whether the ignore files between ``folder`` and ``path`` exclude ``path``.

    Checks the file and each folder on the way down, as :func:`find_dag_files` would; for a
    single path when walking the whole tree is not wanted (e.g. a file-change notification).
    """
    root = os.path.abspath(os.fspath(folder))
    target = os.path.abspath(os.fspath(path))
    rel_parts = Path(os.path.relpath(target, root)).parts
    if rel_parts and rel_parts[0] == os.pardir:
        return False
    scopes: list[_Scope] = []
    current = root
    for i, part in enumerate(rel_parts):
        try:
            names = os.listdir(current)
        except OSError:
            names = []
        scopes = scopes + _read_scopes(current, names)
        current = os.path.join(current, part)
        is_dir = i < len(rel_parts) - 1 or os.path.isdir(current)
        if part.startswith(".") or part in _SKIPPED_DIRS or _excluded(current, is_dir, scopes):
            return True
    return False
