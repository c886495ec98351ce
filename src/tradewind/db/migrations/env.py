"""Alembic environment for Tradewind's metadata database.

Run programmatically by :mod:`tradewind.db.migrate`, which passes an open connection in
``config.attributes["connection"]``; there is no ``alembic.ini`` and no URL in a file.
"""

from __future__ import annotations

from alembic import context

from tradewind.db.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "Tradewind's migrations run through tradewind.db.migrate (or `tradewind db migrate`), "
        "which supplies the database connection"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
