"""Where rhzmq keeps its state on this machine: ``~/.rhzmq`` or ``$RHZMQ_HOME``."""

from __future__ import annotations

import json
import os
import secrets
import socket
from pathlib import Path
from typing import Any


def home() -> Path:
    return Path(os.environ.get("RHZMQ_HOME") or "~/.rhzmq").expanduser()


#: A path that starts with this lives under the RHZMQ_HOME of the host that reads it (synced code
#: in specs: one spec serves hosts whose homes differ).
HOME_PREFIX = "$RHZMQ_HOME"


def expand(path: str | None) -> str | None:
    """A path sent by a client (``$RHZMQ_HOME/...``, ``~/...``) as a path on this host."""
    if not path:
        return path
    if path.startswith(HOME_PREFIX):
        return str(home()) + path[len(HOME_PREFIX) :]
    return os.path.expanduser(path) if path.startswith("~") else path


def local_dir() -> Path:
    """State of the local daemon: ``daemon.json`` (address, pid), ``daemon.log``, locks."""
    path = home() / "local"
    path.mkdir(parents=True, exist_ok=True)
    # Owner only: the broker's ipc socket lives here, and reaching it means running code.
    path.chmod(0o700)
    return path


def state_file() -> Path:
    return local_dir() / "daemon.json"


def log_file() -> Path:
    return local_dir() / "daemon.log"


def gateway_token_file() -> Path:
    """The local gateway's bearer token (owner-only): written by the daemon at every start with
    the token it serves with, made at the first start unless one is given."""
    return local_dir() / "gateway.token"


def gateway_token(create: bool = False) -> str | None:
    """The local gateway's token; with ``create``, made (and saved, 0600) if there is none."""
    path = gateway_token_file()
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if token or not create:
        return token or None
    write_gateway_token(secrets.token_urlsafe(32))
    return gateway_token()


def write_gateway_token(token: str) -> None:
    path = gateway_token_file()
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)


def read_state() -> dict[str, Any] | None:
    try:
        state = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def write_state(state: dict[str, Any]) -> None:
    path = state_file()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)  # atomic: readers never see half a file


def _machine_id() -> str:
    """This machine's identity for this boot: a pid names the same process only within it."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f"{socket.gethostname()}/{f.read().strip()}"
    except OSError:
        return socket.gethostname()


MACHINE_ID = _machine_id()


def process_exists(pid: int) -> bool:
    """Whether a process (not a zombie) has ``pid`` on this machine, without touching it: for
    pids other processes tell us about (never reaps, unlike :func:`pid_alive`)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs; reaps it first if it is our exited child (a zombie looks alive)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: its parent reaps it
    return process_exists(pid)
