"""Typed Tradewind settings, built explicitly from ``tradewind.toml`` and the environment.

Nothing here runs at import time: callers build a :class:`Settings` object with
:func:`load_settings` and pass it on. Sources, lowest precedence first:

1. built-in defaults (paths default to places under ``$TRADEWIND_HOME``, default ``~/tradewind``);
2. the TOML file ``$TRADEWIND_HOME/tradewind.toml`` (or an explicit ``config_file``), one table
   per section::

       [core]
       parallelism = 64
       default_timezone = "Europe/Amsterdam"

       [api]
       port = 9090

3. environment variables ``TRADEWIND__<SECTION>__<KEY>``, e.g. ``TRADEWIND__API__PORT=9090``.

Unknown sections or keys (in the file or in ``TRADEWIND__…`` variables) and bad values raise
:class:`tradewind.errors.ConfigError` naming the key, the raw value, what is allowed and, for
environment variables, the variable's name. Relative paths are taken relative to
``$TRADEWIND_HOME`` so a config file means the same thing from any working directory.

pydantic is imported here, and ``import tradewind`` does not load this module.
"""

from __future__ import annotations

import base64
import binascii
import os
import tomllib
import zoneinfo
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from tradewind.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "ApiSettings",
    "CoreSettings",
    "DatabaseSettings",
    "LoggingSettings",
    "SchedulerSettings",
    "Settings",
    "default_home",
    "load_settings",
    "settings_as_dict",
]

#: Prefix of the environment variables that set one key: ``TRADEWIND__SECTION__KEY``.
ENV_PREFIX = "TRADEWIND__"
#: Name of the settings file inside ``$TRADEWIND_HOME``.
CONFIG_FILE_NAME = "tradewind.toml"

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_REDACTED = "***"


# --- value parsers ----------------------------------------------------------------------------
# Each raises ValueError; the loader turns that into a ConfigError using the field's "allowed"
# text, so the wording users see lives next to the field, not in pydantic's messages.


def _parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError("not a boolean")


def _parse_int(value: object) -> int:
    # pydantic's lax mode would take True as 1 and 30.0 as 30; a setting that says
    # "parallelism = true" is a mistake worth reporting.
    if isinstance(value, bool):
        raise ValueError("not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            pass
    raise ValueError("not an integer")


def _parse_str(value: object) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("not a string")


def _parse_optional_str(value: object) -> str | None:
    if value is None:
        return None
    text = _parse_str(value).strip()
    return text or None


def _parse_path(value: object) -> Path:
    if isinstance(value, Path):
        return value
    if isinstance(value, str) and value.strip():
        return Path(os.path.expandvars(value.strip())).expanduser()
    raise ValueError("not a path")


def _parse_timezone(value: object) -> str:
    name = _parse_str(value).strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}")
    return name


def _parse_log_level(value: object) -> str:
    level = _parse_str(value).strip().upper()
    if level not in _LOG_LEVELS:
        raise ValueError("unknown level")
    return level


def _parse_fernet_key(value: object) -> str | None:
    text = _parse_optional_str(value)
    if text is None:
        return None
    # Several comma-separated keys allow key rotation: the first encrypts, all decrypt.
    for key in text.split(","):
        try:
            raw = base64.urlsafe_b64decode(key.strip().encode("ascii"))
        except (binascii.Error, UnicodeEncodeError):
            raise ValueError("not base64")
        if len(raw) != 32:
            raise ValueError("wrong length")
    return text


def _parse_database_url(value: object) -> str:
    url = _parse_str(value).strip()
    scheme, sep, _rest = url.partition("://")
    dialect = scheme.split("+", 1)[0].lower()
    if not sep or dialect not in ("sqlite", "postgresql"):
        raise ValueError("unsupported database URL")
    return url


Bool = Annotated[bool, BeforeValidator(_parse_bool)]
Int = Annotated[int, BeforeValidator(_parse_int)]
Str = Annotated[str, BeforeValidator(_parse_str)]
PathValue = Annotated[Path, BeforeValidator(_parse_path)]


def _allowed(text: str, *, secret: str | None = None) -> dict[str, Any]:
    """Field metadata: the "what is allowed" text of errors, and how to redact the value."""
    extra: dict[str, Any] = {"allowed": text}
    if secret:
        extra["secret"] = secret
    return extra


_POSITIVE = "an integer >= 1"
_NON_NEGATIVE = "an integer >= 0"
_BOOL = "a boolean: true/false, 1/0 or yes/no"
_PATH = "a non-empty filesystem path"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Settings get logged and printed in tracebacks; keep secrets out of their repr.
        for key, value in super().__repr_args__():
            yield key, _redact_field(type(self), key, value) if key else value


class CoreSettings(_Section):
    """``[core]``: DAG discovery, defaults for tasks and DAGs, global limits."""

    dags_folder: PathValue = Field(json_schema_extra=_allowed(_PATH))
    """Folder scanned for DAG files (default ``$TRADEWIND_HOME/dags``)."""
    load_examples: Bool = Field(True, json_schema_extra=_allowed(_BOOL))
    """Whether the bundled example DAGs are loaded."""
    default_timezone: Annotated[str, BeforeValidator(_parse_timezone)] = Field(
        "UTC", json_schema_extra=_allowed("an IANA time zone name such as UTC or Europe/Amsterdam")
    )
    """Time zone given to naive datetimes in DAG files."""
    dag_file_processor_timeout: Int = Field(
        30, ge=1, json_schema_extra=_allowed(f"{_POSITIVE} (seconds)")
    )
    """Seconds one DAG file may take to import before it is reported as an import error."""
    dag_discovery_safe_mode: Bool = Field(True, json_schema_extra=_allowed(_BOOL))
    """Skip Python files that never mention "dag" (case-insensitive) without importing them."""
    max_map_length: Int = Field(1024, ge=1, json_schema_extra=_allowed(_POSITIVE))
    """Most mapped task instances one ``expand`` may create."""
    parallelism: Int = Field(32, ge=1, json_schema_extra=_allowed(_POSITIVE))
    """Most task instances running at once across the installation."""
    xcom_max_size_bytes: Int = Field(
        1_048_576, ge=1, json_schema_extra=_allowed(f"{_POSITIVE} (bytes)")
    )
    """Largest serialized XCom value kept in the metadata database."""
    fernet_key: Annotated[str | None, BeforeValidator(_parse_fernet_key)] = Field(
        None,
        json_schema_extra=_allowed(
            "empty, or one or more comma-separated Fernet keys (32 bytes, url-safe base64-encoded)",
            secret="value",
        ),
    )
    """Key(s) encrypting connection passwords and variables at rest; None stores them plain."""
    default_task_retries: Int = Field(0, ge=0, json_schema_extra=_allowed(_NON_NEGATIVE))
    """``retries`` of tasks that set none."""
    default_task_retry_delay: Int = Field(
        300, ge=0, json_schema_extra=_allowed(f"{_NON_NEGATIVE} (seconds)")
    )
    """``retry_delay`` in seconds of tasks that set none."""
    dag_run_conf_overrides_params: Bool = Field(True, json_schema_extra=_allowed(_BOOL))
    """Whether ``dag_run.conf`` values override ``params`` of the same name."""
    max_active_tasks_per_dag: Int = Field(16, ge=1, json_schema_extra=_allowed(_POSITIVE))
    """``max_active_tasks`` of DAGs that set none."""
    max_active_runs_per_dag: Int = Field(16, ge=1, json_schema_extra=_allowed(_POSITIVE))
    """``max_active_runs`` of DAGs that set none."""


class DatabaseSettings(_Section):
    """``[database]``: the metadata database."""

    url: Annotated[str, BeforeValidator(_parse_database_url)] = Field(
        json_schema_extra=_allowed(
            "a SQLAlchemy URL for SQLite or PostgreSQL, "
            "e.g. sqlite:////path/to/tradewind.db or postgresql+psycopg://user:pw@host/db",
            secret="url_password",
        )
    )
    """SQLAlchemy URL (default ``sqlite:///$TRADEWIND_HOME/tradewind.db``)."""


class SchedulerSettings(_Section):
    """``[scheduler]``: DAG parsing and scheduling loop."""

    parsing_processes: Int = Field(2, ge=1, json_schema_extra=_allowed(_POSITIVE))
    """Worker processes that parse DAG files."""
    min_file_process_interval: Int = Field(
        30, ge=0, json_schema_extra=_allowed(f"{_NON_NEGATIVE} (seconds)")
    )
    """Seconds before an unchanged DAG file is parsed again."""
    scheduler_health_check_threshold: Int = Field(
        30, ge=1, json_schema_extra=_allowed(f"{_POSITIVE} (seconds)")
    )
    """Seconds without a heartbeat after which a scheduler counts as dead, and another one
    takes over its running DAG runs."""
    task_stop_grace: Int = Field(20, ge=0, json_schema_extra=_allowed(f"{_NON_NEGATIVE} (seconds)"))
    """When the scheduler is asked to stop, seconds it lets running tries finish before it
    stops them (tries that have not started are handed back at once). Keep it, plus the 5 s
    kill grace, under ``scheduler_health_check_threshold``."""


class LoggingSettings(_Section):
    """``[logging]``: where task and component logs go, and how much is logged."""

    base_log_folder: PathValue = Field(json_schema_extra=_allowed(_PATH))
    """Folder for task logs (default ``$TRADEWIND_HOME/logs``)."""
    level: Annotated[str, BeforeValidator(_parse_log_level)] = Field(
        "INFO", json_schema_extra=_allowed(f"one of {', '.join(_LOG_LEVELS)}")
    )
    """Log level name; stored upper-case."""


class ApiSettings(_Section):
    """``[api]``: the API and web UI server."""

    host: Str = Field(
        "127.0.0.1", min_length=1, json_schema_extra=_allowed("a host name or IP address")
    )
    """Address the server binds to."""
    port: Int = Field(
        8080, ge=1, le=65535, json_schema_extra=_allowed("an integer between 1 and 65535")
    )
    """TCP port the server listens on."""
    workers: Int = Field(1, ge=1, json_schema_extra=_allowed(_POSITIVE))
    """Server worker processes."""


_SECTIONS: dict[str, type[_Section]] = {
    "core": CoreSettings,
    "database": DatabaseSettings,
    "scheduler": SchedulerSettings,
    "logging": LoggingSettings,
    "api": ApiSettings,
}


class Settings(BaseModel):
    """All Tradewind settings: one attribute per section plus ``home``.

    Build it with :func:`load_settings`; constructing it directly (``Settings(home=path)``)
    gives the defaults for that home, which is handy in tests.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path
    """``$TRADEWIND_HOME``: the folder holding the config file, SQLite DB, DAGs and logs."""
    config_file: Path | None = None
    """The TOML file that was read, or None when there was none."""
    core: CoreSettings
    database: DatabaseSettings
    scheduler: SchedulerSettings
    logging: LoggingSettings
    api: ApiSettings

    def __init__(self, **data: Any) -> None:
        home = Path(data.get("home") or default_home()).expanduser()
        data["home"] = home
        # Home-relative defaults are filled in here rather than as field defaults, so a
        # Settings built for another home never points into ~/tradewind.
        for name in _SECTIONS:
            given = data.get(name)
            if given is None or isinstance(given, Mapping):
                data[name] = dict(given or {})
        for (section, key), value in _home_defaults(home).items():
            if isinstance(data[section], dict):
                data[section].setdefault(key, value)
        super().__init__(**data)


def _home_defaults(home: Path) -> dict[tuple[str, str], Any]:
    return {
        ("core", "dags_folder"): home / "dags",
        ("database", "url"): f"sqlite:///{home / 'tradewind.db'}",
        ("logging", "base_log_folder"): home / "logs",
    }


def default_home(env: Mapping[str, str] | None = None) -> Path:
    """``$TRADEWIND_HOME`` from ``env`` (default ``os.environ``), else ``~/tradewind``."""
    environ = os.environ if env is None else env
    raw = environ.get("TRADEWIND_HOME", "").strip()
    return Path(raw).expanduser() if raw else Path("~/tradewind").expanduser()


def load_settings(
    home: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> Settings:
    """Build the settings from defaults, the TOML file and ``TRADEWIND__…`` variables.

    ``home`` defaults to ``$TRADEWIND_HOME`` (from ``env``) or ``~/tradewind``; ``env``
    defaults to ``os.environ`` (tests pass a dict); ``config_file`` defaults to
    ``<home>/tradewind.toml``, which may be absent, while an explicit file must exist.

    Raises :class:`ConfigError` for an unreadable file, an unknown section or key, or a bad
    value, naming the key, the raw value, what is allowed and where the value came from.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    home_path = Path(home).expanduser() if home is not None else default_home(environ)
    home_path = home_path.absolute()

    values: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    sources: dict[tuple[str, str], str] = {}

    file_path: Path | None
    if config_file is not None:
        file_path = Path(config_file).expanduser()
        if not file_path.is_file():
            raise ConfigError("config_file", str(file_path), "an existing TOML file")
    else:
        file_path = home_path / CONFIG_FILE_NAME
        if not file_path.is_file():
            file_path = None
    if file_path is not None:
        _merge_file(file_path, values, sources)
    _merge_env(environ, values, sources)

    for section, key in sources:
        if _is_path_field(section, key):
            values[section][key] = _anchor_path(home_path, values[section][key])
    try:
        return Settings(home=home_path, config_file=file_path, **values)
    except ValidationError as exc:
        raise _to_config_error(exc, values, sources) from None


def _merge_file(
    path: Path, values: dict[str, dict[str, Any]], sources: dict[tuple[str, str], str]
) -> None:
    try:
        with path.open("rb") as fh:
            document = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "<unparsable>", f"valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(str(path), "<unreadable>", f"a readable file ({exc})") from None
    where = f"config file {path}"
    for section, table in document.items():
        if section not in _SECTIONS:
            raise ConfigError(section, table, _sections_allowed(), source=where)
        if not isinstance(table, dict):
            raise ConfigError(section, table, f"a table: [{section}] with keys", source=where)
        for key, value in table.items():
            _check_key(section, key, value, where)
            values[section][key] = value
            sources[(section, key)] = where


def _merge_env(
    environ: Mapping[str, str],
    values: dict[str, dict[str, Any]],
    sources: dict[tuple[str, str], str],
) -> None:
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        value = environ[name]
        where = f"environment variable {name}"
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(
                name, value, "a variable named TRADEWIND__<SECTION>__<KEY>", source=where
            )
        section, key = parts
        if section not in _SECTIONS:
            raise ConfigError(section, value, _sections_allowed(), source=where)
        _check_key(section, key, value, where)
        values[section][key] = value
        sources[(section, key)] = where


def _sections_allowed() -> str:
    return f"a known section: one of {', '.join(_SECTIONS)}"


def _check_key(section: str, key: str, value: object, where: str) -> None:
    fields = _SECTIONS[section].model_fields
    if key not in fields:
        raise ConfigError(
            f"{section}.{key}",
            value,
            f"a known key of [{section}]: one of {', '.join(fields)}",
            source=where,
        )


def _is_path_field(section: str, key: str) -> bool:
    return _SECTIONS[section].model_fields[key].annotation is Path


def _anchor_path(home: Path, raw: object) -> object:
    try:
        path = _parse_path(raw)
    except ValueError:
        return raw  # left for validation to report with the field's wording
    return path if path.is_absolute() else home / path


def _to_config_error(
    exc: ValidationError,
    values: dict[str, dict[str, Any]],
    sources: dict[tuple[str, str], str],
) -> ConfigError:
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    # A section model failing inside Settings reports loc (section, key, ...).
    section, key = [*loc, "", ""][:2]
    if section in _SECTIONS and key in _SECTIONS[section].model_fields:
        field = _SECTIONS[section].model_fields[key]
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        allowed = str(extra.get("allowed", first["msg"]))
        raw = values.get(section, {}).get(key, first.get("input"))
        # Error messages end up in logs and terminals: never echo a secret back.
        raw = _redact_field(_SECTIONS[section], key, raw)
        return ConfigError(f"{section}.{key}", raw, allowed, source=sources.get((section, key)))
    return ConfigError(".".join(loc) or "settings", first.get("input"), first["msg"])


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{_REDACTED}@{hostinfo}"))


def _redact_field(model: type[_Section], key: str, value: Any) -> Any:
    field = model.model_fields.get(key)
    extra = field.json_schema_extra if field and isinstance(field.json_schema_extra, dict) else {}
    secret = extra.get("secret")
    if value is None or not secret:
        return value
    if secret == "url_password":
        return _redact_url(str(value))
    return _REDACTED


def settings_as_dict(settings: Settings, *, redact: bool = True) -> dict[str, Any]:
    """The settings as plain JSON-ready data (paths as strings), for ``config show``.

    With ``redact`` (the default) secrets are replaced by ``***``: the Fernet key, and the
    password inside the database URL.
    """
    out: dict[str, Any] = {
        "home": str(settings.home),
        "config_file": str(settings.config_file) if settings.config_file else None,
    }
    for name, model in _SECTIONS.items():
        section: _Section = getattr(settings, name)
        data: dict[str, Any] = {}
        for key in model.model_fields:
            value = getattr(section, key)
            if isinstance(value, Path):
                value = str(value)
            data[key] = _redact_field(model, key, value) if redact else value
        out[name] = data
    return out
