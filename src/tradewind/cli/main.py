"""The ``tradewind`` command: a click group whose subcommands are imported on demand.

Each command group lives in its own module and is listed in :data:`COMMANDS` with its one-line
help, so ``tradewind --help`` shows every command without importing any of them (and so without
loading the SDK, the database layer or rich). To add a command group, add a line there.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from tradewind._version import __version__
from tradewind.cli._output import output_option, print_json
from tradewind.cli._state import CliState, dag_source_options

__all__ = ["COMMANDS", "LazyGroup", "cli", "main"]

#: name -> ("module:attribute" of the click command, one-line help shown by ``--help``).
COMMANDS: dict[str, tuple[str, str]] = {
    "api-server": (
        "tradewind.cli.api_server_cmd:api_server",
        "Serve the REST API (uvicorn).",
    ),
    "config": ("tradewind.cli.config_cmd:config", "Show the effective configuration."),
    "connections": (
        "tradewind.cli.connections_cmd:connections",
        "Add, get, list and delete connections.",
    ),
    "db": ("tradewind.cli.db_cmd:db", "Create, upgrade, check, reset and clean the database."),
    "dag-processor": (
        "tradewind.cli.processor_cmd:dag_processor",
        "Parse DAG files into the database, noticing changes within seconds.",
    ),
    "dags": (
        "tradewind.cli.dags:dags",
        "List, show, test, trigger, pause and backfill DAGs.",
    ),
    "pools": ("tradewind.cli.pools_cmd:pools", "Set, get, list and delete pools."),
    "runs": ("tradewind.cli.runs:runs", "List DAG runs."),
    "scheduler": (
        "tradewind.cli.scheduler_cmd:scheduler",
        "Run the scheduler with the local executor.",
    ),
    "standalone": (
        "tradewind.cli.standalone:standalone",
        "Run the DAG processor and the scheduler together on this machine.",
    ),
    "tasks": ("tradewind.cli.tasks:tasks", "List, test, clear, mark and explain tasks."),
    "users": (
        "tradewind.cli.users_cmd:users",
        "Create, list and delete users; reset passwords.",
    ),
    "variables": (
        "tradewind.cli.variables_cmd:variables",
        "Set, get, list, delete, import and export variables.",
    ),
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand runs.

    ``lazy_commands`` maps a name to ``("module:attribute", "short help")``; the short help is
    what the group's ``--help`` lists, so listing commands imports nothing.
    """

    def __init__(
        self, *args: Any, lazy_commands: dict[str, tuple[str, str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = self.lazy_commands.get(cmd_name)
        if target is None:
            return None
        module_name, _, attribute = target[0].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target[0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                command = self.commands[name]
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit=formatter.width)))
            else:
                rows.append((name, self.lazy_commands[name][1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # click's own message for an unknown command lists nothing; suggest close names.
        name = args[0] if args else None
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        return super().resolve_command(ctx, args)


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@dag_source_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Tradewind: a workflow orchestrator for data pipelines (Airflow-compatible).

    Settings come from $TRADEWIND_HOME/tradewind.toml and TRADEWIND__SECTION__KEY environment
    variables; see `tradewind config show`.
    """
    ctx.ensure_object(CliState)


@click.command()
@output_option
def version(output: str) -> None:
    """Show the Tradewind version."""
    if output == "json":
        print_json(
            {
                "version": __version__,
                "python": ".".join(str(p) for p in sys.version_info[:3]),
                "platform": sys.platform,
            }
        )
    else:
        click.echo(__version__)


cli.add_command(version)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``tradewind`` command line (the console-script entry point)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="tradewind")


if __name__ == "__main__":
    main()
