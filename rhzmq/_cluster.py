"""Clusters: where objects live. ``rh.cluster("local")`` is the embedded default: a daemon on this
machine (broker + default worker) that outlives the script that started it.

Every operation is written once, ``async`` (``akeys``, ``aput``, ...); the plain methods run that
code through the portal (:mod:`rhzmq._portal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio

from . import _config
from ._client import Client, call_meta, drop_client, get_client
from ._curve import client_keys
from ._exceptions import CallTimeout, ClusterError, ClusterNotRunning, ObjectNotFound
from ._portal import run_sync
from ._protocol import Cmd, pack_meta
from ._serialization import dumps
from ._specs import object_spec
from ._store import Resource, load_config
from ._stubs import RemoteObject

START_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
DEFAULT_GATEWAY_PORT: int | None = 32300


class Cluster(Resource):
    """A set of nodes running one broker; see ``rh.cluster``."""

    resource_type = "cluster"

    def __init__(
        self,
        name: str = "local",
        *,
        gateway_port: int | None = DEFAULT_GATEWAY_PORT,
        port: int = 0,
        token: str | None = None,
        bind: str = "127.0.0.1",
    ) -> None:
        if name != "local":
            raise ClusterError(
                f"Cluster({name!r}): the embedded cluster is called 'local'; for machines over "
                "SSH use rh.cluster(name, host=[...], ssh_creds={...})."
            )
        self.name = name
        self.gateway_port = gateway_port
        self.port = port
        self.token = token
        self.bind = bind
        self._endpoint: str | None = None
        self._curve: dict[str, bytes] | None = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The broker's ZeroMQ endpoint; ClusterNotRunning if the daemon is not up."""
        if self._endpoint is None:
            state = _config.read_state()
            if not state or not _config.pid_alive(int(state.get("pid", 0))):
                raise ClusterNotRunning(
                    f"cluster {self.name!r} is not running. Start it with "
                    f"rh.cluster({self.name!r}).up_if_not() or `rhzmq start`."
                )
            self._endpoint = str(state["endpoint"])
            self._curve = None
            if state.get("curve"):
                self._curve = client_keys(Path(state["curve"]))
        return self._endpoint

    def curve_keys(self) -> dict[str, bytes] | None:
        """CURVE keys when the daemon is reachable beyond loopback (see rhzmq._curve)."""
        self.endpoint  # noqa: B018 - resolves the state (and the keys) once, then cached
        return self._curve

    async def aclient(self) -> Client:
        """This loop's client for the cluster's broker (connecting first where that takes work,
        e.g. an SSH tunnel)."""
        return get_client(self.endpoint, self.curve_keys())

    async def _control(self, cmd: Cmd, *args: Any, **kwargs: Any) -> Any:
        return await (await self.aclient()).control(cmd, *args, **kwargs)

    @property
    def gateway_url(self) -> str | None:
        state = _config.read_state()
        return state.get("gateway") if state else None

    # -- lifecycle ---------------------------------------------------------------------------

    def is_up(self) -> bool:
        """Whether the daemon runs and answers."""
        self._endpoint = None
        try:
            self.endpoint  # noqa: B018 - reads the state file
            run_sync(self._aping, hint="`await cluster.astatus()`")
        except ClusterNotRunning:
            return False
        return True

    async def _aping(self) -> Any:
        try:
            return await self._control(Cmd.PING, timeout=5.0)
        except CallTimeout:
            raise ClusterNotRunning(
                f"the daemon of cluster {self.name!r} does not answer"
            ) from None

    def up_if_not(self) -> Cluster:
        """Start the local daemon unless it is already up; returns the cluster (for chaining)."""
        if self.is_up():
            return self
        with _start_lock():
            if not self.is_up():  # another process may have started it meanwhile
                _start_daemon(self.port, self.gateway_port, self.token, self.bind)
        self._endpoint = None
        return self

    def up(self) -> Cluster:
        return self.up_if_not()

    def teardown(self) -> None:
        """Stop the daemon and every worker; objects on it are gone."""
        run_sync(self.ateardown, hint="`await cluster.ateardown()`")

    async def ateardown(self) -> None:
        state = _config.read_state()
        if not state or not _config.pid_alive(int(state.get("pid", 0))):
            return
        pid = int(state["pid"])
        try:
            await self._ashutdown()
        except (ClusterNotRunning, CallTimeout):
            os.kill(pid, signal.SIGTERM)  # the broker does not answer: stop the process itself
        await anyio.to_thread.run_sync(_wait_gone, pid, STOP_TIMEOUT)
        self._endpoint = None

    async def _ashutdown(self) -> None:
        client = await self.aclient()
        await client.control(Cmd.SHUTDOWN, timeout=STOP_TIMEOUT)
        drop_client(client.endpoint)

    # -- objects -----------------------------------------------------------------------------

    async def akeys(self) -> list[str]:
        return list(await self._control(Cmd.KEYS))

    def keys(self) -> list[str]:
        """Names of the objects on the cluster."""
        return run_sync(self.akeys, hint="`await cluster.akeys()`")

    async def astatus(self) -> dict[str, Any]:
        return dict(await self._control(Cmd.STATUS))

    def status(self) -> dict[str, Any]:
        """The broker's view: workers (pid, objects, calls in flight), objects, versions."""
        return run_sync(self.astatus, hint="`await cluster.astatus()`")

    async def aput_spec(
        self,
        name: str,
        spec: dict[str, Any],
        *,
        worker: str | None = None,
        max_concurrency: int | None = None,
    ) -> dict[str, Any]:
        """Send an object spec to a worker under ``name``; returns the worker's description."""
        _check_name(name)
        meta: dict[str, Any] = {"worker": worker or "default"}
        if max_concurrency is not None:
            meta["max_concurrency"] = max_concurrency
        info = await self._control(Cmd.PUT, name, [pack_meta(meta), *dumps(spec)], label=name)
        return dict(info)

    async def aspawn(self, spec: dict[str, Any]) -> list[str]:
        """Make sure an environment's workers run (see rhzmq._env); returns their names."""
        node = (spec.get("compute") or {}).get("node", 0)
        if node not in (0, "0"):
            raise ValueError(
                f"env {spec['name']!r} asks for node {node!r}, but cluster {self.name!r} is this "
                "machine alone (node 0); nodes are the hosts of an SSH cluster"
            )
        result = await self._control(
            Cmd.SPAWN, spec["name"], [pack_meta(spec)], label=f"env {spec['name']}"
        )
        return list(result["workers"])

    async def aplace(
        self,
        name: str,
        spec: dict[str, Any],
        env: Any = None,
        replicas: int = 1,
        max_concurrency: int | None = None,
    ) -> dict[str, Any]:
        """Send an object spec to the default worker, or to every replica of ``env``."""
        if env is None and replicas == 1:
            return await self.aput_spec(name, spec, max_concurrency=max_concurrency)
        if env is None:
            from ._env import Env

            env = Env(name=f"{name}-replicas")
        workers = await env.ato(self, replicas=replicas)
        infos = await asyncio.gather(
            *(
                self.aput_spec(name, spec, worker=w, max_concurrency=max_concurrency)
                for w in workers
            )
        )
        return dict(infos[0])

    async def aprocesses(self) -> list[dict[str, Any]]:
        return list((await self.astatus())["workers"])

    def processes(self) -> list[dict[str, Any]]:
        """Worker processes: name, env, pid, node, objects, calls in flight, CPU seconds, RSS."""
        return run_sync(self.aprocesses, hint="`await cluster.aprocesses()`")

    async def aput(self, name: str, obj: Any) -> None:
        await self.aput_spec(name, object_spec(obj, by_ref=False))

    def put(self, name: str, obj: Any) -> None:
        """Store ``obj`` (pickled) on the cluster under ``name``."""
        run_sync(self.aput, name, obj, hint=f"`await cluster.aput({name!r}, obj)`")

    async def aget(self, name: str, default: Any = None, *, remote: bool = False) -> Any:
        try:
            if remote:
                info = await self.acall(name, "__rh_describe__")
                if info.get("type") == "function":
                    from ._resources import Function

                    return Function._bound(self, name, info)
                return RemoteObject(self, name, info)
            return await self.acall(name, "__rh_value__")
        except ObjectNotFound:
            return default

    def get(self, name: str, default: Any = None, *, remote: bool = False) -> Any:
        """The object's value (a copy), or with ``remote=True`` a stub calling the remote object."""
        return run_sync(
            self.aget, name, default, remote=remote, hint=f"`await cluster.aget({name!r})`"
        )

    async def adelete(self, names: str | Sequence[str]) -> None:
        """Delete objects, or environments (their worker processes stop)."""
        client = await self.aclient()
        for name in [names] if isinstance(names, str) else names:
            await client.control(Cmd.DELETE, name)

    def delete(self, names: str | Sequence[str]) -> None:
        """Delete one or several objects from the cluster (ObjectNotFound if one is unknown)."""
        run_sync(self.adelete, names, hint="`await cluster.adelete(name)`")

    async def acall(self, name: str, method: str, *args: Any, **kwargs: Any) -> Any:
        client = await self.aclient()
        return await client.call(
            name.encode(),
            call_meta(method),
            args,
            kwargs,
            label=f"{name}.{method}" if method else name,
        )

    def call(self, name: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` of the object ``name`` (``""`` calls the object itself)."""
        return run_sync(
            functools.partial(self.acall, name, method, *args, **kwargs),
            hint=f"`await cluster.acall({name!r}, {method!r}, ...)`",
        )

    def config(self) -> dict[str, Any]:
        return {
            "type": "cluster",
            "name": self.name,
            "gateway_port": self.gateway_port,
            "port": self.port,
            "bind": self.bind,
        }

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Cluster:
        config = {k: v for k, v in config.items() if k != "type"}
        if config.get("host"):
            from ._cluster_ssh import SSHCluster

            return SSHCluster(**config)
        return Cluster(**config)

    def __repr__(self) -> str:
        return f"<Cluster {self.name!r}>"


def cluster(name: str = "local", host: str | Sequence[str] | None = None, **kwargs: Any) -> Any:
    """A cluster handle.

    * ``rh.cluster("local").up_if_not()`` starts the embedded local daemon;
    * ``rh.cluster(name="gpu", host=["10.0.0.5", ...], ssh_creds={"user": ..., "key": ...},
      server_port=32301, autostop_mins=60)`` is a cluster on those machines over SSH (see
      :mod:`rhzmq._cluster_ssh`);
    * ``rh.cluster(name="gpu")`` reconnects to a cluster saved with ``cluster.save()``.
    """
    if host is not None:
        from ._cluster_ssh import SSHCluster

        return SSHCluster(name, host, **kwargs)
    if name != "local":
        try:
            config = load_config(name, "cluster")
        except KeyError as exc:
            raise ClusterError(
                f"unknown cluster {name!r}: give its hosts (rh.cluster(name, host=[...], "
                f"ssh_creds=...)), or save it first with cluster.save(). {exc.args[0]}"
            ) from None
        config.update(kwargs)
        return Cluster.from_config(config)
    return Cluster(name, **kwargs)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name or len(name.encode()) > 1024 or "/" in name:
        raise ValueError(
            f"invalid object name {name!r}: use a non-empty string without '/', at most 1024 bytes"
        )


@contextlib.contextmanager
def _start_lock() -> Iterator[None]:
    with open(_config.local_dir() / "start.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _start_daemon(
    port: int, gateway_port: int | None, token: str | None, bind: str = "127.0.0.1"
) -> dict[str, Any]:
    """Start the daemon detached and wait for its READY line (see rhzmq._daemon)."""
    read_fd, write_fd = os.pipe()
    cmd = [
        sys.executable,
        "-m",
        "rhzmq._daemon",
        "--detach",
        "--port",
        str(port),
        "--ready-fd",
        str(write_fd),
        "--host",
        bind,
    ]
    if gateway_port is not None:
        cmd += ["--gateway-port", str(gateway_port)]
    env = dict(os.environ)
    if token:
        env["RHZMQ_TOKEN"] = token  # via the environment: never visible in `ps`
    log_path = _config.log_file()
    with open(log_path, "ab") as log:
        launcher = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write_fd,), env=env
        )
    os.close(write_fd)
    launcher.wait()  # it forks the daemon and exits at once
    print(f"rhzmq: starting the local cluster (log {log_path})", file=sys.stderr, flush=True)
    deadline = time.monotonic() + START_TIMEOUT
    buffer = b""
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                raise ClusterError(
                    f"the local daemon did not start within {START_TIMEOUT:g} s; see {log_path}"
                )
            chunk = pipe.read(4096)
            if not chunk:
                tail = log_path.read_text(errors="replace").splitlines()[-15:]
                raise ClusterError(
                    "the local daemon exited during start-up. Its log ends with:\n  "
                    + "\n  ".join(tail)
                )
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith("READY "):
                    state: dict[str, Any] = json.loads(text[6:])
                    extra = f", HTTP gateway {state['gateway']}" if state.get("gateway") else ""
                    print(
                        f"rhzmq: local cluster up (pid {state['pid']}): broker {state['endpoint']}{extra}",
                        file=sys.stderr,
                        flush=True,
                    )
                    return state
                if text.startswith("STEP "):
                    print(f"rhzmq: {text[5:]}", file=sys.stderr, flush=True)


def _wait_gone(pid: int, timeout: float) -> None:
    """Wait for a (non-child) process to exit: there is no handle to block on, so poll its pid."""
    deadline = time.monotonic() + timeout
    while _config.pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.02)
