"""The registry's pieces without HTTP: migrations against the models, on both databases; the
group-role rule; the OpenAPI document against the app's routes; database URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import Postgres
from sqlalchemy import inspect

from den._app import HTTP_STATUS, PUBLIC, Den
from den._db import Database, DatabaseURLError, make_engine, safe_url
from den._models import ADMIN, MEMBER, Base, canonical_json
from den._openapi import build_openapi
from den._store import Store, _levels, content_hash


def _check_schema(db: Database) -> None:
    db.migrate()
    db.migrate()  # a second start finds it up to date
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(inspect(conn).get_table_names())
    assert diff == [], "the models and den/migrations disagree: add a migration"
    assert {"principals", "tokens", "resources", "versions", "shares", "audit"} <= tables


def test_migrations_build_what_the_models_describe_on_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'den.db'}")
    try:
        _check_schema(db)
    finally:
        db.close()


def test_migrations_build_what_the_models_describe_on_postgresql(postgres: Postgres) -> None:
    db = Database(postgres.create("den_schema"))
    try:
        _check_schema(db)
        assert db.workers > 1  # PostgreSQL takes requests in parallel; SQLite one at a time
    finally:
        db.close()


def test_group_roles_count_membership_up_and_administration_down() -> None:
    # org(1) ─ team(2) ─ squad(3); other(4) stands alone
    parents = {1: None, 2: 1, 3: 2, 4: None}
    assert _levels([(3, MEMBER)], parents) == {3: MEMBER, 2: MEMBER, 1: MEMBER}
    assert _levels([(1, ADMIN)], parents) == {1: ADMIN, 2: ADMIN, 3: ADMIN}
    assert _levels([(2, ADMIN), (3, MEMBER)], parents) == {1: MEMBER, 2: ADMIN, 3: ADMIN}
    assert _levels([(4, MEMBER)], parents) == {4: MEMBER}
    assert _levels([(1, MEMBER)], {1: 2, 2: 1}) == {1: MEMBER, 2: MEMBER}  # a loop cannot hang it


def test_the_content_hash_is_of_canonical_json() -> None:
    a = {"b": [1, 2.5, "é"], "a": None}
    assert canonical_json(a) == '{"a":null,"b":[1,2.5,"\\u00e9"]}'
    assert content_hash(a) == content_hash({"a": None, "b": [1, 2.5, "é"]})
    assert content_hash(a) != content_hash({**a, "c": 1})


def test_every_route_is_documented_and_every_refusal_has_a_status(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'den.db'}")
    try:
        routes = Den(Store(db)).routes()
    finally:
        db.close()
    doc = build_openapi(HTTP_STATUS)
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    served = {
        (route.path, method.lower())
        for route in routes
        for method in (getattr(route, "methods", None) or ())
        if method != "HEAD"
    }
    assert served == documented
    assert PUBLIC == {
        p for p, ops in doc["paths"].items() if ops.get("get", {}).get("security") == []
    }
    assert sorted(HTTP_STATUS.values()) == [400, 401, 403, 404, 409, 412, 413, 415, 422, 428]


def test_database_urls() -> None:
    for url in ("mysql://u@h/db", "not a url", "sqlite://", "sqlite:///:memory:"):
        with pytest.raises(DatabaseURLError):
            make_engine(url)
    assert safe_url("postgresql+psycopg://den:s3cret@db:5432/den") == (
        "postgresql+psycopg://den:***@db:5432/den"
    )
    engine = make_engine("postgresql://den@127.0.0.1:1/den")  # plain postgresql: psycopg 3
    assert engine.dialect.driver == "psycopg"
    engine.dispose()
