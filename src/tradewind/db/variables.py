"""Variables stored in the metadata database, their values Fernet-encrypted at rest.

``fernet`` arguments take what :func:`tradewind.db.crypto.get_fernet` returns (None stores plain
text). Reading a value encrypted with a key that is no longer configured raises an error that
says so.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.crypto import decrypt_text, encrypt_text
from tradewind.db.models import Variable
from tradewind.errors import VariableNotFound

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

__all__ = [
    "delete_variable",
    "get_variable",
    "get_variable_row",
    "list_variables",
    "rotate_variables",
    "set_variable",
    "variable_value",
]


def variable_value(row: Variable, fernet: MultiFernet | None) -> str:
    """The plain value of a stored variable."""
    value = decrypt_text(fernet, row.val, row.is_encrypted, what=f"variable {row.key!r}")
    return value or ""


def get_variable_row(session: Session, key: str) -> Variable:
    """The stored row (value still encrypted); raises :class:`VariableNotFound`."""
    row = session.scalar(sa.select(Variable).where(Variable.key == key))
    if row is None:
        raise VariableNotFound(key)
    return row


def get_variable(session: Session, key: str, *, fernet: MultiFernet | None) -> str:
    """The variable's plain value; raises :class:`VariableNotFound` (a ``KeyError``)."""
    return variable_value(get_variable_row(session, key), fernet)


def set_variable(
    session: Session,
    key: str,
    value: str,
    *,
    fernet: MultiFernet | None,
    now: datetime,
    description: str | None = None,
) -> Variable:
    """Create or replace a variable; ``description`` None keeps an existing description."""
    if not isinstance(value, str):
        raise TypeError(f"variable {key!r}: the value must be text, got {type(value).__name__}")
    stored, encrypted = encrypt_text(fernet, value)
    row = session.scalar(sa.select(Variable).where(Variable.key == key))
    if row is None:
        row = Variable(key=key, description=description)
        session.add(row)
    elif description is not None:
        row.description = description
    row.val = stored or ""
    row.is_encrypted = encrypted
    row.updated_at = now
    session.flush()
    return row


def list_variables(session: Session) -> list[Variable]:
    """Every stored variable row, by key (values still encrypted)."""
    return list(session.scalars(sa.select(Variable).order_by(Variable.key)))


def delete_variable(session: Session, key: str) -> None:
    """Delete a variable; raises :class:`VariableNotFound` when there is none."""
    row = get_variable_row(session, key)
    session.delete(row)
    session.flush()


def rotate_variables(session: Session, fernet: MultiFernet) -> int:
    """Re-encrypt every variable with ``fernet``'s first key (after adding a new key in front);
    plain-text values get encrypted. Returns how many rows were rewritten."""
    count = 0
    for row in list_variables(session):
        plain = variable_value(row, fernet)
        row.val, row.is_encrypted = fernet.encrypt(plain.encode()).decode("ascii"), True
        count += 1
    session.flush()
    return count
