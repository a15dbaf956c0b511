"""``SSHCluster``: a cluster on hosts reached over SSH (``rh.cluster(name, host=[...], ...)``).

Shape: the first host is the *head* (broker, default worker, HTTP gateway, node agent 0); every
other host runs a *node daemon* (a supervisor and node agent ``__node__.<i>``) whose workers
connect to the head's broker with CURVE (:mod:`.keys`). The client reaches the broker and gateway
through SSH forwards only (:mod:`.tunnel`).

``up_if_not`` on every host in parallel: probe, install this build where it differs
(:mod:`.bootstrap`), then start the daemons — head first. Installs finish on every host before
any daemon starts, and a daemon failing to start stops those already started, so one bad host
never leaves a half-started cluster. Each host's ``RHZMQ_HOME`` is resolved once per connection
(:class:`.transport.RemoteHome`), so client and daemon agree on where keys and token live.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import asyncssh
import msgpack

from ..._portal import run_sync
from ..._tasks import gather
from ...wire import config as _config
from ...wire.build import build_id, build_wheel, wheel_version
from ...wire.client import Client, call_meta, drop_client, get_client
from ...wire.exceptions import CallTimeout, ClusterNotRunning, ObjectNotFound, WorkerDiedError
from ...wire.launch import DaemonArgs
from ...wire.protocol import Cmd, node_agent
from ...wire.settings import (
    DEFAULT_GATEWAY_PORT,
    DEFAULT_SERVER_PORT,
    NODE_INFO_TIMEOUT,
    STOP_TIMEOUT,
)
from ..base import Cluster
from . import bootstrap, code_sync, transport
from .bootstrap import say
from .keys import ClusterKeys, put_keys
from .tunnel import Tunnel, open_tunnel

DEFAULT_AUTOSTOP_MINS = 60
_INFO_META = call_meta("info")


class SSHCluster(Cluster):
    """A cluster on hosts reached over SSH; see the module docstring."""

    kind = "ssh"

    def __init__(
        self,
        name: str,
        host: str | Sequence[str],
        *,
        ssh_creds: dict[str, Any] | None = None,
        server_port: int = DEFAULT_SERVER_PORT,
        gateway_port: int | None = DEFAULT_GATEWAY_PORT,
        autostop_mins: float = DEFAULT_AUTOSTOP_MINS,
        tunnel_workers: bool = False,
        install_python: str = "auto",
    ) -> None:
        if name == "local" or not name:
            raise ValueError("an SSH cluster needs its own name (not 'local')")
        self.name = name
        self.hosts = self._check_hosts(host)
        self.creds = transport.SSHCreds.from_dict(ssh_creds)
        self.server_port = int(server_port)
        self.gateway_port = gateway_port
        self.autostop_mins = float(autostop_mins)
        self.tunnel_workers = bool(tunnel_workers)
        if install_python not in bootstrap.INSTALL_PYTHON:
            raise ValueError(
                f"install_python must be one of {bootstrap.INSTALL_PYTHON}, got {install_python!r}"
            )
        self.install_python = install_python
        self._keys = ClusterKeys(name)
        self._tunnel: Tunnel | None = None
        self._synced: dict[Path, dict[str, tuple[int, int]]] = {}

    @staticmethod
    def _check_hosts(host: str | Sequence[str]) -> list[str]:
        hosts = [host] if isinstance(host, str) else list(host)
        if not hosts or not all(isinstance(h, str) and h for h in hosts):
            raise ValueError(f"host must be an address or a list of addresses, got {host!r}")
        if len(set(hosts)) != len(hosts):
            raise ValueError(f"a host appears twice in {hosts}")
        return hosts

    def config(self) -> dict[str, Any]:
        return {
            "type": "cluster",
            "kind": self.kind,
            "name": self.name,
            "host": self.hosts,
            "ssh_creds": self.creds.to_dict(),
            "server_port": self.server_port,
            "gateway_port": self.gateway_port,
            "autostop_mins": self.autostop_mins,
            "tunnel_workers": self.tunnel_workers,
            "install_python": self.install_python,
        }

    # -- keys and addresses ----------------------------------------------------------------------

    @property
    def gateway_token(self) -> str:
        """The bearer token of the head's HTTP gateway: even on the head's loopback, other
        users of that machine must not be able to call the cluster's objects."""
        return self._keys.gateway_token()

    def gateway_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.gateway_token}"}

    def curve_keys(self) -> dict[str, bytes]:
        return self._keys.curve()

    @property
    def broker_endpoint(self) -> str:
        if self._tunnel is None:
            raise ClusterNotRunning(
                f"not connected to cluster {self.name!r} yet: call cluster.up_if_not() (or any "
                "cluster method, which connects through SSH first)"
            )
        return self._tunnel.endpoint

    @property
    def gateway_url(self) -> str | None:
        """The head's HTTP gateway through this process's SSH tunnel (once connected)."""
        return self._tunnel.gateway_url if self._tunnel else None

    async def aclient(self) -> Client:
        if self._tunnel is not None and self._tunnel.conn.is_closed():
            self._disconnect()  # the SSH connection dropped: its forwards are gone, remake them
        if self._tunnel is None:
            await transport.on_portal(self._aconnect())
        return get_client(self.broker_endpoint, self.curve_keys())

    def _connected_endpoint(self) -> str | None:
        tunnel = self._tunnel
        return None if tunnel is None or tunnel.conn.is_closed() else tunnel.endpoint

    async def _conn(self, index: int) -> asyncssh.SSHClientConnection:
        return await transport.connect(self.hosts[index], self.creds)

    async def _aconnect(self) -> None:
        """Tunnel to the running head (portal loop)."""
        if self._tunnel is not None:
            return
        conn = await self._conn(0)
        state = (await bootstrap.probe(conn)).get("daemon")
        if not state or state.get("role") != "head":
            raise ClusterNotRunning(
                f"cluster {self.name!r} is not running on {self.hosts[0]}. Start it with "
                f"rh.cluster({self.name!r}).up_if_not()."
            )
        nodes = []
        if self.tunnel_workers:
            nodes = [(self.hosts[i], await self._conn(i)) for i in range(1, len(self.hosts))]
        self._tunnel = await open_tunnel(conn, state, nodes=nodes, node_port=self.server_port + 1)

    def _disconnect(self) -> None:
        if self._tunnel is not None:
            drop_client(self._tunnel.endpoint)
            self._tunnel.close()
        self._tunnel = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def ais_up(self) -> bool:
        try:
            await (await self.aclient()).control(Cmd.PING, timeout=5.0)
        except (ClusterNotRunning, CallTimeout):
            self._disconnect()
            return False
        return True

    async def aup_if_not(self, *, restart: bool = False) -> SSHCluster:
        """Bootstrap every host that needs it and start the daemons; returns the cluster."""
        await transport.on_portal(self._aup(restart))
        return self

    def restart_server(self) -> SSHCluster:
        """Restart the daemons on every host (reinstalling rhzmq where the build differs)."""
        run_sync(self.aup_if_not, restart=True, hint="`await cluster.aup_if_not(restart=True)`")
        return self

    async def _aup(self, restart: bool) -> None:
        wheel = build_wheel(_config.home() / "wheels")
        build = build_id()
        conns = await gather(*(self._conn(i) for i in range(len(self.hosts))))
        probes = await gather(*(bootstrap.probe(c) for c in conns))
        # 1. Install where the build differs, everywhere, before starting anything.
        await gather(
            *(
                bootstrap.install(c, h, wheel, self.install_python)
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
                say(h, f"up (rhzmq {wheel_version()}), nothing to do")
            await self._aconnect()
            return
        tunnel = self._tunnel
        self._disconnect()
        if tunnel is not None:
            await tunnel.aclose()  # with tunnel_workers the hosts' ports are needed again
        started: list[int] = []

        async def start(i: int) -> None:
            await self._start(conns, i)
            started.append(i)

        try:
            if not wanted[0]:
                await start(0)
            if self.tunnel_workers:
                await self._aconnect()  # opens the hosts' forwards to the head first
            await gather(*(start(i) for i in range(1, len(self.hosts)) if not wanted[i]))
        except BaseException:
            # Whatever stopped us (a bad host, Ctrl-C), no half-started cluster stays behind.
            with anyio.CancelScope(shield=True):
                async with anyio.create_task_group() as tg:
                    for i in started:
                        tg.start_soon(self._stop_quietly, conns[i], self.hosts[i])
            raise
        await self._aconnect()

    @staticmethod
    async def _stop_quietly(conn: asyncssh.SSHClientConnection, host: str) -> None:
        try:
            await bootstrap.stop_daemon(conn, host)
        except Exception as exc:  # cleaning up after another error: report, do not mask it
            say(host, f"could not stop the daemon: {exc}")

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

    async def _start(self, conns: Sequence[asyncssh.SSHClientConnection], index: int) -> None:
        conn, host = conns[index], self.hosts[index]
        await bootstrap.stop_daemon(conn, host)  # an old daemon (another build, config) first
        await put_keys(conn, self._keys.files_for(index, len(self.hosts)), head=index == 0)
        args = self._daemon_args(index)
        if index == 0:
            # Clients come through SSH, and so do workers with tunnel_workers: then loopback is
            # enough. Otherwise the other hosts connect directly (with CURVE).
            bind = "127.0.0.1" if len(self.hosts) == 1 or self.tunnel_workers else "0.0.0.0"
            args = dataclasses.replace(args, curve=True, host=bind, port=self.server_port)
            if self.gateway_port is not None:
                token_file = f"{(await transport.remote_home(conn)).curve}/gateway.token"
                args = dataclasses.replace(
                    args, gateway_port=self.gateway_port, token_file=token_file
                )
        else:
            args = dataclasses.replace(args, head=self._head_endpoint())
        await bootstrap.start_daemon(conn, host, args)

    def _daemon_args(self, index: int) -> DaemonArgs:
        """Host ``index``'s daemon arguments before the head's bind and the node's head."""
        return DaemonArgs(
            node_index=index, node_label=self.hosts[index], autostop_mins=self.autostop_mins
        )

    async def ateardown(self) -> None:
        """Stop the daemons and workers on every host (installed software stays)."""
        await transport.on_portal(self._ateardown())

    async def _ateardown(self) -> None:
        try:
            client = await self.aclient()
            await client.control(Cmd.SHUTDOWN, timeout=STOP_TIMEOUT)
        except (ClusterNotRunning, CallTimeout):
            pass  # not running, or not answering: the per-host stop below handles it
        self._disconnect()
        conns = await gather(*(self._conn(i) for i in range(len(self.hosts))))
        await gather(*(bootstrap.stop_daemon(c, h) for c, h in zip(conns, self.hosts, strict=True)))

    # -- placement and code ----------------------------------------------------------------------

    def node_index(self, node: int | str) -> int:
        """A host's index from an index or an address (``env(compute={"node": ...})``)."""
        if isinstance(node, int) and not isinstance(node, bool):
            if 0 <= node < len(self.hosts):
                return node
        elif isinstance(node, str):
            if node in self.hosts:
                return self.hosts.index(node)
            resolved = [transport.resolve(h) for h in self.hosts]
            if transport.resolve(node) in resolved:
                return resolved.index(transport.resolve(node))
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
        # Tell the head first where it runs: only host ``index``'s key may register its workers.
        client = await self.aclient()
        await client.control(
            Cmd.PLACE, frames=[msgpack.packb({"group": spec["name"], "node": index})]
        )
        result = await self.acall(node_agent(index), "spawn", spec)
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
        if not code_sync.is_project_dir(path):
            return path
        root = code_sync.project_root(path)
        files = code_sync.project_files(root)
        if self._synced.get(root) != files:
            code_sync.check_size(root, files)
            await transport.on_portal(self._sync_all(root, files))
            self._synced[root] = files
        return code_sync.remote_path(path, root)

    async def _sync_all(self, root: Path, files: dict[str, tuple[int, int]]) -> None:
        async def one(i: int) -> None:
            host = self.hosts[i]
            await code_sync.sync_host(
                await self._conn(i), root, files, functools.partial(say, host)
            )

        await gather(*(one(i) for i in range(len(self.hosts))))

    async def adelete(self, names: str | Sequence[str]) -> None:
        names = [names] if isinstance(names, str) else list(names)
        envs = {w["env"] for w in (await self.astatus())["workers"]}
        await super().adelete(names)
        for name in names:
            if name in envs:  # an environment: its workers on the other hosts stop too
                await gather(
                    *(
                        self.acall(node_agent(i), "stop_group", name)
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
        client = await self.aclient()

        async def node(i: int) -> dict[str, Any]:
            try:
                info = await client.call(
                    node_agent(i).encode(),
                    _INFO_META,
                    label=f"{node_agent(i)}.info",
                    timeout=NODE_INFO_TIMEOUT,
                )
                return dict(info)
            except (ObjectNotFound, CallTimeout, WorkerDiedError):
                # A node daemon that is restarting is waited for, but only this long: status()
                # is for looking, not for waiting.
                return {"index": i, "address": self.hosts[i], "up": False}

        status["nodes"] = await gather(*(node(i) for i in range(len(self.hosts))))
        return status

    async def arun_bash(self, command: str, node: int | str = "all") -> list[int]:
        return await transport.on_portal(self._run_bash(command, node))

    def run_bash(self, command: str, node: int | str = "all") -> list[int]:
        """Run a shell command on hosts (``"all"``, an index or an address), printing each line
        as ``[host] line`` as it comes; returns the exit codes, one per host, in host order."""
        return run_sync(self.arun_bash, command, node, hint="`await cluster.arun_bash(command)`")

    async def _run_bash(self, command: str, node: int | str) -> list[int]:
        async def one(i: int) -> int:
            host = self.hosts[i]
            status, _ = await transport.run(
                await self._conn(i),
                command,
                on_line=lambda line: print(f"[{host}] {line}", end="", flush=True),
            )
            return status

        return await gather(*(one(i) for i in self._nodes(node)))

    def rsync(self, source: str, dest: str, *, up: bool = True, node: int | str = "all") -> None:
        """Copy ``source`` to ``dest``: up (here -> hosts; directories incrementally, honouring
        ignore files) or down (``up=False``: from one host to here)."""
        run_sync(self.arsync, source, dest, up=up, node=node, hint="`await cluster.arsync(...)`")

    async def arsync(
        self, source: str, dest: str, *, up: bool = True, node: int | str = "all"
    ) -> None:
        await transport.on_portal(self._rsync(source, dest, up, node))

    async def _rsync(self, source: str, dest: str, up: bool, node: int | str) -> None:
        if not up:
            if node == "all":
                raise ValueError("rsync down (up=False) copies from one host: pass node=")
            conn = await self._conn(self.node_index(node))
            remote = await transport.absolute(conn, source)
            async with conn.start_sftp_client() as sftp:
                await sftp.get(remote, dest, recurse=True, preserve=True)
            return
        path, is_dir = code_sync.local_path(source)
        for i in self._nodes(node):
            conn = await self._conn(i)
            if is_dir:
                files = code_sync.project_files(path)
                code_sync.check_size(path, files)
                await code_sync.sync_host(
                    conn, path, files, functools.partial(say, self.hosts[i]), dest=dest
                )
            else:
                await transport.put_file(conn, path, dest)

    def ssh(self, node: int | str = 0, command: str | None = None) -> int:
        """Open an interactive shell on a host (or run ``command`` there) with the system's ssh."""
        host = self.hosts[self.node_index(node)]
        args = ["ssh", *self.creds.ssh_args(host)]
        if command is not None:
            args.append(command)
        return subprocess.call(args)

    def _hosts_me(self) -> bool:
        return os.environ.get("RHZMQ_NODE_ADDRESS") in self.hosts

    # -- keys ------------------------------------------------------------------------------------

    async def arevoke_node(self, node: int | str) -> None:
        """Take host ``node``'s key off the head's allow-list (a host you no longer trust): the
        head refuses it from now on and drops that host's workers and agent within a second.
        Its objects are gone; ``restart_server()`` gives the host a new key."""
        index = self.node_index(node)
        if index == 0:
            raise ValueError("the head's key cannot be revoked: tear the cluster down instead")
        conn = await self._conn(0)
        where = await transport.remote_home(conn)
        async with conn.start_sftp_client() as sftp:
            path = f"{where.curve}/authorized/node-{index}.key"
            if await sftp.exists(path):
                await sftp.remove(path)
        self._keys.revoke(index)

    def revoke_node(self, node: int | str) -> None:
        """Take host ``node``'s key off the head's allow-list; see :meth:`arevoke_node`."""
        run_sync(self.arevoke_node, node, hint="`await cluster.arevoke_node(node)`")

    # -- autostop --------------------------------------------------------------------------------

    async def aset_autostop(self, mins: float) -> float:
        previous = float(await self.acall(node_agent(0), "set_autostop", mins))
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
