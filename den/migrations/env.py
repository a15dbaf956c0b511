"""Alembic's entry point: runs the migrations on the connection ``den._db.migrate`` hands over
(``config.attributes["connection"]``); there is no ``alembic.ini`` and no URL in a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from den._models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("den's migrations run through den._db.migrate(engine), not the alembic CLI")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE that SQLite lacks
)
with context.begin_transaction():
    context.run_migrations()
