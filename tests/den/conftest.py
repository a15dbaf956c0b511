"""Fixtures for the registry: a real ``python -m den serve`` on SQLite and on a real PostgreSQL.

The ``den`` fixture is parametrized over both databases, so every test that takes it runs
twice: the same suite on both (issue 15). PostgreSQL is Debian's ``postgresql`` package
(``tests/setup.py`` installs it), started once per session as the ``postgres`` user (it refuses
to run as root) in a temporary directory, on a free loopback port with a password, and stopped
by its PID at the end. Each registry server is stopped by PID too, and checked gone.
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rhzmq import _store
from rhzmq._den import DenClient

HERE = Path(__file__).resolve().parent
_open_clients: list[DenClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _open_clients:
        _open_clients.pop().close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin(name: str) -> str:
    """A PostgreSQL server binary (Debian keeps them off PATH, per version)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version_key)
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise AssertionError(
        f"PostgreSQL's {name} is not installed: run `python tests/setup.py` (it installs "
        "Debian's postgresql package)"
    )


def _version_key(path: str) -> tuple[int, ...]:
    part = path.split("/")[4]
    return tuple(int(p) for p in part.split(".") if p.isdigit())


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


@dataclass
class Postgres:
    """A running PostgreSQL: ``url(db)`` for a database on it, ``create(db)`` makes one."""

    port: int
    password: str
    pid: int

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://den:{self.password}@127.0.0.1:{self.port}/{db}"

    def create(self, db: str) -> str:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="den",
            password=self.password,
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(f'CREATE DATABASE "{db}"')
        return self.url(db)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    base = Path(tempfile.mkdtemp(prefix="den-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")  # made by Debian's package: the server refuses root
        os.chown(base, pg.pw_uid, pg.pw_gid)
        run_as = ["setpriv", f"--reuid={pg.pw_uid}", f"--regid={pg.pw_gid}", "--init-groups"]
    password = secrets.token_urlsafe(16)
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    if run_as:
        os.chown(pwfile, pg.pw_uid, pg.pw_gid)
    data = base / "data"
    subprocess.run(
        [
            *run_as,
            pg_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "den",
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ],
        check=True,
        capture_output=True,
        cwd=base,
    )
    port = free_port()
    log = open(base / "postgres.log", "wb")
    proc = subprocess.Popen(
        [
            *run_as,
            pg_bin("postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(base),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",  # a test database: durability costs time and proves nothing here
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=base,
    )
    server = Postgres(port, password, proc.pid)
    try:
        _wait_postgres(server, proc, base)
        yield server
    finally:
        proc.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        shutil.rmtree(base, ignore_errors=True)
    assert wait_gone(proc.pid)


def _wait_postgres(server: Postgres, proc: subprocess.Popen[bytes], base: Path) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise AssertionError(
                "PostgreSQL exited at start:\n" + (base / "postgres.log").read_text()
            )
        try:
            psycopg.connect(
                host="127.0.0.1",
                port=server.port,
                user="den",
                password=server.password,
                dbname="postgres",
                connect_timeout=2,
            ).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # nothing to wait on but the server's port: it tells no one


@dataclass
class DenServer:
    """One running registry: its URL, its database URL, an admin, and its log."""

    url: str
    db_url: str
    backend: str
    proc: subprocess.Popen[bytes]
    log: Path
    home: Path
    admin_token: str
    tokens: list[str] = field(default_factory=list)  # every token made: none may be logged
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def env(self, token: str | None = None) -> dict[str, str]:
        env = {**os.environ, "RHZMQ_HOME": str(self.home), "RHZMQ_DEN_URL": self.url}
        if token is not None:
            env["RHZMQ_DEN_TOKEN"] = token
        return env

    def client(self, token: str | None = None) -> DenClient:
        """A client (closed when the test ends)."""
        client = DenClient(self.url, token or self.admin_token)
        _open_clients.append(client)
        return client

    def name(self, stem: str) -> str:
        """A name no other test of this server has used."""
        return f"{stem}{next(self._names)}"

    def user(self, stem: str, admin: bool = False) -> tuple[str, DenClient]:
        """A new user (made by the admin over the API) and a client with their token."""
        name = self.name(stem)
        with self.client() as root:
            made = root.create_user(name, admin=admin)
        self.tokens.append(made["token"])
        return name, self.client(made["token"])

    def read_log(self) -> str:
        return self.log.read_text(errors="replace")


def start_den(db_url: str, backend: str, home: Path, *extra: str) -> DenServer:
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RHZMQ_HOME": str(home), "RHZMQ_DEN_DB": db_url}
    admin = subprocess.run(
        [sys.executable, "-m", "den", "admin", "init", "root"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert admin.returncode == 0, admin.stderr
    token = admin.stdout.strip()
    assert token.startswith("den_") and "\n" not in token, admin.stdout
    log = home / "den.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "den", "serve", "--port", "0", "--log-level", "debug"],
            env=env,  # the database URL, password and all, by environment: never argv
            stdout=subprocess.PIPE,
            stderr=err,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    proc.stdout.close()
    if not line.startswith("READY "):
        proc.wait(10)
        raise AssertionError(f"den did not start: {line!r}\n{log.read_text()}")
    server = DenServer(line.split()[1], db_url, backend, proc, log, home, token)
    server.tokens.append(token)
    return server


def stop_den(server: DenServer) -> None:
    proc = server.proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    assert wait_gone(proc.pid), "den outlived its stop"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def den(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DenServer]:
    """A registry for the session, on SQLite, then on PostgreSQL."""
    home = tmp_path_factory.mktemp(f"den-{request.param}")
    if request.param == "sqlite":
        db_url = f"sqlite:///{home / 'den' / 'den.db'}"
    else:
        db_url = request.getfixturevalue("postgres").create("den_session")
    server = start_den(db_url, request.param, home)
    yield server
    stop_den(server)


def run_client(den: DenServer, token: str, code: str) -> Any:
    """Run ``code`` in a separate Python process with a ``DenClient`` named ``den`` (URL and
    token by environment); it prints one JSON value, returned here."""
    script = (
        "import json, sys\n"
        "import rhzmq as rh\n"
        "den = rh.DenClient()\n"
        "def out(value):\n"
        "    print(json.dumps(value))\n" + code
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=den.env(token),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def as_user(den: DenServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str, str, str]]:
    """Two fresh users; this process is logged in as the first (``RHZMQ_DEN_*`` variables)."""
    alice, alice_client = den.user("alice")
    bob, bob_client = den.user("bob")
    alice_token = alice_client._http.headers["Authorization"].split()[1]
    bob_token = bob_client._http.headers["Authorization"].split()[1]
    monkeypatch.setenv("RHZMQ_DEN_URL", den.url)
    monkeypatch.setenv("RHZMQ_DEN_TOKEN", alice_token)
    yield alice, alice_token, bob, bob_token
    _store.forget_registry()


def run_as(den: DenServer, token: str, code: str, home: Path) -> dict[str, object]:
    """Run ``code`` as another user's process (same machine and cluster home, own token)."""
    env = {**os.environ, "RHZMQ_HOME": str(home), "RHZMQ_DEN_URL": den.url}
    env["RHZMQ_DEN_TOKEN"] = token
    script = "import json, rhzmq as rh\nout = {}\n" + textwrap.dedent(code)
    script += "\nprint('RESULT ' + json.dumps(out))\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=HERE.parent,
    )
    assert done.returncode == 0, done.stderr
    for secret in den.tokens:
        assert secret not in done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout.split("RESULT ", 1)[1])
    return result
