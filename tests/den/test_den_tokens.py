"""Tokens: hashed at rest, named, revocable at once, last use recorded, never logged."""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import DenServer
from sqlalchemy import create_engine, inspect, text

import rhzmq as rh


def _database_text(den: DenServer) -> str:
    """Every row of every table, as text, read straight from the database."""
    engine = create_engine(den.db_url)
    out = []
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                out += [repr(tuple(row)) for row in conn.execute(text(f'SELECT * FROM "{table}"'))]
    finally:
        engine.dispose()
    return "\n".join(out)


def test_tokens_are_stored_only_as_hashes(den: DenServer) -> None:
    _name, a = den.user("alice")
    made = a.create_token("laptop")
    token = made["token"]
    den.tokens.append(token)
    assert token.startswith("den_") and len(token) > 40
    rows = _database_text(den)
    assert hashlib.sha256(token.encode()).hexdigest() in rows
    for t in den.tokens:
        assert t not in rows and t[4:] not in rows
    if den.backend == "sqlite":
        path = Path(den.db_url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert raw and all(t.encode() not in raw for t in den.tokens)
    # The list shows names and times, never a token.
    listed = a.tokens()
    assert [t["name"] for t in listed] == ["initial", "laptop"]
    assert all("token" not in t for t in listed)


def test_last_use_is_recorded_and_revocation_is_immediate(den: DenServer) -> None:
    name, a = den.user("alice")
    made = a.create_token("ci")
    den.tokens.append(made["token"])
    (entry,) = [t for t in a.tokens() if t["id"] == made["id"]]
    assert entry["last_used_at"] is None and entry["revoked_at"] is None
    ci = den.client(made["token"])
    assert ci.whoami()["name"] == name
    (entry,) = [t for t in a.tokens() if t["id"] == made["id"]]
    assert entry["last_used_at"] is not None
    a.revoke_token(made["id"])
    with pytest.raises(rh.InvalidToken, match="revoked") as refused:
        ci.whoami()
    assert refused.value.status == 401 and made["token"] not in str(refused.value)
    assert a.whoami()["name"] == name  # the user's other tokens still work
    (entry,) = [t for t in a.tokens() if t["id"] == made["id"]]
    assert entry["revoked_at"] is not None
    _bob, b = den.user("bob")
    with pytest.raises(rh.ResourceNotFound):
        b.revoke_token(made["id"] - 1)  # someone else's token: not bob's to see
    with pytest.raises(rh.InvalidToken):
        den.client("den_" + secrets.token_urlsafe(32)).whoami()


def test_the_token_is_in_no_url_repr_or_error(den: DenServer) -> None:
    _name, a = den.user("alice")
    token = den.tokens[-1]
    assert token not in repr(a)
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={"error": {"type": "NotFound", "message": "nope"}})

    c = rh.DenClient(den.url, token, transport=httpx.MockTransport(record))
    with pytest.raises(rh.ResourceNotFound) as err:
        c.load("/alice/x")
    c.close()
    assert token not in str(err.value) and token not in str(seen[0].url)
    assert seen[0].headers["authorization"] == f"Bearer {token}"


def test_admin_commands_print_a_token_once_on_stdout(den: DenServer) -> None:
    user = den.name("erin")
    made = subprocess.run(
        [sys.executable, "-m", "rhzmq", "den", "admin", "create-user", user],
        env={**den.env(), "RHZMQ_DEN_DB": den.db_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    den.tokens.append(token)
    assert token.startswith("den_") and token not in made.stderr
    assert den.client(token).whoami()["name"] == user
    again = subprocess.run(
        [sys.executable, "-m", "den", "admin", "init", den.name("second")],
        env={**den.env(), "RHZMQ_DEN_DB": den.db_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2 and "has users already" in again.stderr and not again.stdout
    another = subprocess.run(
        [sys.executable, "-m", "den", "admin", "create-token", user, "--name", "deploy"],
        env={**den.env(), "RHZMQ_DEN_DB": den.db_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert another.returncode == 0, another.stderr
    den.tokens.append(another.stdout.strip())
    assert [t["name"] for t in den.client(token).tokens()] == ["initial", "deploy"]


def test_no_token_reaches_the_server_log(den: DenServer) -> None:
    """Run last in this file: by now the server has made, used, refused and revoked tokens
    (at debug level, with the access log on)."""
    wrong = "den_" + secrets.token_urlsafe(32)
    with pytest.raises(rh.InvalidToken):
        den.client(wrong).whoami()
    httpx.get(f"{den.url}/users/me", headers={"Authorization": f"Basic {wrong}"})
    log = den.read_log()
    assert "GET /users/me" in log and "POST /tokens" in log, log[-2000:]
    assert len(den.tokens) >= 5
    for token in [*den.tokens, wrong]:
        assert token not in log and token[4:20] not in log
    # A traceback's own first line: the access log also holds the fuzzer's query strings (the
    # schemathesis run shares this server), and one once searched for q=RemoteTraceback.
    assert "Traceback (most recent call last)" not in log
    if den.backend == "postgresql":
        from sqlalchemy.engine import make_url

        password = make_url(den.db_url).password
        assert password and password not in log  # the database URL is logged without it
