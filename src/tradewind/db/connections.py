"""Connections stored in the metadata database; password and extra Fernet-encrypted at rest.

Rows come back as :class:`tradewind.sdk.connection.Connection` objects with plain values, the
same objects hooks and templates use.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.crypto import decrypt_text, encrypt_text
from tradewind.db.models import Connection as ConnectionRow
from tradewind.errors import AlreadyExists, ConnectionNotFound
from tradewind.sdk.connection import Connection

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

__all__ = [
    "add_connection",
    "connection_from_row",
    "delete_connection",
    "get_connection",
    "get_connection_row",
    "list_connections",
    "rotate_connections",
    "set_connection",
]


def connection_from_row(row: ConnectionRow, fernet: MultiFernet | None) -> Connection:
    """The plain :class:`Connection` a stored row describes."""
    what = f"connection {row.conn_id!r}"
    return Connection(
        conn_id=row.conn_id,
        conn_type=row.conn_type,
        host=row.host,
        schema=row.schema,
        login=row.login,
        password=decrypt_text(fernet, row.password, row.is_encrypted, what=what),
        port=row.port,
        extra=decrypt_text(fernet, row.extra, row.is_extra_encrypted, what=f"{what} extra"),
        description=row.description,
    )


def get_connection_row(session: Session, conn_id: str) -> ConnectionRow:
    """The stored row (secrets still encrypted); raises :class:`ConnectionNotFound`."""
    row = session.scalar(sa.select(ConnectionRow).where(ConnectionRow.conn_id == conn_id))
    if row is None:
        raise ConnectionNotFound(conn_id)
    return row


def get_connection(session: Session, conn_id: str, *, fernet: MultiFernet | None) -> Connection:
    """The connection with plain values; raises :class:`ConnectionNotFound` (a ``KeyError``)."""
    return connection_from_row(get_connection_row(session, conn_id), fernet)


def _fill(row: ConnectionRow, conn: Connection, fernet: MultiFernet | None, now: datetime) -> None:
    row.conn_type = conn.conn_type
    row.description = conn.description
    row.host = conn.host
    row.schema = conn.schema
    row.login = conn.login
    row.port = conn.port
    row.password, row.is_encrypted = encrypt_text(fernet, conn.password)
    row.extra, row.is_extra_encrypted = encrypt_text(fernet, conn.get_extra())
    row.updated_at = now


def add_connection(
    session: Session, conn: Connection, *, fernet: MultiFernet | None, now: datetime
) -> ConnectionRow:
    """Store a new connection; raises :class:`AlreadyExists` when the id is taken."""
    existing = session.scalar(
        sa.select(ConnectionRow.id).where(ConnectionRow.conn_id == conn.conn_id)
    )
    if existing is not None:
        raise AlreadyExists("connection", conn.conn_id)
    row = ConnectionRow(conn_id=conn.conn_id)
    _fill(row, conn, fernet, now)
    session.add(row)
    session.flush()
    return row


def set_connection(
    session: Session, conn: Connection, *, fernet: MultiFernet | None, now: datetime
) -> ConnectionRow:
    """Create or replace a connection."""
    row = session.scalar(sa.select(ConnectionRow).where(ConnectionRow.conn_id == conn.conn_id))
    if row is None:
        return add_connection(session, conn, fernet=fernet, now=now)
    _fill(row, conn, fernet, now)
    session.flush()
    return row


def list_connections(session: Session, *, fernet: MultiFernet | None) -> list[Connection]:
    """Every stored connection (plain values), by id."""
    rows = session.scalars(sa.select(ConnectionRow).order_by(ConnectionRow.conn_id))
    return [connection_from_row(row, fernet) for row in rows]


def delete_connection(session: Session, conn_id: str) -> None:
    """Delete a connection; raises :class:`ConnectionNotFound` when there is none."""
    session.delete(get_connection_row(session, conn_id))
    session.flush()


def rotate_connections(session: Session, fernet: MultiFernet, *, now: datetime) -> int:
    """Re-encrypt every connection's secrets with ``fernet``'s first key; returns the count."""
    rows = list(session.scalars(sa.select(ConnectionRow)))
    for row in rows:
        _fill(row, connection_from_row(row, fernet), fernet, now)
    session.flush()
    return len(rows)
