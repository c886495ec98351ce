"""Settings: defaults, file and environment precedence, and every kind of bad value."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tradewind.config import Settings, load_settings, settings_as_dict
from tradewind.errors import ConfigError

FERNET_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()


def write_config(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "tradewind.toml"
    path.write_text(text)
    return path


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_follow_the_home_folder(tmp_path: Path) -> None:
    # given no file and no variables
    settings = load_settings(home=tmp_path, env={})
    # expect every path under home and the documented defaults
    assert settings.home == tmp_path
    assert settings.config_file is None
    assert settings.core.dags_folder == tmp_path / "dags"
    assert settings.database.url == f"sqlite:///{tmp_path / 'tradewind.db'}"
    assert settings.logging.base_log_folder == tmp_path / "logs"
    assert settings.core.load_examples is True
    assert settings.core.default_timezone == "UTC"
    assert settings.core.dag_file_processor_timeout == 30
    assert settings.core.dag_discovery_safe_mode is True
    assert settings.core.max_map_length == 1024
    assert settings.core.parallelism == 32
    assert settings.core.fernet_key is None
    assert settings.core.default_task_retries == 0
    assert settings.core.default_task_retry_delay == 300
    assert settings.core.dag_run_conf_overrides_params is True
    assert settings.core.max_active_tasks_per_dag == 16
    assert settings.core.max_active_runs_per_dag == 16
    assert settings.scheduler.parsing_processes == 2
    assert settings.scheduler.min_file_process_interval == 30
    assert settings.logging.level == "INFO"
    assert (settings.api.host, settings.api.port, settings.api.workers) == ("127.0.0.1", 8080, 1)


def test_home_comes_from_tradewind_home_variable(tmp_path: Path) -> None:
    settings = load_settings(env={"TRADEWIND_HOME": str(tmp_path / "elsewhere")})
    assert settings.home == tmp_path / "elsewhere"
    assert settings.core.dags_folder == tmp_path / "elsewhere" / "dags"


def test_home_defaults_to_tradewind_under_the_user_home(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = load_settings(env={})
    assert settings.home == tmp_path / "tradewind"


def test_settings_built_directly_use_that_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.core.dags_folder == tmp_path / "dags"
    assert settings.api.port == 8080


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, env={})
    with pytest.raises(Exception):
        settings.api.port = 1
    assert settings.api.port == 8080


# --- precedence -------------------------------------------------------------------------------


def test_file_overrides_defaults_and_environment_overrides_file(tmp_path: Path) -> None:
    # given a file setting three keys, and the environment overriding one of them
    path = write_config(
        tmp_path,
        '[core]\nparallelism = 64\nload_examples = false\n[api]\nport = 9090\nhost = "0.0.0.0"\n',
    )
    env = {"TRADEWIND__API__PORT": "9191", "TRADEWIND__LOGGING__LEVEL": "debug"}
    # when
    settings = load_settings(home=tmp_path, env=env)
    # expect
    assert settings.config_file == path
    assert settings.core.parallelism == 64
    assert settings.core.load_examples is False
    assert settings.api.host == "0.0.0.0"
    assert settings.api.port == 9191
    assert settings.logging.level == "DEBUG"


def test_explicit_config_file_replaces_the_one_in_home(tmp_path: Path) -> None:
    write_config(tmp_path, "[api]\nport = 1111\n")
    other = tmp_path / "other.toml"
    other.write_text("[api]\nport = 2222\n")
    settings = load_settings(home=tmp_path, env={}, config_file=other)
    assert settings.api.port == 2222
    assert settings.config_file == other


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path, env={}, config_file=tmp_path / "nope.toml")
    assert info.value.key == "config_file"
    assert "existing TOML file" in str(info.value)


def test_relative_paths_are_relative_to_home(tmp_path: Path) -> None:
    write_config(tmp_path, '[core]\ndags_folder = "pipelines"\n')
    env = {"TRADEWIND__LOGGING__BASE_LOG_FOLDER": "/var/log/tw"}
    settings = load_settings(home=tmp_path, env=env)
    assert settings.core.dags_folder == tmp_path / "pipelines"
    assert settings.logging.base_log_folder == Path("/var/log/tw")


def test_tilde_in_paths_is_expanded(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = load_settings(home=tmp_path, env={"TRADEWIND__CORE__DAGS_FOLDER": "~/d"})
    assert settings.core.dags_folder == tmp_path / "d"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[("true", True), ("TRUE", True), ("1", True), ("Yes", True)],
        *[("false", False), ("False", False), ("0", False), ("no", False), ("NO", False)],
    ],
)
def test_boolean_environment_values(tmp_path: Path, raw: str, expected: bool) -> None:
    settings = load_settings(home=tmp_path, env={"TRADEWIND__CORE__LOAD_EXAMPLES": raw})
    assert settings.core.load_examples is expected


def test_valid_values_of_every_checked_kind(tmp_path: Path) -> None:
    env = {
        "TRADEWIND__CORE__DEFAULT_TIMEZONE": "Europe/Amsterdam",
        "TRADEWIND__CORE__FERNET_KEY": f"{FERNET_KEY},{FERNET_KEY}",
        "TRADEWIND__DATABASE__URL": "postgresql+psycopg://tw:pw@db:5432/tw",
        "TRADEWIND__API__PORT": "65535",
        "TRADEWIND__CORE__DEFAULT_TASK_RETRIES": " 3 ",
    }
    settings = load_settings(home=tmp_path, env=env)
    assert settings.core.default_timezone == "Europe/Amsterdam"
    assert settings.core.fernet_key == f"{FERNET_KEY},{FERNET_KEY}"
    assert settings.database.url.startswith("postgresql+psycopg://")
    assert settings.api.port == 65535
    assert settings.core.default_task_retries == 3


def test_empty_fernet_key_means_none(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, env={"TRADEWIND__CORE__FERNET_KEY": ""})
    assert settings.core.fernet_key is None


def test_unrelated_environment_variables_are_ignored(tmp_path: Path) -> None:
    env = {"TRADEWIND_HOME": str(tmp_path), "TRADEWIND_CONN_X": "sqlite://", "PATH": "/bin"}
    assert load_settings(env=env).api.port == 8080


# --- bad values -------------------------------------------------------------------------------

ENV_ERRORS = [
    ("TRADEWIND__API__PORT", "0", "api.port", "an integer between 1 and 65535"),
    ("TRADEWIND__API__PORT", "70000", "api.port", "an integer between 1 and 65535"),
    ("TRADEWIND__API__PORT", "http", "api.port", "an integer between 1 and 65535"),
    ("TRADEWIND__API__WORKERS", "0", "api.workers", "an integer >= 1"),
    ("TRADEWIND__CORE__PARALLELISM", "true", "core.parallelism", "an integer >= 1"),
    ("TRADEWIND__CORE__PARALLELISM", "2.5", "core.parallelism", "an integer >= 1"),
    ("TRADEWIND__CORE__MAX_MAP_LENGTH", "-1", "core.max_map_length", "an integer >= 1"),
    ("TRADEWIND__CORE__DEFAULT_TASK_RETRIES", "-1", "core.default_task_retries", ">= 0"),
    ("TRADEWIND__CORE__DEFAULT_TASK_RETRY_DELAY", "soon", "core.default_task_retry_delay", ">= 0"),
    ("TRADEWIND__CORE__DAG_FILE_PROCESSOR_TIMEOUT", "0", "core.dag_file_processor_timeout", ">= 1"),
    ("TRADEWIND__CORE__XCOM_MAX_SIZE_BYTES", "big", "core.xcom_max_size_bytes", "an integer"),
    ("TRADEWIND__CORE__MAX_ACTIVE_TASKS_PER_DAG", "0", "core.max_active_tasks_per_dag", ">= 1"),
    ("TRADEWIND__CORE__MAX_ACTIVE_RUNS_PER_DAG", "x", "core.max_active_runs_per_dag", ">= 1"),
    ("TRADEWIND__SCHEDULER__PARSING_PROCESSES", "0", "scheduler.parsing_processes", ">= 1"),
    (
        "TRADEWIND__SCHEDULER__MIN_FILE_PROCESS_INTERVAL",
        "-5",
        "scheduler.min_file_process_interval",
        ">= 0",
    ),
    ("TRADEWIND__CORE__LOAD_EXAMPLES", "maybe", "core.load_examples", "true/false, 1/0 or yes/no"),
    ("TRADEWIND__CORE__DAG_DISCOVERY_SAFE_MODE", "on", "core.dag_discovery_safe_mode", "yes/no"),
    (
        "TRADEWIND__CORE__DAG_RUN_CONF_OVERRIDES_PARAMS",
        "2",
        "core.dag_run_conf_overrides_params",
        "1/0",
    ),
    (
        "TRADEWIND__CORE__DEFAULT_TIMEZONE",
        "Mars/Olympus",
        "core.default_timezone",
        "IANA time zone",
    ),
    ("TRADEWIND__CORE__DEFAULT_TIMEZONE", "", "core.default_timezone", "IANA time zone"),
    (
        "TRADEWIND__LOGGING__LEVEL",
        "LOUD",
        "logging.level",
        "one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
    ),
    ("TRADEWIND__DATABASE__URL", "mysql://db/tw", "database.url", "SQLite or PostgreSQL"),
    ("TRADEWIND__DATABASE__URL", "tradewind.db", "database.url", "SQLite or PostgreSQL"),
    ("TRADEWIND__API__HOST", "", "api.host", "a host name or IP address"),
]


@pytest.mark.parametrize(("var", "raw", "key", "allowed"), ENV_ERRORS)
def test_bad_environment_value_names_key_value_allowed_and_variable(
    tmp_path: Path, var: str, raw: str, key: str, allowed: str
) -> None:
    # given one bad variable, when loading, expect a ConfigError that says it all
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path, env={var: raw})
    error = info.value
    assert error.key == key
    assert error.value == raw
    assert allowed in error.allowed
    assert error.source == f"environment variable {var}"
    message = str(error)
    assert key in message and repr(raw) in message and var in message and allowed in message


def test_bad_file_value_names_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[api]\nport = "eighty"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path, env={})
    assert info.value.key == "api.port"
    assert info.value.value == "eighty"
    assert info.value.allowed == "an integer between 1 and 65535"
    assert info.value.source == f"config file {path}"


def test_toml_native_types_are_checked_too(tmp_path: Path) -> None:
    write_config(tmp_path, "[core]\nparallelism = true\n")
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path, env={})
    assert (info.value.key, info.value.value) == ("core.parallelism", True)


def test_toml_float_for_an_integer_is_rejected(tmp_path: Path) -> None:
    write_config(tmp_path, "[core]\ndag_file_processor_timeout = 30.5\n")
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path, env={})
    assert info.value.key == "core.dag_file_processor_timeout"


def test_unknown_section_in_file(tmp_path: Path) -> None:
    write_config(tmp_path, "[webserver]\nport = 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path, env={})
    assert info.value.key == "webserver"
    assert "core, database, scheduler, logging, api" in info.value.allowed


def test_unknown_key_in_file_lists_the_known_keys(tmp_path: Path) -> None:
    write_config(tmp_path, "[core]\nparalelism = 4\n")
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path, env={})
    assert info.value.key == "core.paralelism"
    assert info.value.value == 4
    assert "parallelism" in info.value.allowed


def test_key_outside_any_section_is_an_unknown_section(tmp_path: Path) -> None:
    write_config(tmp_path, "parallelism = 4\n")
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path, env={})
    assert info.value.key == "parallelism"


def test_unparsable_toml_names_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[core\nparallelism = \n")
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path, env={})
    assert info.value.key == str(path)
    assert "valid TOML" in info.value.allowed


def test_unknown_key_in_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path, env={"TRADEWIND__CORE__PARALELISM": "4"})
    assert info.value.key == "core.paralelism"
    assert info.value.source == "environment variable TRADEWIND__CORE__PARALELISM"


def test_unknown_section_in_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path, env={"TRADEWIND__WEB__PORT": "4"})
    assert info.value.key == "web"


@pytest.mark.parametrize("var", ["TRADEWIND__CORE", "TRADEWIND__CORE__A__B", "TRADEWIND____X"])
def test_malformed_environment_variable_name(tmp_path: Path, var: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path, env={var: "1"})
    assert "TRADEWIND__<SECTION>__<KEY>" in info.value.allowed


def test_bad_fernet_key_is_reported_without_echoing_it(tmp_path: Path) -> None:
    secret = "not-a-real-key-but-still-secret"
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path, env={"TRADEWIND__CORE__FERNET_KEY": secret})
    assert info.value.key == "core.fernet_key"
    assert "Fernet" in info.value.allowed
    assert secret not in str(info.value)


def test_bad_database_url_hides_its_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(home=tmp_path, env={"TRADEWIND__DATABASE__URL": "mysql://u:hunter22@db/x"})
    assert "hunter22" not in str(info.value)
    assert info.value.value == "mysql://u:***@db/x"


# --- settings_as_dict ---------------------------------------------------------------------------


def test_settings_as_dict_redacts_secrets(tmp_path: Path) -> None:
    env = {
        "TRADEWIND__CORE__FERNET_KEY": FERNET_KEY,
        "TRADEWIND__DATABASE__URL": "postgresql+psycopg://tw:p%40ss@db:5432/tw",
    }
    settings = load_settings(home=tmp_path, env=env)
    shown = settings_as_dict(settings)
    assert shown["core"]["fernet_key"] == "***"
    assert shown["database"]["url"] == "postgresql+psycopg://tw:***@db:5432/tw"
    assert shown["core"]["dags_folder"] == str(tmp_path / "dags")
    assert shown["home"] == str(tmp_path)
    assert FERNET_KEY not in repr(settings) and "p%40ss" not in repr(settings)


def test_settings_as_dict_can_show_secrets(tmp_path: Path) -> None:
    env = {"TRADEWIND__CORE__FERNET_KEY": FERNET_KEY}
    shown = settings_as_dict(load_settings(home=tmp_path, env=env), redact=False)
    assert shown["core"]["fernet_key"] == FERNET_KEY


def test_settings_as_dict_has_every_section(tmp_path: Path) -> None:
    shown = settings_as_dict(load_settings(home=tmp_path, env={}))
    assert set(shown) == {"home", "config_file", "core", "database", "scheduler", "logging", "api"}
    assert shown["api"] == {"host": "127.0.0.1", "port": 8080, "workers": 1}
    assert shown["core"]["fernet_key"] is None


def test_loading_reads_nothing_at_import() -> None:
    # the module must not build settings by itself: no module-level Settings instance
    import tradewind.config as config

    assert not any(isinstance(v, Settings) for v in vars(config).values())
