"""The state the global options set up for every command: settings and the DAG source.

Settings are loaded on first use, so commands that need none (``version``, ``--help``) never
read the config file or the environment, and a bad setting is reported as a usage error
(exit code 2) naming the key, the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tradewind.cli._output import ExitCode, fail, warn

if TYPE_CHECKING:
    from tradewind.config import Settings
    from tradewind.dag_processing import DagCollection

__all__ = ["CliState", "dag_source_options", "pass_state"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    """Global options and lazily loaded settings, stored as the click context object."""

    dags_folder: Path | None = None
    load_examples: bool | None = None
    _settings: Settings | None = field(default=None, repr=False)
    _collection: DagCollection | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """The settings (loaded once); exits with code 2 on a bad value."""
        if self._settings is None:
            from tradewind.config import load_settings
            from tradewind.errors import ConfigError

            try:
                self._settings = load_settings()
            except ConfigError as exc:
                fail(str(exc), ExitCode.USAGE)
        return self._settings

    def effective_dags_folder(self) -> Path:
        """``--dags-folder`` if given, else ``core.dags_folder``."""
        if self.dags_folder is not None:
            return self.dags_folder
        return Path(self.settings().core.dags_folder)

    def collect(self) -> DagCollection:
        """Parse the DAGs folder (once per command), with a progress bar on a terminal."""
        if self._collection is None:
            from tradewind.cli._output import ParseProgress
            from tradewind.dag_processing import ParseOptions, collect_dags

            settings = self.settings()
            folder = self.effective_dags_folder()
            if not folder.exists():
                if self.dags_folder is None and folder == settings.home / "dags":
                    # A fresh home: make the default folder so the user knows where DAGs go.
                    folder.mkdir(parents=True, exist_ok=True)
                else:
                    warn(f"the DAGs folder {folder} does not exist")
            options = ParseOptions.from_settings(
                settings, dags_folder=folder, include_examples=self.load_examples
            )
            progress = ParseProgress()
            try:
                self._collection = collect_dags(options, progress=progress)
            finally:
                progress.close()
        return self._collection


pass_state = click.make_pass_decorator(CliState, ensure=True)


def _set_folder(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.ensure_object(CliState).dags_folder = value.absolute()


def _set_no_examples(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(CliState).load_examples = False


def dag_source_options(fn: F) -> F:
    """``-S/--subdir/--dags-folder PATH`` and ``--no-examples``, for the group or a command.

    Given on a subcommand (``tradewind dags list -S dags/``, as Airflow users type it) they
    override the same options given before the command.
    """
    fn = click.option(
        "--no-examples",
        is_flag=True,
        default=False,
        expose_value=False,
        callback=_set_no_examples,
        help="Do not load the bundled example DAGs (overrides core.load_examples).",
    )(fn)
    fn = click.option(
        "-S",
        "--dags-folder",
        "--subdir",
        type=click.Path(path_type=Path),
        default=None,
        expose_value=False,
        callback=_set_folder,
        help="Folder (or one file) to read DAGs from (overrides core.dags_folder).",
    )(fn)
    return fn
