"""What every CLI command shares: exit codes, error exits, JSON and table output, progress.

Conventions every command follows:

* ``--output json`` prints exactly one JSON document on stdout and nothing else; messages,
  warnings and progress always go to stderr.
* Errors leave through :func:`fail`, which prints ``error: <message>`` on stderr and exits with
  a code from :class:`ExitCode`.
* Tables are drawn with rich when stdout is a terminal, and as plain aligned columns (easy to
  ``grep``/``awk``) when it is not. rich is imported only when something is drawn.
"""

from __future__ import annotations

import enum
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = [
    "OUTPUT_FORMATS",
    "ExitCode",
    "ParseProgress",
    "echo_err",
    "fail",
    "output_option",
    "print_json",
    "print_table",
    "warn",
]


class ExitCode(enum.IntEnum):
    """Process exit codes of ``tradewind`` commands."""

    OK = 0
    """The command did what was asked."""
    FAILURE = 1
    """The command ran but the outcome is a failure (e.g. there are import errors)."""
    USAGE = 2
    """Bad input: unknown option or id, a bad argument or a bad setting (click uses 2 as well)."""
    BAD_INPUT = 2
    """Alias of :attr:`USAGE`."""


_REFRESH_SECONDS = 0.1

#: Values of ``--output`` on listing commands.
OUTPUT_FORMATS = ("table", "json")

F = TypeVar("F", bound=Callable[..., Any])


def output_option(fn: F) -> F:
    """The ``-o/--output [table|json]`` option (default ``table``), passed as ``output``."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice(OUTPUT_FORMATS),
        default="table",
        show_default=True,
        help="Output format; json prints only the JSON document on stdout.",
    )(fn)


def echo_err(message: str) -> None:
    """Print a message line on stderr."""
    click.echo(message, err=True)


def warn(message: str) -> None:
    """Print ``warning: <message>`` on stderr."""
    click.echo(f"warning: {message}", err=True)


def fail(message: str, code: ExitCode = ExitCode.FAILURE, *, hint: str | None = None) -> NoReturn:
    """Print ``error: <message>`` (and an optional hint line) on stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)
    raise click.exceptions.Exit(int(code))


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


def print_json(data: Any) -> None:
    """Print ``data`` as one indented JSON document on stdout."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str | None = None,
    empty: str | None = None,
) -> None:
    """Print rows under column headers on stdout (rich in a terminal, plain text otherwise).

    ``empty`` is printed on stderr instead when there are no rows, so a pipe sees no output.
    """
    if not rows and empty is not None:
        echo_err(empty)
        return
    cells = [[_cell(v) for v in row] for row in rows]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, show_lines=False, header_style="bold")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in cells:
            table.add_row(*row)
        Console().print(table)
        return
    # Multi-line cells would break "one row per line" for grep and awk.
    cells = [[c.replace("\n", " ") for c in row] for row in cells]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    click.echo(line(columns))
    click.echo(line(["-" * w for w in widths]))
    for row in cells:
        click.echo(line(row))


class ParseProgress:
    """A progress bar on stderr while DAG files are parsed; silent unless stderr is a terminal.

    Pass the instance as the ``progress`` callback of
    :func:`~tradewind.dag_processing.collect_dags` and call :meth:`close` afterwards. Only
    folders of at least ``threshold`` files show a bar: a handful parse too fast to need one.
    The bar is refreshed by the caller, never by a background thread, because parsing forks
    and a thread holding the terminal's lock at that moment would hang the child.
    """

    def __init__(self, *, threshold: int = 20, enabled: bool | None = None) -> None:
        self.threshold = threshold
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._last_refresh = 0.0

    def __call__(self, done: int, total: int, path: Path) -> None:
        if not self.enabled or total < self.threshold:
            return
        if self._progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("Parsing DAG files"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}", style="dim"),
                console=Console(stderr=True),
                auto_refresh=False,
                transient=True,
                # Parsing processes write to the real stderr; no proxy objects in between.
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=total)
        assert self._task is not None
        self._progress.update(self._task, completed=done, description=path.name)
        # Redrawing for every file would cost more than parsing a small one.
        now = time.monotonic()
        if now - self._last_refresh >= _REFRESH_SECONDS or done == total:
            self._last_refresh = now
            self._progress.refresh()

    def close(self) -> None:
        """Remove the bar (if one was shown)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
