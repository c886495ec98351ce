"""Connections (URI format), the secrets lookup chain, variables and secret masking."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tradewind.errors import ConnectionNotFound, TradewindError, VariableNotFound
from tradewind.sdk import secrets
from tradewind.sdk.connection import Connection, is_sensitive_key
from tradewind.sdk.variable import Variable


@pytest.fixture(autouse=True)
def clean_secrets(monkeypatch) -> Iterator[None]:
    # Given a process with no connection/variable variables and no masks or backends.
    import os

    for name in list(os.environ):
        if name.startswith(("TRADEWIND_CONN_", "TRADEWIND_VAR_", "AIRFLOW_CONN_", "AIRFLOW_VAR_")):
            monkeypatch.delenv(name)
    secrets.clear_masked_secrets()
    before = secrets.registered_backends()
    yield
    for backend in secrets.registered_backends():
        if backend not in before:
            secrets.unregister_backend(backend)
    secrets.clear_masked_secrets()


# --- parsing URIs -------------------------------------------------------------------------------


def test_from_uri_reads_every_part() -> None:
    conn = Connection.from_uri("pg", "postgres://etl:s3cret@db.example.com:5433/sales")
    assert conn.conn_id == "pg"
    assert conn.conn_type == "postgres"
    assert conn.host == "db.example.com"
    assert conn.port == 5433
    assert conn.login == "etl"
    assert conn.password == "s3cret"
    assert conn.schema == "sales"
    assert conn.extra_dejson == {}


def test_from_uri_percent_decodes_every_part() -> None:
    uri = "postgres://us%40er:p%40ss%3Aw%2Fo%23rd%20x@h%2Fost/my%20db"
    conn = Connection.from_uri("x", uri)
    assert conn.login == "us@er"
    assert conn.password == "p@ss:w/o#rd x"
    assert conn.host == "h/ost"
    assert conn.schema == "my db"


def test_postgresql_scheme_means_postgres() -> None:
    assert Connection.from_uri("x", "postgresql://h").conn_type == "postgres"


def test_dashes_in_scheme_become_underscores() -> None:
    conn = Connection.from_uri("x", "google-cloud-platform://")
    assert conn.conn_type == "google_cloud_platform"
    assert conn.get_uri().startswith("google-cloud-platform://")


def test_query_parameters_become_extra() -> None:
    conn = Connection.from_uri("x", "postgres://h/db?sslmode=require&application_name=tw%20job")
    assert conn.extra_dejson == {"sslmode": "require", "application_name": "tw job"}


def test_extra_parameter_holds_json() -> None:
    extra = {"retries": 3, "nested": {"a": [1, 2]}, "flag": True}
    uri = "http://h/?__extra__=" + json.dumps(extra).replace(" ", "%20")
    conn = Connection.from_uri("x", uri)
    assert conn.extra_dejson == extra


def test_host_with_its_own_protocol() -> None:
    conn = Connection.from_uri("x", "http://https://user:pw@example.com:8443/api")
    assert conn.conn_type == "http"
    assert conn.host == "https://example.com"
    assert (conn.login, conn.password, conn.port, conn.schema) == ("user", "pw", 8443, "api")
    assert Connection.from_uri("x", conn.get_uri()).to_dict() == conn.to_dict()


def test_sqlite_absolute_path_uri() -> None:
    conn = Connection.from_uri("x", "sqlite:////var/data/app.db")
    assert conn.conn_type == "sqlite"
    assert conn.host is None
    assert conn.schema == "/var/data/app.db"


def test_ipv6_host() -> None:
    conn = Connection.from_uri("x", "postgres://u:p@[::1]:5432/db")
    assert conn.host == "[::1]"
    assert conn.port == 5432
    assert Connection.from_uri("x", conn.get_uri()).to_dict() == conn.to_dict()


def test_host_case_is_kept() -> None:
    assert Connection.from_uri("x", "http://MyHost.Example").host == "MyHost.Example"


@pytest.mark.parametrize("uri", ["no-scheme-here", "://h", "postgres://h:port/db", "pg://h:0"])
def test_bad_uris_are_rejected_with_the_conn_id(uri: str) -> None:
    with pytest.raises(TradewindError, match="'bad'"):
        Connection.from_uri("bad", uri)


# --- round trips --------------------------------------------------------------------------------

ROUND_TRIPS = [
    Connection("a", "postgres", "db", "sales", "etl", "pw", 5432),
    Connection("b", "postgres", "db", None, "u:s@r/x", "p@ss:/?#[]%&=+ word", 1),
    Connection("c", "http", "https://api.example.com", "v1", None, None, 443),
    Connection("d", "sqlite", None, "/abs/path with space/x.db"),
    Connection("e", "generic_type", None, None, None, None, 8080),
    Connection("f", "postgres", "h", "db", extra={"sslmode": "require", "x y": "a&b=c"}),
    Connection("g", "http", "h", extra={"timeout": 3, "verify": False, "headers": {"a": "b"}}),
    Connection("h", "fs", extra=json.dumps({"path": "/data"})),
    Connection("i", "ssh", "h", login="ünïcødé", password="пароль"),
    Connection("j", "aws", extra={"__extra__": "sneaky"}),
]


@pytest.mark.parametrize("conn", ROUND_TRIPS, ids=lambda c: c.conn_id)
def test_get_uri_round_trips(conn: Connection) -> None:
    # given a connection, when written as a URI and read back, expect the same fields
    again = Connection.from_uri(conn.conn_id, conn.get_uri())
    assert again.to_dict() == conn.to_dict()


def test_get_uri_shape() -> None:
    conn = Connection("x", "postgres", "db", "sales", "etl", "p@ss", 5432, {"sslmode": "require"})
    assert conn.get_uri() == "postgres://etl:p%40ss@db:5432/sales?sslmode=require"


def test_get_uri_of_port_without_host() -> None:
    assert Connection("x", "t", port=99).get_uri() == "t://@:99"


def test_non_string_extra_goes_through_extra_json() -> None:
    uri = Connection("x", "http", "h", extra={"timeout": 3}).get_uri()
    assert "__extra__=" in uri


# --- extras, repr, dicts --------------------------------------------------------------------------


def test_extra_may_be_a_json_string_or_a_dict() -> None:
    assert Connection("x", extra='{"a": 1}').extra_dejson == {"a": 1}
    assert Connection("x", extra={"a": 1}).extra_dejson == {"a": 1}
    assert Connection("x").extra_dejson == {}
    assert Connection("x", extra={"a": 1}).get_extra() == '{"a": 1}'


@pytest.mark.parametrize("extra", ["{not json", "[1, 2]"])
def test_bad_extra_names_the_connection(extra: str) -> None:
    with pytest.raises(TradewindError, match="connection 'broken': extra"):
        Connection("broken", extra=extra).extra_dejson


def test_repr_never_shows_the_password() -> None:
    conn = Connection(
        "x", "postgres", "db", login="etl", password="hunter22", extra={"token": "t0k3n"}
    )
    text = repr(conn)
    assert "hunter22" not in text and "t0k3n" not in text and "hunter22" not in str(conn)
    assert "password='***'" in text
    assert "login='etl'" in text


def test_to_dict_has_every_field_and_can_redact() -> None:
    conn = Connection("x", "postgres", "db", "s", "u", "pw", 1, {"api_key": "k", "region": "eu"})
    assert conn.to_dict() == {
        "conn_id": "x",
        "conn_type": "postgres",
        "description": None,
        "host": "db",
        "schema": "s",
        "login": "u",
        "password": "pw",
        "port": 1,
        "extra": {"api_key": "k", "region": "eu"},
    }
    redacted = conn.to_dict(redact=True)
    assert redacted["password"] == "***"
    assert redacted["extra"] == {"api_key": "***", "region": "eu"}


def test_port_given_as_text_is_converted() -> None:
    assert Connection("x", port="5432").port == 5432  # type: ignore[arg-type]
    with pytest.raises(TradewindError, match="port"):
        Connection("x", port="fifty")  # type: ignore[arg-type]


def test_from_json() -> None:
    conn = Connection.from_json(
        "x", '{"conn_type": "postgresql", "host": "h", "port": "5432", "extra": {"a": "b"}}'
    )
    assert (conn.conn_type, conn.host, conn.port, conn.extra_dejson) == (
        "postgres",
        "h",
        5432,
        {"a": "b"},
    )
    with pytest.raises(TradewindError, match="unknown field"):
        Connection.from_json("x", '{"hots": "h"}')


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        *[("password", True), ("DB_PASSWORD", True), ("client_secret", True), ("api_key", True)],
        *[("access_token", True), ("private_key", True), ("region", False), ("keyspace", False)],
    ],
)
def test_sensitive_key_names(name: str, sensitive: bool) -> None:
    assert is_sensitive_key(name) is sensitive


# --- lookups ------------------------------------------------------------------------------------


def test_connection_from_environment_uri(monkeypatch) -> None:
    monkeypatch.setenv("TRADEWIND_CONN_MY_DB", "postgres://u:pw1234@h:5432/db")
    conn = secrets.get_connection("my_db")
    assert (conn.conn_id, conn.host, conn.password) == ("my_db", "h", "pw1234")


def test_connection_from_environment_json(monkeypatch) -> None:
    monkeypatch.setenv("TRADEWIND_CONN_API", '{"conn_type": "http", "host": "example.com"}')
    conn = secrets.get_connection("api")
    assert (conn.conn_type, conn.host) == ("http", "example.com")


def test_airflow_prefix_is_a_fallback(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LEGACY", "sqlite:////tmp/legacy.db")
    monkeypatch.setenv("AIRFLOW_VAR_REGION", "eu")
    assert secrets.get_connection("legacy").schema == "/tmp/legacy.db"
    assert secrets.get_variable("region") == "eu"


def test_tradewind_prefix_wins_over_airflow_prefix(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BOTH", "http://airflow-host")
    monkeypatch.setenv("TRADEWIND_CONN_BOTH", "http://tradewind-host")
    monkeypatch.setenv("AIRFLOW_VAR_BOTH", "a")
    monkeypatch.setenv("TRADEWIND_VAR_BOTH", "t")
    assert secrets.get_connection("both").host == "tradewind-host"
    assert secrets.get_variable("both") == "t"


def test_bad_environment_connection_names_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("TRADEWIND_CONN_BROKEN", "{not json")
    with pytest.raises(TradewindError, match="TRADEWIND_CONN_BROKEN"):
        secrets.get_connection("broken")


def test_missing_connection_and_variable() -> None:
    with pytest.raises(ConnectionNotFound) as conn_info:
        secrets.get_connection("nowhere")
    assert conn_info.value.conn_id == "nowhere"
    assert isinstance(conn_info.value, KeyError)
    with pytest.raises(VariableNotFound) as var_info:
        secrets.get_variable("nothing")
    assert var_info.value.key == "nothing"


class DictBackend:
    def __init__(self, conns: dict[str, Connection], variables: dict[str, str]) -> None:
        self.conns = conns
        self.variables = variables

    def get_connection(self, conn_id: str) -> Connection | None:
        return self.conns.get(conn_id)

    def get_variable(self, key: str) -> str | None:
        return self.variables.get(key)


def test_registered_backends_are_asked_in_order_after_the_environment(monkeypatch) -> None:
    first = DictBackend({"db": Connection("db", host="first")}, {"v": "first"})
    second = DictBackend({"db": Connection("db", host="second"), "only2": Connection("only2")}, {})
    secrets.register_backend(first)
    secrets.register_backend(second)
    assert secrets.get_connection("db").host == "first"
    assert secrets.get_connection("only2").conn_id == "only2"
    assert secrets.get_variable("v") == "first"
    monkeypatch.setenv("TRADEWIND_CONN_DB", "http://env")
    assert secrets.get_connection("db").host == "env"


def test_register_rejects_objects_that_are_not_backends() -> None:
    with pytest.raises(TypeError, match="get_connection"):
        secrets.register_backend(object())  # type: ignore[arg-type]


def test_unregister_backend() -> None:
    backend = DictBackend({"db": Connection("db")}, {})
    secrets.register_backend(backend)
    secrets.unregister_backend(backend)
    with pytest.raises(ConnectionNotFound):
        secrets.get_connection("db")


def test_environment_backend_with_injected_environment() -> None:
    backend = secrets.EnvironmentBackend({"TRADEWIND_CONN_X": "http://h", "TRADEWIND_VAR_K": "v"})
    assert backend.get_connection("x").host == "h"  # type: ignore[union-attr]
    assert backend.get_variable("k") == "v"
    assert backend.get_connection("y") is None


# --- variables ------------------------------------------------------------------------------------


def test_variable_get(monkeypatch) -> None:
    monkeypatch.setenv("TRADEWIND_VAR_LIMITS", '{"max": 5}')
    assert Variable.get("limits") == '{"max": 5}'
    assert Variable.get("limits", deserialize_json=True) == {"max": 5}


def test_variable_default_is_returned_as_given() -> None:
    assert Variable.get("absent", default=None) is None
    assert Variable.get("absent", default="{x", deserialize_json=True) == "{x"
    with pytest.raises(KeyError):
        Variable.get("absent")


def test_variable_with_bad_json_names_the_key(monkeypatch) -> None:
    monkeypatch.setenv("TRADEWIND_VAR_CFG", "{oops")
    with pytest.raises(TradewindError, match="'cfg' is not valid JSON"):
        Variable.get("cfg", deserialize_json=True)


@pytest.mark.parametrize("method", ["set", "update", "delete"])
def test_variables_cannot_be_written_from_dag_code(method: str) -> None:
    args = ("k",) if method == "delete" else ("k", "v")
    with pytest.raises(TradewindError, match="CLI"):
        getattr(Variable, method)(*args)


# --- masking --------------------------------------------------------------------------------------


def test_redact_replaces_registered_secrets() -> None:
    secrets.mask_secret("hunter22")
    secrets.mask_secret("hunter22-long")
    assert secrets.redact("a hunter22 b hunter22-long c") == "a *** b *** c"
    assert secrets.redact("nothing here") == "nothing here"


def test_mask_secret_also_masks_the_url_encoded_form() -> None:
    secrets.mask_secret("p@ss word")
    assert secrets.redact("postgres://u:p%40ss%20word@h") == "postgres://u:***@h"


def test_mask_secret_walks_dicts_and_lists_and_ignores_short_values() -> None:
    secrets.mask_secret({"a": "value-one", "b": ["value-two", None, 3]})
    secrets.mask_secret("ab")
    secrets.mask_secret(None)
    assert secrets.redact("value-one value-two ab") == "*** *** ab"


def test_getting_a_connection_masks_its_password_and_secret_extras(monkeypatch) -> None:
    monkeypatch.setenv(
        "TRADEWIND_CONN_WH",
        json.dumps({"conn_type": "http", "password": "pw-9876", "extra": {"api_key": "k-5432"}}),
    )
    secrets.get_connection("wh")
    assert secrets.redact("pw-9876 / k-5432") == "*** / ***"


def test_secret_sounding_variables_are_masked(monkeypatch) -> None:
    monkeypatch.setenv("TRADEWIND_VAR_SERVICE_TOKEN", "tok-123456")
    monkeypatch.setenv("TRADEWIND_VAR_REGION", "eu-west-1")
    Variable.get("service_token")
    Variable.get("region")
    assert secrets.redact("tok-123456 in eu-west-1") == "*** in eu-west-1"
