"""The embedded cluster: ``rh.cluster("local")`` (also ``rh.here``), one daemon on this machine
per ``RHZMQ_HOME`` that outlives the script that started it.

``up_if_not()`` starts the daemon (``python -m rhzmqd``) detached and reads its start-up
handshake (:mod:`rhzmq.wire.handshake`) from a pipe; the daemon records where it serves in
``$RHZMQ_HOME/local/daemon.json``, which every later client reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio

from .._env import Env, EnvLike, as_env
from ..wire import config as _config
from ..wire import handshake
from ..wire.client import Client, drop_client, get_client, local_broker
from ..wire.exceptions import CallTimeout, ClusterError, ClusterNotRunning
from ..wire.launch import DaemonArgs
from ..wire.protocol import Cmd, name_problem
from ..wire.settings import DEFAULT_GATEWAY_PORT, START_TIMEOUT, STOP_TIMEOUT
from .base import Cluster


class LocalCluster(Cluster):
    """The daemon on this machine; see the module docstring."""

    kind = "local"

    def __init__(
        self,
        name: str = "local",
        *,
        gateway_port: int | None = DEFAULT_GATEWAY_PORT,
        port: int = 0,
        token: str | None = None,
        bind: str = "127.0.0.1",
        default_env: EnvLike | dict[str, Any] = None,
    ) -> None:
        # Any name: saved under another one (cluster.save(name="mine")) it is still this
        # machine's daemon. rh.cluster("other") without hosts only finds saved clusters.
        problem = name_problem(name, "cluster name")
        if problem:
            raise ClusterError(problem)
        self.name = name
        self.gateway_port = gateway_port
        self.port = port
        self.token = token
        self.bind = bind
        self._endpoint: str | None = None
        self._curve: dict[str, bytes] | None = None
        self._default_env = (
            Env.from_config(default_env) if isinstance(default_env, dict) else as_env(default_env)
        )

    @property
    def broker_endpoint(self) -> str:
        """The broker's ZeroMQ endpoint; ClusterNotRunning if the daemon is not up."""
        if self._endpoint is None:
            self._endpoint, self._curve = local_broker(self.name)
        return self._endpoint

    def curve_keys(self) -> dict[str, bytes] | None:
        """CURVE keys when the daemon is reachable beyond loopback (see rhzmq.wire.curve)."""
        self.broker_endpoint  # noqa: B018 - resolves the state (and the keys) once, then cached
        return self._curve

    async def aclient(self) -> Client:
        # The daemon is reached directly (no tunnel in this process): waits may spin.
        return get_client(self.broker_endpoint, self.curve_keys(), spin=True)

    def _connected_endpoint(self) -> str | None:
        return self._endpoint

    @property
    def gateway_url(self) -> str | None:
        state = _config.read_state()
        return state.get("gateway") if state else None

    @property
    def gateway_token(self) -> str | None:
        """The bearer token the local gateway requires (``rhzmq token`` prints it)."""
        return _config.gateway_token()

    def gateway_headers(self) -> dict[str, str]:
        token = self.gateway_token
        return {"Authorization": f"Bearer {token}"} if token else {}

    # -- lifecycle ---------------------------------------------------------------------------

    async def ais_up(self) -> bool:
        self._endpoint = None  # the daemon may have been restarted elsewhere: read its state
        try:
            self.broker_endpoint  # noqa: B018
        except ClusterNotRunning:
            return False
        return await super().ais_up()

    async def aup_if_not(self) -> LocalCluster:
        """Start the local daemon unless it is already up; returns the cluster."""
        if await self.ais_up():
            self._check_default_env()
            return self
        async with _start_lock():
            if not await self.ais_up():  # another process may have started it meanwhile
                args = DaemonArgs(
                    port=self.port,
                    host=self.bind,
                    gateway_port=self.gateway_port,
                    default_env=self._write_default_env(),
                )
                await _start_daemon(args, self.token)
        self._endpoint = None
        self._check_default_env()
        return self

    def _default_env_spec(self) -> dict[str, Any] | None:
        if self._default_env is None:
            return None
        spec = self._default_env.spec()
        # The daemon records this hash in daemon.json: secret values are not in it (names only).
        shown = {**spec, "secrets": sorted(spec.get("secrets") or {})}
        shown["secret_files"] = sorted(spec.get("secret_files") or {})
        spec["hash"] = hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:16]
        return spec

    def _write_default_env(self) -> str | None:
        """The default env's spec, for the daemon, in an owner-only file (it may hold secrets)."""
        spec = self._default_env_spec()
        if spec is None:
            return None
        path = _config.local_dir() / "default_env.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(spec, f)
        return str(path)

    def _check_default_env(self) -> None:
        spec = self._default_env_spec()
        state = _config.read_state() or {}
        if spec is not None and state.get("default_env") != spec["hash"]:
            raise ClusterError(
                f"cluster {self.name!r} is already running with "
                f"{'another' if state.get('default_env') else 'no'} default env, not "
                f"{self._default_env!r}: stop it first (cluster.teardown() or `rhzmq stop`), "
                "then up_if_not() starts it with this one"
            )

    @property
    def default_env(self) -> Env:
        """The env of the default worker: ``default_env=`` (named ``default`` on the cluster),
        else the daemon's own Python."""
        if self._default_env is None:
            return super().default_env
        env = super().default_env  # named "default", used as it runs (never redefined)
        env.reqs = list(self._default_env.reqs)
        env.env_vars = dict(self._default_env.env_vars)
        env.setup_cmds = list(self._default_env.setup_cmds)
        return env

    async def ateardown(self) -> None:
        state = _config.read_state()
        if not state or not _config.pid_alive(int(state.get("pid", 0))):
            return
        pid = int(state["pid"])
        try:
            client = await self.aclient()
            await client.control(Cmd.SHUTDOWN, timeout=STOP_TIMEOUT)
            drop_client(client.endpoint)
        except (ClusterNotRunning, CallTimeout):
            os.kill(pid, signal.SIGTERM)  # the broker does not answer: stop the process itself
        await anyio.to_thread.run_sync(_wait_gone, pid, STOP_TIMEOUT)
        self._endpoint = None

    async def aspawn(self, spec: dict[str, Any]) -> list[str]:
        node = (spec.get("compute") or {}).get("node", 0)
        if node not in (0, "0"):
            raise ValueError(
                f"env {spec['name']!r} asks for node {node!r}, but cluster {self.name!r} is this "
                "machine alone (node 0); nodes are the hosts of an SSH cluster"
            )
        return await super().aspawn(spec)

    def config(self) -> dict[str, Any]:
        return {
            "type": "cluster",
            "name": self.name,
            "gateway_port": self.gateway_port,
            "port": self.port,
            "bind": self.bind,
            **({"default_env": self._default_env.config()} if self._default_env else {}),
        }


@contextlib.asynccontextmanager
async def _start_lock() -> AsyncIterator[None]:
    """One starter at a time per RHZMQ_HOME (processes racing to ``up_if_not()``)."""
    async with await anyio.open_file(_config.local_dir() / "start.lock", "w") as f:
        fd = f.wrapped.fileno()
        await anyio.to_thread.run_sync(fcntl.flock, fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


async def _start_daemon(args: DaemonArgs, token: str | None) -> dict[str, Any]:
    """Start the daemon detached and wait for its READY line (see rhzmq.wire.handshake)."""
    read_fd, write_fd = os.pipe()
    args = dataclasses.replace(args, detach=True, ready_fd=write_fd)
    env = dict(os.environ)
    if token:
        env["RHZMQ_TOKEN"] = token  # via the environment: never visible in `ps`
    log_path = _config.log_file()
    try:
        async with await anyio.open_file(log_path, "ab") as log:
            launcher = await anyio.open_process(
                args.command(),
                stdin=subprocess.DEVNULL,
                stdout=log.wrapped,
                stderr=log.wrapped,
                pass_fds=(write_fd,),
                env=env,
            )
        os.close(write_fd)
        await launcher.wait()  # it forks the daemon and exits at once
        print(f"rhzmq: starting the local cluster (log {log_path})", file=sys.stderr, flush=True)
        with anyio.move_on_after(START_TIMEOUT):
            line = await handshake.read_ready(
                handshake.fd_chunks(read_fd),
                lambda text: print(f"rhzmq: {text}", file=sys.stderr, flush=True),
            )
            if line is None:
                tail = log_path.read_text(errors="replace").splitlines()[-15:]
                raise ClusterError(
                    "the local daemon exited during start-up. Its log ends with:\n  "
                    + "\n  ".join(tail)
                )
            state = line.json()
            extra = f", HTTP gateway {state['gateway']}" if state.get("gateway") else ""
            print(
                f"rhzmq: local cluster up (pid {state['pid']}): broker {state['endpoint']}{extra}",
                file=sys.stderr,
                flush=True,
            )
            return state
        raise ClusterError(
            f"the local daemon did not start within {START_TIMEOUT:g} s; see {log_path}"
        )
    finally:
        os.close(read_fd)


def _wait_gone(pid: int, timeout: float) -> None:
    """Wait for a (non-child) process to exit: there is no handle to block on, so poll its pid."""
    deadline = time.monotonic() + timeout
    while _config.pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.02)


__all__ = ["DEFAULT_GATEWAY_PORT", "LocalCluster"]
