"""Clusters on machines reached over SSH: ``rh.cluster(name=, host=[...], ssh_creds={...})``.

Shape: the first host is the *head* (broker, default worker, HTTP gateway, node agent 0); every
other host runs a *node daemon* (a supervisor and node agent ``__node__.<i>``) whose workers
connect to the head's broker. Nothing but SSH is exposed to the client: it reaches the broker and
gateway through SSH local port forwards. Hosts reach the head's broker directly over ZeroMQ with
CURVE (encrypted, and only keys on the head's allow-list get in); the keys are made on the client
at the first ``up`` and distributed over SSH, with the gateway's bearer token (the gateway listens
on the head's loopback only, and other users of that machine must not call the cluster either):

    client  $RHZMQ_HOME/clusters/<name>/  server.key(_secret)  client.key(_secret)  nodes.key(_secret)
                                          gateway.token
    head    $RHZMQ_HOME/local/curve/      server.key(_secret)  authorized/{client,nodes}.key
                                          gateway.token
    node i  $RHZMQ_HOME/local/curve/      server.key  local.key(_secret) (= nodes keypair)

Each host's ``RHZMQ_HOME`` (``~/.rhzmq`` unless its SSH session sets the variable) is resolved
once per connection (:class:`rhzmq._ssh.RemoteHome`); every path there derives from it and the
daemon is started with it explicitly, so client and daemon agree on where keys and token are.

Bootstrap (``up_if_not``), on every host in parallel: find a Python >= 3.11, make
``$RHZMQ_HOME/venv`` (with the system's site-packages visible, so preinstalled libraries such as a
CUDA build of torch are used as they are), install the wheel of the client's exact build (see
:mod:`rhzmq._build`) with its dependencies, then start the daemons — head first — detached, each
answering ``READY`` over the SSH channel that started it (no sleeping). Installs finish on every
host before any daemon starts, and a daemon failing to start stops those already started, so one
bad host never leaves a half-started cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
import shlex
import subprocess
import sys
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import zmq.auth

from . import _config, _ssh, _sync
from ._build import build_id, build_wheel, wheel_version
from ._client import Client, drop_client, get_client
from ._cluster import STOP_TIMEOUT, Cluster
from ._exceptions import CallTimeout, ClusterError, ClusterNotRunning, ObjectNotFound
from ._portal import run_sync
from ._protocol import Cmd

T = TypeVar("T")

DEFAULT_SERVER_PORT = 32301
DEFAULT_AUTOSTOP_MINS = 60

# Prints the path of the first Python >= 3.11 on the host, or what it found instead.
_FIND_PYTHON = r"""
for p in python3.14 python3.13 python3.12 python3.11 python3 python \
         /usr/local/bin/python3 "$HOME/.pyenv/shims/python3" /opt/conda/bin/python3; do
  path=$(command -v "$p" 2>/dev/null) || continue
  if "$path" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "PYTHON $path"; exit 0
  fi
  echo "FOUND $path $("$path" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)"
done
exit 3
"""


def _say(host: str, text: str) -> None:
    print(f"[{host}] {text.rstrip()}", file=sys.stderr, flush=True)


class SSHCluster(Cluster):
    """A cluster on hosts reached over SSH; see the module docstring."""

    def __init__(
        self,
        name: str,
        host: str | Sequence[str],
        *,
        ssh_creds: dict[str, Any] | None = None,
        server_port: int = DEFAULT_SERVER_PORT,
        gateway_port: int | None = 32300,
        autostop_mins: float = DEFAULT_AUTOSTOP_MINS,
        tunnel_workers: bool = False,
    ) -> None:
        hosts = [host] if isinstance(host, str) else list(host)
        if not hosts or not all(isinstance(h, str) and h for h in hosts):
            raise ValueError(f"host must be an address or a list of addresses, got {host!r}")
        if len(set(hosts)) != len(hosts):
            raise ValueError(f"a host appears twice in {hosts}")
        if name == "local" or not name:
            raise ValueError("an SSH cluster needs its own name (not 'local')")
        self.name = name
        self.hosts = hosts
        self.creds = _ssh.SSHCreds.from_dict(ssh_creds)
        self.server_port = int(server_port)
        self.gateway_port = gateway_port
        self.autostop_mins = float(autostop_mins)
        self.tunnel_workers = bool(tunnel_workers)
        self.token = None
        self._endpoint: str | None = None
        self._gateway: str | None = None
        self._synced: dict[Path, dict[str, tuple[int, int]]] = {}
        self._curve: dict[str, bytes] | None = None
        self._tunnel: asyncssh.SSHClientConnection | None = None

    # -- config --------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "type": "cluster",
            "name": self.name,
            "host": self.hosts,
            "ssh_creds": self.creds.to_dict(),
            "server_port": self.server_port,
            "gateway_port": self.gateway_port,
            "autostop_mins": self.autostop_mins,
            "tunnel_workers": self.tunnel_workers,
        }

    # -- keys ----------------------------------------------------------------------------------

    def keys_dir(self) -> Path:
        path = _config.home() / "clusters" / self.name
        if not (path / "gateway.token").exists():
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o700)
            for who in ("server", "client", "nodes"):
                zmq.auth.create_certificates(path, who)
            token = path / "gateway.token"
            token.touch(0o600)
            token.write_text(secrets.token_urlsafe(32))
        return path

    @property
    def gateway_token(self) -> str:
        """The bearer token of the head's HTTP gateway: even on the head's loopback, other
        users of that machine must not be able to call the cluster's objects."""
        return (self.keys_dir() / "gateway.token").read_text().strip()

    def gateway_headers(self) -> dict[str, str]:
        """Headers for HTTP calls to :attr:`gateway_url`."""
        return {"Authorization": f"Bearer {self.gateway_token}"}

    def curve_keys(self) -> dict[str, bytes]:
        # Every call asks for them: read the files once (reading them per call cost 70 %
        # of the throughput).
        if self._curve is None:
            root = self.keys_dir()
            public, secret = zmq.auth.load_certificate(root / "client.key_secret")
            server, _ = zmq.auth.load_certificate(root / "server.key")
            assert secret is not None
            self._curve = {"public": public, "secret": secret, "server": server}
        return self._curve

    def _key_files(self, index: int) -> dict[str, bytes]:
        root = self.keys_dir()
        read = functools.partial(_read, root)
        if index == 0:
            return {
                "gateway.token": read("gateway.token"),
                "server.key": read("server.key"),
                "server.key_secret": read("server.key_secret"),
                "authorized/client.key": read("client.key"),
                "authorized/nodes.key": read("nodes.key"),
            }
        return {
            "server.key": read("server.key"),
            "local.key": read("nodes.key"),
            "local.key_secret": read("nodes.key_secret"),
        }

    # -- connection ----------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        if self._endpoint is None:
            raise ClusterNotRunning(
                f"not connected to cluster {self.name!r} yet: call cluster.up_if_not() (or any "
                "cluster method, which connects through SSH first)"
            )
        return self._endpoint

    async def aclient(self) -> Client:
        tunnel = self._tunnel
        if tunnel is not None and tunnel.is_closed():
            self._disconnect()  # the SSH connection dropped: its forwards are gone, remake them
        if self._endpoint is None:
            await _ssh.on_portal(self._aconnect())
        return get_client(self.endpoint, self.curve_keys())

    @property
    def gateway_url(self) -> str | None:
        """The head's HTTP gateway through this process's SSH tunnel (once connected)."""
        return self._gateway

    async def _conn(self, index: int) -> asyncssh.SSHClientConnection:
        return await _ssh.connect(self.hosts[index], self.creds)

    async def _aconnect(self) -> None:
        """Tunnel to the running head (portal loop): forwards for its broker and gateway."""
        if self._endpoint is not None:
            return
        conn = await self._conn(0)
        state = (await self._probe(conn, self.hosts[0])).get("daemon")
        if not state or state.get("role") != "head":
            raise ClusterNotRunning(
                f"cluster {self.name!r} is not running on {self.hosts[0]}. Start it with "
                f"rh.cluster({self.name!r}).up_if_not()."
            )
        port = int(str(state["tcp_endpoint"]).rsplit(":", 1)[1])
        local = await _ssh.forward(conn, port)
        if state.get("gateway"):
            gateway = await _ssh.forward(conn, int(str(state["gateway"]).rsplit(":", 1)[1]))
            self._gateway = f"http://127.0.0.1:{gateway}"
        if self.tunnel_workers:
            # Each other host's loopback port server_port + 1 leads, through this client, to the
            # head (+1: never the broker's own port, should a host run both).
            for i in range(1, len(self.hosts)):
                node = await self._conn(i)
                try:
                    await node.forward_remote_port(
                        "127.0.0.1", self.server_port + 1, "127.0.0.1", local
                    )
                except asyncssh.Error as exc:
                    raise ClusterError(
                        f"cannot forward port {self.server_port + 1} on {self.hosts[i]} back to the "
                        f"head (tunnel_workers=True): {exc}. Is another client of this cluster "
                        "connected? With tunnel_workers one client at a time carries the traffic."
                    ) from None
        self._endpoint = f"tcp://127.0.0.1:{local}"
        self._tunnel = conn

    def _disconnect(self) -> None:
        if self._endpoint is not None:
            drop_client(self._endpoint)
        self._endpoint = self._gateway = None
        self._tunnel = None

    async def _probe(self, conn: asyncssh.SSHClientConnection, host: str) -> dict[str, Any]:
        """What runs on a host: its rhzmq build and daemon state; {} without our venv."""
        status, out = await _ssh.run(conn, await _remote_command(conn, "probe") + " 2>&1")
        if status != 0:
            return {}
        try:
            result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
            return result
        except (ValueError, IndexError):
            return {}  # an install broken half-way: reinstall

    # -- lifecycle -----------------------------------------------------------------------------

    def is_up(self) -> bool:
        return bool(run_sync(self.ais_up, hint="`await cluster.ais_up()`"))

    async def ais_up(self) -> bool:
        try:
            await (await self.aclient()).control(Cmd.PING, timeout=5.0)
        except (ClusterNotRunning, CallTimeout):
            self._disconnect()
            return False
        return True

    def up_if_not(self) -> SSHCluster:
        """Bootstrap every host that needs it and start the daemons; returns the cluster."""
        run_sync(self.aup_if_not, hint="`await cluster.aup_if_not()`")
        return self

    def up(self) -> SSHCluster:
        return self.up_if_not()

    async def aup_if_not(self, *, restart: bool = False) -> SSHCluster:
        await _ssh.on_portal(self._aup(restart))
        return self

    def restart_server(self) -> SSHCluster:
        """Restart the daemons on every host (reinstalling rhzmq where the build differs)."""
        run_sync(self.aup_if_not, restart=True, hint="`await cluster.aup_if_not(restart=True)`")
        return self

    async def _aup(self, restart: bool) -> None:
        wheel = build_wheel(_config.home() / "wheels")
        build = build_id()
        conns = await asyncio.gather(*(self._conn(i) for i in range(len(self.hosts))))
        probes = await asyncio.gather(
            *(self._probe(c, h) for c, h in zip(conns, self.hosts, strict=True))
        )
        # 1. Install where the build differs, everywhere, before starting anything.
        await asyncio.gather(
            *(
                self._install(c, h, wheel)
                for c, h, p in zip(conns, self.hosts, probes, strict=True)
                if p.get("build") != build
            )
        )
        # 2. Start what is not running as it should; a new head means new nodes too.
        wanted = [self._role_ok(i, p.get("daemon"), build) for i, p in enumerate(probes)]
        if restart or not wanted[0]:
            wanted = [False] * len(self.hosts)
        if all(wanted):
            for h in self.hosts:
                _say(h, f"up (rhzmq {wheel_version()}), nothing to do")
            await self._aconnect()
            return
        self._disconnect()
        started: list[int] = []
        try:
            if not wanted[0]:
                await self._start(conns, 0)
                started.append(0)
            if self.tunnel_workers:
                await self._aconnect()  # opens the hosts' forwards to the head first
            todo = [i for i in range(1, len(self.hosts)) if not wanted[i]]
            results = await asyncio.gather(
                *(self._start(conns, i) for i in todo), return_exceptions=True
            )
            started += [
                i for i, r in zip(todo, results, strict=True) if not isinstance(r, BaseException)
            ]
            for r in results:
                if isinstance(r, BaseException):
                    raise r
        except BaseException:
            await asyncio.gather(
                *(self._stop_host(conns[i], self.hosts[i]) for i in started),
                return_exceptions=True,
            )
            raise
        await self._aconnect()

    def _role_ok(self, index: int, daemon: dict[str, Any] | None, build: str) -> bool:
        if not daemon or daemon.get("build") != build or daemon.get("index") != index:
            return False
        if index == 0:
            return daemon.get("role") == "head" and str(daemon.get("tcp_endpoint", "")).endswith(
                f":{self.server_port}"
            )
        return daemon.get("role") == "node" and daemon.get("endpoint") == self._head_endpoint()

    def _head_endpoint(self) -> str:
        """Where the other hosts' workers find the head's broker."""
        if self.tunnel_workers:
            return f"tcp://127.0.0.1:{self.server_port + 1}"
        return f"tcp://{self.hosts[0]}:{self.server_port}"

    async def _install(self, conn: asyncssh.SSHClientConnection, host: str, wheel: Path) -> None:
        status, out = await _ssh.run(conn, _FIND_PYTHON)
        found = [
            line.split(maxsplit=1)[1] for line in out.splitlines() if line.startswith("PYTHON ")
        ]
        if status != 0 or not found:
            seen = [line[6:] for line in out.splitlines() if line.startswith("FOUND ")]
            raise ClusterError(
                f"{host} has no Python 3.11 or newer with venv (found: {', '.join(seen) or 'none'})."
                " Install one there (e.g. `apt install python3.11 python3.11-venv`) and retry."
            )
        python = found[0].strip()
        _say(host, f"installing rhzmq {wheel_version()} with {python}")
        where = await _ssh.remote_home(conn)
        remote_wheel = f"{where.rhzmq}/wheels/{wheel.name}"
        await _ssh.put_file(conn, wheel, remote_wheel)
        home, venv, py = (
            shlex.quote(where.rhzmq),
            shlex.quote(where.venv),
            shlex.quote(where.python),
        )
        # One install at a time per host: a cancelled `up` does not stop the remote pip (closing
        # the SSH channel leaves it running), and a second pip in the same venv breaks both.
        # A venv whose pip does not run was cut short: remake it.
        command = (
            f"mkdir -p {home} && exec 9>{home}/install.lock && {{ flock -w 900 9 || true; }}; "
            f"set -e; if ! {py} -m pip --version >/dev/null 2>&1; then rm -rf {venv}; "
            f"{shlex.quote(python)} -m venv --system-site-packages {venv}; fi; "
            f"{py} -m pip install --disable-pip-version-check --progress-bar off "
            f"{shlex.quote(remote_wheel)}"
        )
        status, out = await _ssh.run(conn, command, on_line=lambda line: _say(host, line))
        if status != 0:
            tail = "\n  ".join(out.strip().splitlines()[-12:])
            raise ClusterError(
                f"installing rhzmq on {host} failed (exit {status}). pip said:\n  {tail}\n"
                "Fix the cause on the host (network, disk, compilers) and retry up_if_not()."
            )

    async def _put_keys(self, conn: asyncssh.SSHClientConnection, index: int) -> None:
        files = self._key_files(index)
        where = await _ssh.remote_home(conn)
        async with conn.start_sftp_client() as sftp:
            root = where.curve
            await sftp.makedirs(f"{root}/authorized", exist_ok=True)
            for d in (where.rhzmq, where.local, root):
                await sftp.chmod(d, 0o700)
            if index == 0:
                for old in await sftp.listdir(f"{root}/authorized"):
                    if old not in (".", "..", "local.key"):
                        await sftp.remove(f"{root}/authorized/{old}")
            for rel, data in files.items():
                async with sftp.open(f"{root}/{rel}", "wb") as f:
                    await f.write(data)
                await sftp.chmod(f"{root}/{rel}", 0o600)

    async def _start(self, conns: Sequence[asyncssh.SSHClientConnection], index: int) -> None:
        conn, host = conns[index], self.hosts[index]
        await self._stop_host(conn, host)  # an old daemon (another build or config) goes first
        await self._put_keys(conn, index)
        args = [
            "--detach",
            "--ready-fd",
            "3",
            "--node-index",
            str(index),
            "--node-label",
            host,
            "--autostop-mins",
            str(self.autostop_mins),
        ]
        if index == 0:
            # Clients come through SSH, and so do workers with tunnel_workers: then loopback is
            # enough. Otherwise the other hosts connect directly (with CURVE).
            bind = "127.0.0.1" if len(self.hosts) == 1 or self.tunnel_workers else "0.0.0.0"
            args += ["--curve", "--host", bind, "--port", str(self.server_port)]
            if self.gateway_port is not None:
                token_file = f"{(await _ssh.remote_home(conn)).curve}/gateway.token"
                args += ["--gateway-port", str(self.gateway_port), "--token-file", token_file]
        else:
            args += ["--head", self._head_endpoint()]
        _say(host, f"starting the {'head' if index == 0 else 'node'} daemon")
        # fd 3 is this SSH channel (the READY handshake); the daemon's own output goes to its log.
        where = await _ssh.remote_home(conn)
        log = shlex.quote(where.log)
        command = (
            f"mkdir -p {shlex.quote(where.local)} && {where.env()} {shlex.quote(where.python)} "
            f"-m rhzmq._daemon {shlex.join(args)} 3>&1 >>{log} 2>&1 </dev/null"
        )
        ready = False

        def on_line(line: str) -> None:
            nonlocal ready
            if line.startswith("READY "):
                ready = True
                _say(host, "daemon up")
            elif line.startswith("STEP "):
                _say(host, line[5:])

        await _ssh.run(conn, command, on_line=on_line)
        if not ready:
            _, tail = await _ssh.run(conn, f"tail -n 20 {log}")
            raise ClusterError(
                f"the rhzmq daemon on {host} did not start. Its log "
                f"({where.log}) ends with:\n  " + "\n  ".join(tail.splitlines())
            )

    async def _stop_host(self, conn: asyncssh.SSHClientConnection, host: str) -> bool:
        status, out = await _ssh.run(conn, await _remote_command(conn, "stop"))
        stopped = status == 0 and '"stopped": true' in out
        if stopped:
            _say(host, "daemon stopped")
        return stopped

    def teardown(self) -> None:
        """Stop the daemons and workers on every host (installed software stays)."""
        run_sync(self.ateardown, hint="`await cluster.ateardown()`")

    async def ateardown(self) -> None:
        await _ssh.on_portal(self._ateardown())

    async def _ateardown(self) -> None:
        try:
            client = await self.aclient()
            await client.control(Cmd.SHUTDOWN, timeout=STOP_TIMEOUT)
        except (ClusterNotRunning, CallTimeout):
            pass  # not running, or not answering: the per-host stop below handles it
        self._disconnect()
        conns = await asyncio.gather(*(self._conn(i) for i in range(len(self.hosts))))
        await asyncio.gather(
            *(self._stop_host(c, h) for c, h in zip(conns, self.hosts, strict=True))
        )

    # -- placement and code ----------------------------------------------------------------------

    def node_index(self, node: int | str) -> int:
        """A host's index from an index or an address (``env(compute={"node": ...})``)."""
        if isinstance(node, int) and not isinstance(node, bool):
            if 0 <= node < len(self.hosts):
                return node
        elif isinstance(node, str):
            if node in self.hosts:
                return self.hosts.index(node)
            resolved = [_ssh.resolve(h) for h in self.hosts]
            if _ssh.resolve(node) in resolved:
                return resolved.index(_ssh.resolve(node))
        raise ValueError(
            f"no node {node!r} in cluster {self.name!r}: use an index 0..{len(self.hosts) - 1} "
            f"or one of {self.hosts}"
        )

    def _nodes(self, node: int | str) -> list[int]:
        return list(range(len(self.hosts))) if node == "all" else [self.node_index(node)]

    async def aspawn(self, spec: dict[str, Any]) -> list[str]:
        compute = spec.get("compute") or {}
        index = self.node_index(compute.get("node", 0))
        # The host by index (it may have been named by address), and a working_dir of this
        # machine as its synced copy there (the head's workers need it as much as the others').
        spec = {
            **spec,
            "compute": {**compute, "node": index},
            "working_dir": await self._aworking_dir(spec.get("working_dir")),
        }
        if index == 0:
            return await super().aspawn(spec)
        result = await self.acall(f"__node__.{index}", "spawn", spec)
        return list(result["workers"])

    async def aput_spec(
        self,
        name: str,
        spec: dict[str, Any],
        *,
        worker: str | None = None,
        max_concurrency: int | None = None,
    ) -> dict[str, Any]:
        spec = await self._aship_code(spec)
        return await super().aput_spec(name, spec, worker=worker, max_concurrency=max_concurrency)

    async def _aworking_dir(self, path: str | None) -> str | None:
        if not path or path.startswith("~"):
            return path
        return await self._synced_path(path)

    async def _aship_code(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Sync the projects a spec's code comes from; point its paths at the hosts' copies."""
        spec = dict(spec)
        spec["paths"] = [await self._synced_path(p) for p in spec.get("paths", ())]
        code = spec.get("code") or {}
        if code.get("path"):
            spec["code"] = {**code, "path": await self._synced_path(code["path"])}
        return spec

    async def _synced_path(self, path: str) -> str:
        if not _sync.is_project_dir(path):
            return path
        root = _sync.project_root(path)
        files = _sync.project_files(root)
        if self._synced.get(root) != files:
            _sync.check_size(root, files)
            await _ssh.on_portal(self._sync_all(root, files))
            self._synced[root] = files
        return _sync.remote_path(path, root)

    async def _sync_all(self, root: Path, files: dict[str, tuple[int, int]]) -> None:
        async def one(i: int) -> None:
            host = self.hosts[i]
            await _sync.sync_host(await self._conn(i), root, files, functools.partial(_say, host))

        await asyncio.gather(*(one(i) for i in range(len(self.hosts))))

    async def adelete(self, names: str | Sequence[str]) -> None:
        names = [names] if isinstance(names, str) else list(names)
        envs = {w["env"] for w in (await self.astatus())["workers"]}
        await super().adelete(names)
        for name in names:
            if name in envs:  # an environment: its workers on the other hosts stop too
                await asyncio.gather(
                    *(
                        self.acall(f"__node__.{i}", "stop_group", name)
                        for i in range(1, len(self.hosts))
                    )
                )
                # Their goodbyes reach the broker on their own sockets, maybe after the agents'
                # answers: wait (briefly) so status() no longer lists them when this returns.
                for _ in range(100):
                    if all(w["env"] != name for w in (await super().astatus())["workers"]):
                        break
                    await asyncio.sleep(0.05)

    # -- hosts -----------------------------------------------------------------------------------

    async def astatus(self) -> dict[str, Any]:
        status = await super().astatus()

        async def node(i: int) -> dict[str, Any]:
            try:
                return dict(await self.acall(f"__node__.{i}", "info"))
            except ObjectNotFound:
                return {"index": i, "address": self.hosts[i], "up": False}

        status["nodes"] = list(await asyncio.gather(*(node(i) for i in range(len(self.hosts)))))
        return status

    async def arun_bash(self, command: str, node: int | str = "all") -> list[int]:
        return await _ssh.on_portal(self._run_bash(command, node))

    def run_bash(self, command: str, node: int | str = "all") -> list[int]:
        """Run a shell command on hosts (``"all"``, an index or an address), printing each line
        as ``[host] line`` as it comes; returns the exit codes, one per host, in host order."""
        return run_sync(self.arun_bash, command, node, hint="`await cluster.arun_bash(command)`")

    async def _run_bash(self, command: str, node: int | str) -> list[int]:
        async def one(i: int) -> int:
            host = self.hosts[i]
            status, _ = await _ssh.run(
                await self._conn(i),
                command,
                on_line=lambda line: print(f"[{host}] {line}", end="", flush=True),
            )
            return status

        return list(await asyncio.gather(*(one(i) for i in self._nodes(node))))

    def rsync(self, source: str, dest: str, *, up: bool = True, node: int | str = "all") -> None:
        """Copy ``source`` to ``dest``: up (here -> hosts; directories incrementally, honouring
        ignore files) or down (``up=False``: from one host to here)."""
        run_sync(self.arsync, source, dest, up=up, node=node, hint="`await cluster.arsync(...)`")

    async def arsync(
        self, source: str, dest: str, *, up: bool = True, node: int | str = "all"
    ) -> None:
        await _ssh.on_portal(self._rsync(source, dest, up, node))

    async def _rsync(self, source: str, dest: str, up: bool, node: int | str) -> None:
        if not up:
            if node == "all":
                raise ValueError("rsync down (up=False) copies from one host: pass node=")
            conn = await self._conn(self.node_index(node))
            remote = await _ssh.absolute(conn, source)
            async with conn.start_sftp_client() as sftp:
                await sftp.get(remote, dest, recurse=True, preserve=True)
            return
        path, is_dir = _sync.local_path(source)
        for i in self._nodes(node):
            conn = await self._conn(i)
            if is_dir:
                files = _sync.project_files(path)
                _sync.check_size(path, files)
                await _sync.sync_host(
                    conn, path, files, functools.partial(_say, self.hosts[i]), dest=dest
                )
            else:
                await _ssh.put_file(conn, path, dest)

    def ssh(self, node: int | str = 0, command: str | None = None) -> int:
        """Open an interactive shell on a host (or run ``command`` there) with the system's ssh."""
        host = self.hosts[self.node_index(node)]
        args = ["ssh", *self.creds.ssh_args(host)]
        if command is not None:
            args.append(command)
        return subprocess.call(args)

    # -- autostop --------------------------------------------------------------------------------

    async def aset_autostop(self, mins: float) -> float:
        previous = float(await self.acall("__node__.0", "set_autostop", mins))
        self.autostop_mins = float(mins)
        return previous

    def keep_warm(self, mins: float = -1) -> SSHCluster:
        """Set autostop to ``mins`` minutes of inactivity (-1: never stop)."""
        run_sync(self.aset_autostop, mins, hint="`await cluster.aset_autostop(mins)`")
        return self

    @contextlib.contextmanager
    def pause_autostop(self) -> Iterator[None]:
        """No autostop inside the block; the previous setting comes back after it."""
        previous = run_sync(self.aset_autostop, -1, hint="`await cluster.aset_autostop(-1)`")
        try:
            yield
        finally:
            run_sync(self.aset_autostop, previous, hint="`await cluster.aset_autostop(mins)`")

    def __repr__(self) -> str:
        return f"<SSHCluster {self.name!r} hosts={self.hosts}>"


async def _all(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run concurrently; on the first failure cancel the rest, wait for them, raise it plainly
    (not as an ExceptionGroup: the caller wants the one host's clear error)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    if not tasks:
        return []
    await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
    if failed:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        exc = failed[0].exception()
        assert exc is not None
        raise exc
    return [t.result() for t in tasks]


def _read(root: Path, name: str) -> bytes:
    return (root / name).read_bytes()


async def _remote_command(conn: asyncssh.SSHClientConnection, command: str) -> str:
    """``python -m rhzmq._remote <command>`` with the host's rhzmq, if it is installed."""
    where = await _ssh.remote_home(conn)
    python = shlex.quote(where.python)
    return f"test -x {python} && {where.env()} {python} -m rhzmq._remote {command}"
