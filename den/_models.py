"""The registry's tables, as SQLAlchemy 2.0 typed ORM classes.

::

    principals   one namespace for users and groups (``kind``): a resource's owner is either
      │          (``/alice/...``, ``/ml-team/...``); a group may have a ``parent`` group and
      │          ``defaults`` for its resources
      ├── memberships   (group, user, role: member | admin)
      └── tokens        a user's API tokens: only the SHA-256 of each, a name, when it was made,
                        last used and revoked
    resources    (owner, name) → one type and ``head``, the latest version number
      ├── versions      every save, immutable: number, canonical JSON config, content hash,
      │   │             author, time, ``rollback_of``
      │   └── lineage   which resource versions this one was made from (by path: history outlives
      │                 a deleted source)
      └── shares        (resource, principal) → read | write
    audit        who did what to which resource, and when (reads too); rows name actor and
                 target by name, so they outlive both

The schema is made and changed only by the Alembic migrations in ``den/migrations`` (the server
runs ``upgrade head`` at start); ``tests/den/test_store.py`` checks that the migrations and these
classes agree. JSON documents (configs, defaults, details) are stored as canonical JSON text
(:func:`canonical_json`), the same bytes the content hash is taken of, so SQLite and PostgreSQL
store them identically.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Constraint names spelled out, so migrations can name what they change on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

USER = "user"
GROUP = "group"
MEMBER = "member"
ADMIN = "admin"
READ = "read"
WRITE = "write"


def now() -> datetime:
    return datetime.now(UTC)


def canonical_json(value: Any) -> str:
    """One spelling per JSON value: sorted keys, no spaces, ASCII only (every other character
    as a ``\\uXXXX`` escape, so a NUL in a string, which PostgreSQL's text type refuses, is
    stored as six characters), no NaN or Infinity."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


class JSONText(TypeDecorator[Any]):
    """A JSON value stored as its canonical text (the same on every database)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else canonical_json(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC time on every database (SQLite keeps no zone: it is put back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Principal(Base):
    """A user or a group: one namespace, so ``/name/...`` names exactly one owner."""

    __tablename__ = "principals"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # USER or GROUP
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)  # users: server admin
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("principals.id", ondelete="SET NULL"), default=None
    )  # groups: the enclosing group
    defaults: Mapped[dict[str, Any] | None] = mapped_column(JSONText, default=None)  # groups
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class Membership(Base):
    """A user in a group, as a plain ``member`` (reads and writes the group's resources) or an
    ``admin`` (also deletes and shares them, manages members and defaults)."""

    __tablename__ = "memberships"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class Token(Base):
    """An API token: only its SHA-256 is stored (the token itself is shown once, at creation)."""

    __tablename__ = "tokens"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("principals.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Resource(Base):
    """A named resource: its owner, name and type never change; ``head`` is its latest version."""

    __tablename__ = "resources"
    __table_args__ = (
        UniqueConstraint("owner_id", "name"),
        {"sqlite_autoincrement": True},  # ids never reused: they are part of every ETag
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(16))
    head: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class Version(Base):
    """One save of a resource, never changed afterwards."""

    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("resource_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    config: Mapped[Any] = mapped_column(JSONText)
    content_hash: Mapped[str] = mapped_column(String(64))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id", ondelete="SET NULL"))
    author_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    rollback_of: Mapped[int | None] = mapped_column(Integer, default=None)


class Lineage(Base):
    """Version ``version_id`` was made from version ``source_version`` of ``source``."""

    __tablename__ = "lineage"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str] = mapped_column(String(200), primary_key=True)  # "/owner/name"
    source_version: Mapped[int] = mapped_column(Integer)


class Share(Base):
    """A resource shared with a user or a group, to read or to write."""

    __tablename__ = "shares"

    resource_id: Mapped[int] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True
    )
    principal_id: Mapped[int] = mapped_column(
        ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    access: Mapped[str] = mapped_column(String(8))
    granted_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class Audit(Base):
    """One action on a resource: reads, saves, rollbacks, deletes, shares, revocations."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_target", "target", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(200))
    version: Mapped[int | None] = mapped_column(Integer, default=None)
    detail: Mapped[Any] = mapped_column(JSONText, nullable=True, default=None)
