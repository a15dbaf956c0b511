"""Another user on the same machine gets nothing (issue 13, finding 1): the local daemon binds no
TCP port for its broker (only a unix socket in the owner-only $RHZMQ_HOME/local), its gateway
needs a token that user cannot read, and that user cannot plant an environment we would run.

The second user is a real one: ``nobody`` (uid 65534), through ``setpriv``; its programs are the
system's (curl, /usr/bin/python3 with the standard library only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_pid_gone

NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]


def as_nobody(*command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NOBODY, *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )


def listening_tcp_ports(pid: int) -> set[int]:
    """TCP ports a process listens on (its socket inodes matched against /proc/net/tcp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture
def shared_home() -> Iterator[Path]:
    """A RHZMQ_HOME every user can look into (as under /tmp): only rhzmq's own modes protect it."""
    root = Path(tempfile.mkdtemp(prefix="rhzmq-shared-", dir="/tmp"))
    root.chmod(0o755)
    home = root / "home"
    home.mkdir(mode=0o755)
    env = {**os.environ, "RHZMQ_HOME": str(home)}
    env.pop("RHZMQ_TOKEN", None)
    start = subprocess.run(
        [sys.executable, "-m", "rhzmq", "start", "--gateway-port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert start.returncode == 0, start.stderr
    state = json.loads((home / "local" / "daemon.json").read_text())
    yield home
    subprocess.run([sys.executable, "-m", "rhzmq", "stop"], env=env, timeout=60)
    assert wait_pid_gone(int(state["pid"]))
    subprocess.run(["rm", "-rf", str(root)], check=False)


def test_another_user_reaches_neither_broker_nor_gateway(shared_home: Path) -> None:
    local = shared_home / "local"
    state = json.loads((local / "daemon.json").read_text())
    # No TCP endpoint for the broker at all: the daemon listens on the gateway's port only.
    assert state["tcp_endpoint"] is None and state["curve"] is None
    assert all(e.startswith("ipc://") for e in [state["endpoint"]])
    gateway_port = int(state["gateway"].rsplit(":", 1)[1])
    assert listening_tcp_ports(int(state["pid"])) == set()  # the gateway is its own process
    # The broker's unix socket: the kernel refuses the connection (local/ is 0700).
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({str(local / 'broker.sock')!r})\n"
        "    print('CONNECTED')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    out = as_nobody("/usr/bin/python3", "-c", probe)
    assert out.stdout.strip() == "PermissionError", out
    # The token file: unreadable. The gateway without it: 401, whatever the request.
    out = as_nobody("/bin/cat", str(local / "gateway.token"))
    assert out.returncode != 0 and "Permission denied" in out.stderr
    token = (local / "gateway.token").read_text().strip()
    assert (local / "gateway.token").stat().st_mode & 0o077 == 0
    for args in (
        ["-X", "POST", "-H", "content-type: application/json", "-d", "{}"],
        ["-X", "POST", "-H", "authorization: Bearer wrong", "-d", "{}"],
        [],
    ):
        url = f"http://127.0.0.1:{gateway_port}/keys"
        out = as_nobody("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *args, url)
        assert out.stdout in ("401", "403"), (args, out)
    assert token not in (local / "daemon.log").read_text(errors="replace")


def test_an_environment_planted_by_another_user_is_refused(tmp_path: Path) -> None:
    """A venv under RHZMQ_HOME/envs that another user made (or can write) would run their code
    as ours: rhzmq refuses to reuse it."""
    import anyio

    from rhzmq.wire import config
    from worker._envs import EnvInstallError, ensure_venv, env_key, envs_dir

    old = os.environ.get("RHZMQ_HOME")
    os.environ["RHZMQ_HOME"] = str(tmp_path / "home")
    try:
        root = envs_dir() / env_key(["planted==1.0"])
        (root / "bin").mkdir(parents=True)
        os.symlink(sys.executable, root / "bin" / "python")
        (root / ".rhzmq-ready").write_text("{}")
        os.chown(root / ".rhzmq-ready", 65534, 65534)  # made by someone else
        with pytest.raises(EnvInstallError, match="owned by uid 65534"):
            anyio.run(ensure_venv, ["planted==1.0"], lambda _: None)
        os.chown(root / ".rhzmq-ready", os.getuid(), os.getgid())
        (root / "bin").chmod(0o777)  # or writable by others
        with pytest.raises(EnvInstallError, match="writable by others"):
            anyio.run(ensure_venv, ["planted==1.0"], lambda _: None)
        assert envs_dir().stat().st_mode & 0o077 == 0
        assert config.home() == tmp_path / "home"
    finally:
        if old is None:
            os.environ.pop("RHZMQ_HOME", None)
        else:
            os.environ["RHZMQ_HOME"] = old
