"""SSH to cluster hosts (asyncssh): connections, commands with streamed output, file transfer,
port forwarding.

Every connection lives on the portal's loop thread (:mod:`rhzmq._portal`), whatever loop the
caller runs on: a connection and its port forwards are tied to the loop that made them, and a
tunnel opened inside one ``asyncio.run()`` must keep working for the sync calls that follow it.
:func:`on_portal` runs a coroutine there and awaits it from anywhere.

Failures become :class:`~rhzmq.ClusterError` naming the host and what to do.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from ..._portal import portal
from ...wire import config as _config
from ...wire.exceptions import ClusterError
from ...wire.settings import SSH_CONNECT_TIMEOUT

T = TypeVar("T")


@dataclass(frozen=True)
class SSHCreds:
    """How to log in to a cluster's hosts: ``rh.cluster(..., ssh_creds={...})``."""

    user: str | None = None
    key: str | None = None
    port: int = 22
    password: str | None = None
    #: a known_hosts file; None: ``~/.ssh/known_hosts`` (asyncssh's default). Host keys are
    #: always checked: an unknown host is an error telling how to add it.
    known_hosts: str | None = None

    @classmethod
    def from_dict(cls, creds: dict[str, Any] | None) -> SSHCreds:
        creds = dict(creds or {})
        unknown = set(creds) - {"user", "key", "port", "password", "known_hosts", "ssh_private_key"}
        if unknown:
            raise ValueError(
                f"unknown ssh_creds keys {sorted(unknown)}: use user, key, port, password, "
                "known_hosts"
            )
        return cls(
            user=creds.get("user"),
            key=creds.get("key") or creds.get("ssh_private_key"),
            port=int(creds.get("port") or 22),
            password=creds.get("password"),
            known_hosts=creds.get("known_hosts"),
        )

    def to_dict(self) -> dict[str, Any]:
        """For the resource store: never the password (it is a secret)."""
        out: dict[str, Any] = {"user": self.user, "key": self.key, "port": self.port}
        if self.known_hosts:
            out["known_hosts"] = self.known_hosts
        return out

    def ssh_args(self, host: str) -> list[str]:
        """The same login for the system ``ssh`` command (``cluster.ssh()``)."""
        args = ["-p", str(self.port)]
        if self.key:
            args += ["-i", os.path.expanduser(self.key)]
        if self.known_hosts:
            args += ["-o", f"UserKnownHostsFile={os.path.expanduser(self.known_hosts)}"]
        return [*args, f"{self.user}@{host}" if self.user else host]


async def on_portal(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` on the portal loop (where SSH connections live), from any loop."""
    loop = portal()
    if asyncio.get_running_loop() is loop:
        return await coro
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


_connections: dict[tuple[str, int, str | None], asyncssh.SSHClientConnection] = {}
_connect_locks: dict[tuple[str, int, str | None], asyncio.Lock] = {}


async def connect(host: str, creds: SSHCreds) -> asyncssh.SSHClientConnection:
    """The process's connection to ``host`` (made once, remade if it dropped). Portal loop only."""
    key = (host, creds.port, creds.user)
    lock = _connect_locks.setdefault(key, asyncio.Lock())
    async with lock:
        conn = _connections.get(key)
        if conn is not None and not conn.is_closed():
            return conn
        conn = await _open(host, creds)
        _connections[key] = conn
        return conn


def _options(creds: SSHCreds, where: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "port": creds.port,
        "username": creds.user,
        "connect_timeout": SSH_CONNECT_TIMEOUT,
        "keepalive_interval": 15,
    }
    if creds.key:
        key_path = Path(creds.key).expanduser()
        if not key_path.exists():
            raise ClusterError(f"SSH key {creds.key} not found (ssh_creds['key'] for {where})")
        options["client_keys"] = [str(key_path)]
    if creds.password:
        options["password"] = creds.password
    if creds.known_hosts:
        options["known_hosts"] = str(Path(creds.known_hosts).expanduser())
    return options


async def _open(host: str, creds: SSHCreds) -> asyncssh.SSHClientConnection:
    where = f"{creds.user + '@' if creds.user else ''}{host}:{creds.port}"
    options = _options(creds, where)
    try:
        return await asyncssh.connect(host, **options)
    except asyncssh.PermissionDenied:
        raise ClusterError(
            f"{where} refused the login{' with key ' + creds.key if creds.key else ''}. Check "
            "ssh_creds['user'] and that the key's public half is in that user's "
            "~/.ssh/authorized_keys on the host."
        ) from None
    except asyncssh.HostKeyNotVerifiable as exc:
        raise ClusterError(
            f"the host key of {where} is not trusted ({exc.reason}). If this is the right "
            f"machine, add it: `ssh-keyscan -p {creds.port} {host} >> ~/.ssh/known_hosts` "
            "(or pass ssh_creds['known_hosts'])."
        ) from None
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (str(exc) or type(exc).__name__)
        raise ClusterError(
            f"cannot reach {where} over SSH: {reason}. Check the address, the port and that "
            "sshd runs there."
        ) from None


async def run(
    conn: asyncssh.SSHClientConnection,
    command: str,
    on_line: Callable[[str], Any] | None = None,
    stdin: str | None = None,
) -> tuple[int, str]:
    """Run ``command`` in the login shell; each output line goes to ``on_line`` as it arrives.

    Returns the exit status and the whole output (stdout and stderr interleaved).
    """
    lines: list[str] = []
    async with conn.create_process(
        command, stderr=asyncssh.STDOUT, input=stdin, encoding="utf-8", errors="replace"
    ) as proc:
        async for line in proc.stdout:
            lines.append(line)
            if on_line is not None:
                result = on_line(line)
                if isinstance(result, Awaitable):
                    await result
        await proc.wait()
    status = proc.exit_status
    return (status if status is not None else 255), "".join(lines)


@dataclass(frozen=True)
class RemoteHome:
    """Where things live on one host, resolved once per connection.

    ``home`` is the login shell's ``$HOME``; ``rhzmq`` is the host's effective ``RHZMQ_HOME``
    (``~/.rhzmq`` unless the host's SSH session sets the variable, e.g. with sshd's ``SetEnv`` or
    ``~/.ssh/environment``). Every path rhzmq uses there derives from ``rhzmq``, and the daemon
    is started with it explicitly, so the client and the daemon can never disagree on where the
    keys, the token, the venv or the code are.
    """

    home: str
    rhzmq: str

    @property
    def venv(self) -> str:
        return f"{self.rhzmq}/venv"

    @property
    def python(self) -> str:
        return f"{self.rhzmq}/venv/bin/python"

    @property
    def local(self) -> str:
        return f"{self.rhzmq}/local"

    @property
    def log(self) -> str:
        return f"{self.rhzmq}/local/daemon.log"

    @property
    def curve(self) -> str:
        return f"{self.rhzmq}/local/curve"

    def path(self, path: str) -> str:
        """A path of the cluster's vocabulary (``$RHZMQ_HOME/...``, ``~/...``) on this host."""
        if path.startswith(RHZMQ_HOME_PREFIX):
            return self.rhzmq + path[len(RHZMQ_HOME_PREFIX) :]
        if path.startswith("~/"):
            return f"{self.home}/{path[2:]}"
        return path

    def env(self) -> str:
        """``RHZMQ_HOME=...`` to put before a command run with the host's rhzmq."""
        return f"RHZMQ_HOME={shlex.quote(self.rhzmq)}"


#: Paths of a cluster's hosts that start with this mean "under that host's RHZMQ_HOME"
#: (a spec's synced code paths are shared by hosts whose homes may differ).
RHZMQ_HOME_PREFIX = _config.HOME_PREFIX

# Prints $HOME, then the effective RHZMQ_HOME (as rhzmq.wire.config.home() would compute it there).
_WHERE = (
    'h="${RHZMQ_HOME:-$HOME/.rhzmq}"; case "$h" in "~/"*) h="$HOME/${h#??}";; esac; '
    'printf "%s\\n%s\\n" "$HOME" "$h"'
)

_homes: dict[int, RemoteHome] = {}


async def remote_home(conn: asyncssh.SSHClientConnection) -> RemoteHome:
    """The host's :class:`RemoteHome` (read once per connection). SFTP paths are made absolute
    with it: an SFTP session starts in the passwd home, which a host may override for shells."""
    key = id(conn)
    if key not in _homes:
        status, out = await run(conn, _WHERE)
        lines = out.strip().splitlines()
        if status != 0 or len(lines) < 2 or not lines[-2].startswith("/"):
            raise ClusterError(f"could not read $HOME on the host: {out.strip()[-200:]}")
        home, rhzmq = lines[-2], lines[-1]
        if not rhzmq.startswith("/"):
            rhzmq = f"{home}/{rhzmq}"  # a relative RHZMQ_HOME is relative to the login directory
        _homes[key] = RemoteHome(home, rhzmq.rstrip("/") or "/")
    return _homes[key]


async def home(conn: asyncssh.SSHClientConnection) -> str:
    """The login shell's ``$HOME`` on the host."""
    return (await remote_home(conn)).home


async def absolute(conn: asyncssh.SSHClientConnection, path: str) -> str:
    """``~/x`` or a relative path as an absolute path on the host."""
    if path.startswith("/"):
        return path
    rest = path[2:] if path.startswith("~/") else path
    return f"{await home(conn)}/{rest}"


async def put_file(conn: asyncssh.SSHClientConnection, local: Path, remote: str) -> None:
    """Upload to a temporary name, then rename: a reader (pip, a concurrent upload of the same
    file) never sees half a file."""
    remote = await absolute(conn, remote)
    partial = f"{remote}.{os.getpid()}-{id(conn):x}.part"
    async with conn.start_sftp_client() as sftp:
        await sftp.makedirs(os.path.dirname(remote), exist_ok=True)
        await sftp.put(str(local), partial)
        await sftp.posix_rename(partial, remote)


async def forward(
    conn: asyncssh.SSHClientConnection, remote_port: int
) -> tuple[int, asyncssh.SSHListener]:
    """Forward a free loopback port here to ``127.0.0.1:remote_port`` on the host; returns the
    port and the listener (closing it ends the forward)."""
    listener = await conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", remote_port)
    return int(listener.get_port()), listener


def quote(path: str) -> str:
    """Quote a remote path, keeping a leading ``~/`` for the remote shell to expand."""
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def resolve(host: str) -> str:
    """``host`` as an address (for comparing a user's ``node=`` with the cluster's hosts)."""
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host
