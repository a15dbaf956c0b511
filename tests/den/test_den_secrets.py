"""Secrets in the registry (issue 16): sealed at rest with the registry's own key (the raw
database holds no secret value), returned only to users with access, every read audited. On
SQLite and PostgreSQL (the ``den`` fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import DenServer, run_as
from helpers import SECRET_VALUES

import rhzmq as rh
from rhzmq import _store


def _raw_database(den: DenServer) -> bytes:
    """Everything the database holds, as stored: the SQLite files, or PostgreSQL's rows."""
    if den.backend == "sqlite":
        folder = Path(den.db_url.removeprefix("sqlite:///")).parent
        return b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())
    import psycopg

    with psycopg.connect(den.db_url.replace("postgresql+psycopg", "postgresql")) as conn:
        rows = conn.execute("SELECT config::text, content_hash FROM versions").fetchall()
    return repr(rows).encode()


def test_secrets_are_sealed_and_shared_like_resources(
    den: DenServer, as_user: tuple[str, str, str, str], rhzmq_home: Path
) -> None:
    alice, _, bob, bob_token = as_user
    value = SECRET_VALUES["db"]
    db = rh.secret("db", values={"DB_PASSWORD": value}).save()
    assert db._rh_saved["name"] == f"/{alice}/db"
    assert rh.secret("db").values == {"DB_PASSWORD": value}  # alice reads it back
    raw = _raw_database(den)
    assert value.encode() not in raw and b"sealed" in raw
    # The content hash is keyed: not the plain SHA-256 of the config (guessable for short values).
    assert _store.content_hash(db.config()).encode() not in raw

    out = run_as(
        den,
        bob_token,
        f"""
        try:
            rh.secret("/{alice}/db")
        except KeyError as exc:
            out["denied"] = type(exc).__name__
        """,
        rhzmq_home,
    )
    assert out["denied"] == "ResourceNotFound"  # not shared: not even its existence
    db.share(bob)
    out = run_as(
        den,
        bob_token,
        f"""
        out["len"] = len(rh.secret("/{alice}/db").values["DB_PASSWORD"])
        """,
        rhzmq_home,
    )
    assert out["len"] == len(value)
    reads = [e for e in _store.registry().audit(f"/{alice}/db") if e["action"] == "read"]
    assert bob in {e["actor"] for e in reads}
    # Versions and rollback work on sealed configs too.
    db2 = rh.secret("db", values={"DB_PASSWORD": value + "-2"}).save()
    assert [h["version"] for h in db2.history()][:2] == [2, 1]
    assert db2.rollback(1).values == {"DB_PASSWORD": value}
    assert (value + "-2").encode() not in _raw_database(den)


def test_a_wrong_master_key_is_refused_by_name(tmp_path: Path) -> None:
    from den._crypto import Sealer

    sealed = Sealer(b"k" * 32).seal({"a": "b"})
    with pytest.raises(ValueError, match="sealed with master key"):
        Sealer(b"x" * 32).open(sealed)
    made = Sealer.from_file(tmp_path / "den" / "master.key")
    assert (tmp_path / "den" / "master.key").stat().st_mode & 0o077 == 0
    assert Sealer.from_file(tmp_path / "den" / "master.key").kid == made.kid


def test_an_env_saved_by_another_user_never_sends_my_credentials(
    den: DenServer, as_user: tuple[str, str, str, str], rhzmq_home: Path
) -> None:
    """Found in review: an env naming provider secrets ("aws") would read them on whichever
    machine used it. Loaded from someone else's registry copy, it refuses and says how to opt in."""
    alice, _, bob, bob_token = as_user
    rh.env(name="shared_env", reqs=["numpy"], secrets=["aws"]).save().share(bob)
    out = run_as(
        den,
        bob_token,
        f"""
        import os
        os.environ["AWS_ACCESS_KEY_ID"] = "AKIABOBSOWNKEY"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "bobs-own-secret"
        env = rh.env(name="/{alice}/shared_env")
        try:
            env.spec()
        except rh.SecretError as exc:
            out["refused"] = str(exc)
        """,
        rhzmq_home,
    )
    assert "saved by another user" in str(out["refused"]) and "'aws'" in str(out["refused"])
    # Alice's own copy resolves as before (her machine, her credentials).
    assert rh.env(name="shared_env").secret_refs == ["aws"]
