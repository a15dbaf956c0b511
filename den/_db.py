"""The database: an engine for a URL (SQLite by default, PostgreSQL by URL) and its migrations.

SQLite is one file under ``$RHZMQ_HOME/den/den.db`` with no setup: write-ahead logging, foreign
keys on, and a 30 s busy timeout for the admin commands that open it beside a running server
(the server itself sends SQLite work through one thread at a time: :attr:`Database.workers`).
PostgreSQL is ``postgresql+psycopg://user@host:port/db`` (``pip install 'rhzmq[postgres]'``);
pass a URL with a password in the ``RHZMQ_DEN_DB`` environment variable, not on the command
line, which ``ps`` shows to every user of the machine.

The schema belongs to the Alembic migrations in ``den/migrations``: :func:`migrate` runs
``upgrade head`` (the server does at every start; a database already there is left as is).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from rhzmq.wire.config import home

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
ENV_URL = "RHZMQ_DEN_DB"


class DatabaseURLError(ValueError):
    """A database URL that names no database den can use."""


def default_url() -> str:
    """``$RHZMQ_DEN_DB``, else the SQLite file ``$RHZMQ_HOME/den/den.db``."""
    url = os.environ.get(ENV_URL)
    if url:
        return url
    path = home() / "den" / "den.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)  # token hashes, configs and the audit log: the owner's only
    return f"sqlite:///{path}"


def safe_url(url: str) -> str:
    """The URL with its password hidden, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<not a database URL>"


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # off by default in SQLite: cascades need it
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for a writer
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseURLError(
            "the database URL must look like sqlite:///path/den.db or "
            "postgresql+psycopg://user@host:5432/den"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise DatabaseURLError(
                "an in-memory SQLite database would vanish with the server: give a file"
            )
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not psycopg2
        return create_engine(parsed, pool_pre_ping=True, pool_size=8, max_overflow=8)
    raise DatabaseURLError(
        f"den stores its registry in SQLite or PostgreSQL, not {backend!r}: use sqlite:///path "
        "or postgresql+psycopg://user@host/db"
    )


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (Alembic ``upgrade``), in one transaction."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


class Database:
    """An engine, its sessions, and how many threads may use it at once."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite takes one writer at a time, and a reader that becomes a writer mid-transaction
        # can fail at once instead of waiting: one thread at a time makes every request simple.
        # PostgreSQL takes them in parallel (the pool's size).
        self.workers = 1 if self.engine.dialect.name == "sqlite" else 8

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self.sessions()

    def migrate(self) -> None:
        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()
