"""``tradewind config``: the effective settings (secrets redacted)."""

from __future__ import annotations

import json
from typing import Any

import click

from tradewind.cli._output import ExitCode, fail, output_option, print_json
from tradewind.cli._state import CliState, pass_state

__all__ = ["config"]


@click.group()
def config() -> None:
    """Show the effective configuration."""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    # JSON string escaping is valid TOML basic-string escaping.
    return json.dumps(str(value), ensure_ascii=False)


def _as_toml(data: dict[str, Any]) -> str:
    lines = [f"# home: {data['home']}", f"# config file: {data['config_file'] or '(none)'}"]
    for section, values in data.items():
        if not isinstance(values, dict):
            continue
        lines += ["", f"[{section}]"]
        for key, value in values.items():
            # TOML has no null: an unset optional value is shown commented out.
            lines.append(f"# {key} =" if value is None else f"{key} = {_toml_value(value)}")
    return "\n".join(lines)


@config.command("show")
@click.option("--section", default=None, help="Show only this section, e.g. core.")
@output_option
@pass_state
def show(state: CliState, section: str | None, output: str) -> None:
    """Show every setting with its effective value, as TOML (or JSON).

    Values come from the defaults, $TRADEWIND_HOME/tradewind.toml and TRADEWIND__SECTION__KEY
    environment variables. Secrets (the Fernet key, database passwords) are shown as ***.
    """
    from tradewind.config import settings_as_dict

    data = settings_as_dict(state.settings(), redact=True)
    if section is not None:
        sections = [k for k, v in data.items() if isinstance(v, dict)]
        if section not in sections:
            fail(f"unknown section {section!r}; sections: {', '.join(sections)}", ExitCode.USAGE)
        data = {"home": data["home"], "config_file": data["config_file"], section: data[section]}
    if output == "json":
        print_json(data)
    else:
        click.echo(_as_toml(data))


@config.command("get-value")
@click.argument("section")
@click.argument("key")
@pass_state
def get_value(state: CliState, section: str, key: str) -> None:
    """Print the effective value of one setting (secrets redacted), e.g. `core dags_folder`."""
    from tradewind.config import settings_as_dict

    data = settings_as_dict(state.settings(), redact=True)
    values = data.get(section)
    if not isinstance(values, dict):
        sections = [k for k, v in data.items() if isinstance(v, dict)]
        fail(f"unknown section {section!r}; sections: {', '.join(sections)}", ExitCode.USAGE)
    if key not in values:
        fail(
            f"unknown key {key!r} in [{section}]; keys: {', '.join(values)}",
            ExitCode.USAGE,
        )
    value = values[key]
    if value is None:
        click.echo("")
    elif isinstance(value, str):
        click.echo(value)
    else:
        click.echo(_toml_value(value))
