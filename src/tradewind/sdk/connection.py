"""``Connection``: how a task reaches an external system (host, credentials, extras).

Connections are defined outside DAG code (environment variables, the metadata database) and
looked up by id through :mod:`tradewind.sdk.secrets`. The URI form is Airflow-compatible::

    conn-type://login:password@host:port/schema?key=value&other=value

* The scheme is the ``conn_type``. URI schemes cannot hold ``_``, so ``get_uri`` writes ``_``
  as ``-`` and parsing turns ``-`` back into ``_`` (``google-cloud-platform://`` is
  ``google_cloud_platform``); ``postgresql://`` is read as conn_type ``postgres``.
* Login, password, host and schema are percent-decoded; ``get_uri`` percent-encodes them, so
  any character survives a round trip (``p%40ss`` is ``p@ss``).
* Query parameters become the ``extra`` JSON object. When the extra is not a flat mapping of
  strings, ``get_uri`` stores it whole as JSON in one ``__extra__`` parameter.
* A host that carries its own protocol is written after the scheme:
  ``http://https://example.com`` is conn_type ``http`` with host ``https://example.com``.
* SQLite paths follow SQLAlchemy: ``sqlite:////abs/path.db`` has schema ``/abs/path.db``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from tradewind.errors import TradewindError

__all__ = ["EXTRA_KEY", "Connection", "is_sensitive_key"]

#: Query parameter holding the whole ``extra`` as JSON when it cannot be spread over parameters.
EXTRA_KEY = "__extra__"

# Substrings of key names whose values are secrets (case-insensitive).
_SENSITIVE_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "authorization",
)
_REDACTED = "***"


def is_sensitive_key(name: str) -> bool:
    """Whether a key name (variable key, extra field) says its value is a secret.

    >>> is_sensitive_key("snowflake_PASSWORD"), is_sensitive_key("region")
    (True, False)
    """
    lowered = name.lower()
    return any(part in lowered for part in _SENSITIVE_PARTS)


def _normalize_conn_type(scheme: str) -> str:
    if scheme == "postgresql":
        return "postgres"
    return scheme.replace("-", "_")


@dataclass(repr=False)
class Connection:
    """Credentials and location of one external system, identified by ``conn_id``.

    ``extra`` holds driver-specific options, either as a JSON object string (as stored) or as
    a dict; :attr:`extra_dejson` always gives the dict. The password never appears in
    ``repr``; use :meth:`get_uri` or :meth:`to_dict` when it is really needed.

    Example::

        conn = Connection.from_uri("warehouse", "postgres://etl:s3cr%2Ft@db:5432/sales")
        conn.password  # 's3cr/t'
    """

    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: str | dict[str, Any] | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if self.port is not None and not isinstance(self.port, int):
            try:
                self.port = int(self.port)
            except (TypeError, ValueError):
                raise TradewindError(
                    f"connection {self.conn_id!r}: port must be an integer, got {self.port!r}"
                ) from None

    # --- extras -----------------------------------------------------------------------------

    @property
    def extra_dejson(self) -> dict[str, Any]:
        """``extra`` as a dict (empty when there is none).

        Raises :class:`TradewindError` naming the connection when ``extra`` is not a JSON
        object.
        """
        if self.extra is None or self.extra == "":
            return {}
        if isinstance(self.extra, dict):
            return dict(self.extra)
        try:
            value = json.loads(self.extra)
        except json.JSONDecodeError as exc:
            raise TradewindError(
                f"connection {self.conn_id!r}: extra is not valid JSON ({exc})"
            ) from None
        if not isinstance(value, dict):
            raise TradewindError(
                f"connection {self.conn_id!r}: extra must be a JSON object, "
                f"got {type(value).__name__}"
            )
        return value

    def get_extra(self) -> str | None:
        """``extra`` as a JSON string (None when there is none), as the database stores it."""
        if self.extra is None or self.extra == "":
            return None
        if isinstance(self.extra, dict):
            return json.dumps(self.extra)
        return self.extra

    def get_password(self) -> str | None:
        """The password (Airflow-compatible accessor)."""
        return self.password

    # --- URIs -------------------------------------------------------------------------------

    @classmethod
    def from_uri(cls, conn_id: str, uri: str) -> Connection:
        """Parse an Airflow-style connection URI (see the module docstring for the format).

        Raises :class:`TradewindError` when the URI has no scheme or an invalid port.
        """
        scheme, sep, rest = uri.partition("://")
        if not sep or not scheme:
            raise TradewindError(
                f"connection {conn_id!r}: URI must look like conn-type://[login[:password]@]"
                f"host[:port][/schema][?extra], got one without a scheme"
            )
        conn_type = _normalize_conn_type(scheme.lower())

        protocol = None
        if "://" in rest:
            # conn-type://protocol://host… : the host keeps its own scheme.
            protocol, _, rest = rest.partition("://")
            if "@" in protocol or ":" in protocol or "/" in protocol:
                raise TradewindError(
                    f"connection {conn_id!r}: URI has more than one '://' in an invalid place"
                )

        try:
            parts = urlsplit("//" + rest)
        except ValueError as exc:
            raise TradewindError(f"connection {conn_id!r}: invalid URI ({exc})") from None
        userinfo, at, hostport = parts.netloc.rpartition("@")
        if not at:
            userinfo = ""
        login: str | None = None
        password: str | None = None
        if at:
            raw_login, colon, raw_password = userinfo.partition(":")
            login = unquote(raw_login) if raw_login else None
            password = unquote(raw_password) if colon and raw_password else None

        host, port = _split_host_port(conn_id, hostport)
        if protocol:
            host = f"{protocol}://{host or ''}"

        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        schema = unquote(path) if path else None

        extra: str | None = None
        if parts.query:
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            extra = query[EXTRA_KEY] if EXTRA_KEY in query else json.dumps(query)
        return cls(
            conn_id=conn_id,
            conn_type=conn_type,
            host=host,
            schema=schema,
            login=login,
            password=password,
            port=port,
            extra=extra,
        )

    @classmethod
    def from_json(cls, conn_id: str, text: str | dict[str, Any]) -> Connection:
        """Build a connection from a JSON object (string or dict) with the field names as keys.

        ``{"conn_type": "postgres", "host": "db", "port": 5432, "extra": {"sslmode": "require"}}``
        """
        data = json.loads(text) if isinstance(text, str) else dict(text)
        if not isinstance(data, dict):
            raise TradewindError(f"connection {conn_id!r}: JSON must be an object")
        allowed = {"conn_type", "host", "schema", "login", "password", "port", "extra"}
        allowed.add("description")
        unknown = sorted(set(data) - allowed - {"conn_id"})
        if unknown:
            raise TradewindError(
                f"connection {conn_id!r}: unknown field(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        data.pop("conn_id", None)
        if isinstance(data.get("conn_type"), str):
            data["conn_type"] = _normalize_conn_type(data["conn_type"])
        return cls(conn_id=conn_id, **data)

    def get_uri(self) -> str:
        """This connection as a URI that :meth:`from_uri` reads back to an equal connection."""
        scheme = (self.conn_type or "").lower().replace("_", "-")
        uri = f"{scheme}://" if scheme else "//"

        host = self.host or ""
        if "://" in host:
            protocol, _, host = host.partition("://")
            uri += f"{protocol}://"

        userinfo = ""
        if self.login is not None:
            userinfo += quote(self.login, safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password, safe="")
        if userinfo:
            uri += userinfo + "@"

        hostport = quote(host, safe="[]:") if host.startswith("[") else quote(host, safe="")
        if self.port is not None:
            # "@" marks an empty authority so the port cannot be mistaken for a scheme part.
            hostport += f":{self.port}" if hostport or userinfo else f"@:{self.port}"
        uri += hostport
        if self.schema:
            uri += "/" + quote(self.schema, safe="")

        extra = self.extra_dejson
        if extra:
            flat = urlencode(extra) if _is_flat_strings(extra) else None
            query = flat if flat is not None else urlencode({EXTRA_KEY: json.dumps(extra)})
            uri += ("?" if self.schema else "/?") + query
        return uri

    # --- presentation -----------------------------------------------------------------------

    def to_dict(self, *, redact: bool = False) -> dict[str, Any]:
        """All fields as a dict (``extra`` as a dict); with ``redact`` secrets become ``***``."""
        extra = self.extra_dejson
        password = self.password
        if redact:
            password = _REDACTED if password else password
            extra = _redacted_extra(extra)
        return {
            "conn_id": self.conn_id,
            "conn_type": self.conn_type,
            "description": self.description,
            "host": self.host,
            "schema": self.schema,
            "login": self.login,
            "password": password,
            "port": self.port,
            "extra": extra,
        }

    def __repr__(self) -> str:
        try:
            extra: object = _redacted_extra(self.extra_dejson)
        except TradewindError:
            extra = "<invalid JSON>"
        shown = {
            "conn_id": self.conn_id,
            "conn_type": self.conn_type,
            "host": self.host,
            "port": self.port,
            "schema": self.schema,
            "login": self.login,
            "password": _REDACTED if self.password else None,
            "extra": extra or None,
        }
        inner = ", ".join(f"{k}={v!r}" for k, v in shown.items() if v is not None or k == "conn_id")
        return f"Connection({inner})"

    __str__ = __repr__


def _split_host_port(conn_id: str, hostport: str) -> tuple[str | None, int | None]:
    if hostport.startswith("["):  # IPv6 literal
        end = hostport.find("]")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        raw_port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, raw_port = hostport.partition(":")
    port: int | None = None
    if raw_port:
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            raise TradewindError(
                f"connection {conn_id!r}: port must be an integer between 1 and 65535, "
                f"got {raw_port!r}"
            )
        port = int(raw_port)
    return (unquote(host) if host else None), port


def _is_flat_strings(extra: dict[str, Any]) -> bool:
    # Only a mapping of strings survives query-string encoding unchanged; anything else
    # (numbers, booleans, nesting) goes through __extra__ JSON so its types are kept.
    return all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()) and (
        EXTRA_KEY not in extra
    )


def _redacted_extra(extra: dict[str, Any]) -> dict[str, Any]:
    return {k: (_REDACTED if is_sensitive_key(k) and v else v) for k, v in extra.items()}
