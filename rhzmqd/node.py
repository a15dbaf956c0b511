"""What a daemon does for its host: environments as worker processes (:class:`Node`), the
broker's hooks on the head (:class:`LocalNode`), and the node agent every host serves as
``__node__.<index>`` (:class:`NodeAgent`), plus the state the daemon's tasks share
(:class:`DaemonState`)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgpack
from anyio.abc import TaskGroup

from broker import Broker
from rhzmq.wire import config as _config
from rhzmq.wire import secrets
from rhzmq.wire.build import build_id
from rhzmq.wire.curve import client_keys
from rhzmq.wire.exceptions import EnvError
from rhzmq.wire.protocol import NODE_GROUP, Partial, Status, name_problem, node_agent
from rhzmq.wire.settings import WORKER_START_TIMEOUT
from rhzmq.wire.version import __version__
from worker._envs import EnvInstallError, ensure_conda, ensure_venv, run_setup
from worker._supervisor import Supervisor
from worker._worker import Entry, Worker

log = logging.getLogger("rhzmq.daemon")


def deliver_secrets(env: str, meta: dict[str, Any]) -> dict[str, str]:
    """Write an env's secret files into its owner-only directory on this host (afresh: a new
    definition leaves no stale file) and return its secret variables, pointing there."""
    root = secrets.secrets_dir(env)
    secrets.remove(env)
    files = {str(k): str(v) for k, v in (meta.get("secret_files") or {}).items()}
    if files:
        secrets.write_files(root, files)
    return secrets.fill({str(k): str(v) for k, v in (meta.get("secrets") or {}).items()}, root)


class Node:
    """Environments as worker processes on this host; used by both :class:`LocalNode` (the head's
    broker hooks) and :class:`NodeAgent` (the other hosts).

    An environment (``rh.env``) becomes ``replicas`` workers named ``name``, ``name.1``, ...
    in group ``name``, running the env's Python (a cached venv when it has requirements) with its
    env vars and working directory. Asking again with the same spec is a no-op; a changed spec
    restarts the group.
    """

    def __init__(self, supervisor: Supervisor, tg: TaskGroup) -> None:
        self.supervisor = supervisor
        self.tg = tg
        self.specs: dict[str, str] = {}  # group -> hash of the spec its workers run
        #: The cluster's default env (rh.cluster(..., default_env=)): its reqs join every env's.
        self.default_env: dict[str, Any] = {}

    async def start_env(self, meta: dict[str, Any], progress: Callable[[str], None]) -> list[str]:
        """Make sure the env's workers run; returns their names. Raises EnvInstallError,
        TimeoutError (workers did not register) or ValueError (a bad spec)."""
        name = str(meta["name"])
        replicas = int(meta.get("replicas") or 1)
        problem = name_problem(name, "environment name")
        if problem or not 1 <= replicas <= 256:
            raise ValueError(problem or f"environment {name!r}: replicas must be 1 to 256")
        reqs = [str(r) for r in meta.get("reqs") or []]
        if self.default_env.get("reqs"):  # every env layered on the default env's requirements
            reqs = list(dict.fromkeys([*map(str, self.default_env["reqs"]), *reqs]))
        env_vars = {str(k): str(v) for k, v in (meta.get("env_vars") or {}).items()}
        if meta.get("existing"):
            # Named by a string (env="name"): the env as it runs, if it does; never redefined.
            running = self.supervisor.group_members(name)
            if running:
                return sorted(running)
            meta = {k: v for k, v in meta.items() if k != "existing"}
        key = json.dumps(meta, sort_keys=True, default=str)
        names = [name] + [f"{name}.{i}" for i in range(1, replicas)]
        if self.specs.get(name) == key and all(n in self.supervisor.processes for n in names):
            return names
        if name in self.specs or self.supervisor.group_members(name):
            progress(f"restarting environment {name!r} with its new definition\n")
            await self.supervisor.stop_workers(self.supervisor.group_members(name))
        if meta.get("conda"):
            python: str | None = await ensure_conda(meta["conda"], reqs, progress)
        else:
            python = await ensure_venv(reqs, progress) if reqs else None
        working_dir = _config.expand(meta.get("working_dir"))
        if meta.get("setup_cmds"):
            await run_setup(list(meta["setup_cmds"]), working_dir, progress)
        # Only now, as the env's workers (re)start: workers running on are never left with
        # variables pointing at files that were taken away.
        env_vars.update(deliver_secrets(name, meta))
        progress(f"starting {replicas} worker process{'es' if replicas > 1 else ''} for {name!r}\n")
        for n in names:
            self.tg.start_soon(self.supervisor.run_worker, n, env_vars, python, working_dir, name)
        with anyio.fail_after(WORKER_START_TIMEOUT):
            await self.supervisor.wait_registered(names)
        self.specs[name] = key
        return names

    async def stop_env(self, group: str) -> list[str]:
        members = self.supervisor.group_members(group)
        self.specs.pop(group, None)
        await self.supervisor.stop_workers(members)
        secrets.remove(group)  # the env's secret files go with it
        if members:
            log.info("environment %r deleted (workers %s stopped)", group, ", ".join(members))
        return members

    def owns(self, name: str, pid: int) -> bool:
        """Whether ``pid`` is this host's worker process called ``name``."""
        process = self.supervisor.processes.get(name)
        return process is not None and process.pid == pid


class LocalNode:
    """The broker's :class:`~broker.NodeHooks` on the head host: answers SPAWN and env DELETE."""

    def __init__(self, broker: Broker, node: Node) -> None:
        self.broker = broker
        self.node = node

    def spawn(self, cid: bytes, call_id: int, meta: dict[str, Any]) -> None:
        self.node.tg.start_soon(self._spawn, cid, call_id, meta)

    def stop_group(self, cid: bytes, call_id: int, group: str) -> None:
        self.node.tg.start_soon(self._stop_group, cid, call_id, group)

    def kill(self, name: str, pid: int) -> None:
        if self.node.owns(name, pid):  # a worker of another host is that host's business
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    async def _spawn(self, cid: bytes, call_id: int, meta: dict[str, Any]) -> None:
        def progress(text: str) -> None:
            self.broker.partial(cid, call_id, Partial.STDOUT, [text.encode()])

        try:
            names = await self.node.start_env(meta, progress)
            self.broker.reply(cid, call_id, Status.OK, [msgpack.packb({"workers": names})])
        except EnvInstallError as exc:
            self.broker.reply_error(cid, call_id, Status.ENV, str(exc))
        except TimeoutError:
            self.broker.reply_error(
                cid,
                call_id,
                Status.ENV,
                f"the workers of {meta.get('name')!r} did not start within {WORKER_START_TIMEOUT:g} s; see `rhzmq logs`",
            )
        except Exception as exc:
            log.exception("spawning %r failed", meta.get("name"))
            self.broker.reply_error(
                cid, call_id, Status.ENV, f"could not start environment {meta.get('name')!r}: {exc}"
            )

    async def _stop_group(self, cid: bytes, call_id: int, group: str) -> None:
        self.broker.forget_group(group)
        await self.node.stop_env(group)
        self.broker.reply(cid, call_id, Status.OK, [msgpack.packb(None)])


class NodeAgent:
    """What a client asks of one host of a multi-host cluster, served as the object
    ``__node__.<index>`` by a worker inside that host's daemon.

    Its calls are ordinary calls: ``print`` output streams to the caller (pip's lines while an
    environment installs), exceptions are re-raised there.
    """

    def __init__(self, daemon: DaemonState, node: Node) -> None:
        self.daemon = daemon
        self.node = node

    async def spawn(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Start an environment's workers on this host (``env(compute={"node": i})``)."""
        try:
            names = await self.node.start_env(meta, lambda text: print(text, end="", flush=True))
        except TimeoutError:
            raise EnvError(
                f"the workers of {meta.get('name')!r} on {self.daemon.label} did not start "
                f"within {WORKER_START_TIMEOUT:g} s; see {_config.log_file()} there"
            ) from None
        except EnvInstallError:
            raise
        except Exception as exc:
            raise EnvError(
                f"could not start environment {meta.get('name')!r} on {self.daemon.label}: {exc}"
            ) from None
        return {"workers": names}

    async def stop_group(self, group: str) -> list[str]:
        """Stop an environment's workers on this host; returns their names."""
        return await self.node.stop_env(group)

    async def info(self) -> dict[str, Any]:
        """This host: address, daemon pid, rhzmq build, Python, its workers, autostop."""
        return {
            "index": self.daemon.index,
            "address": self.daemon.label,
            "role": "head" if self.daemon.index == 0 else "worker node",
            "pid": os.getpid(),
            "version": __version__,
            "build": build_id(),
            "python": sys.version.split()[0],
            "home": str(_config.home()),
            "workers": sorted(self.node.supervisor.processes),
            "autostop_mins": self.daemon.autostop_mins,
            "idle_seconds": round(time.monotonic() - self.daemon.last_active, 1),
            "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        }

    async def set_autostop(self, mins: float) -> float:
        """Change this cluster's autostop (minutes, -1 never); returns the previous value."""
        previous = self.daemon.autostop_mins
        self.daemon.autostop_mins = float(mins)
        self.daemon.last_active = time.monotonic()
        log.info("autostop set to %s minutes", mins)
        return previous

    async def shutdown(self) -> None:
        """Stop this host's daemon and its workers."""
        self.daemon.stop.set()


class DaemonState:
    """What the daemon's tasks share: its identity in the cluster, autostop, the stop event."""

    def __init__(self, index: int | None, label: str, autostop_mins: float) -> None:
        self.index = index
        self.label = label
        self.autostop_mins = autostop_mins
        self.last_active = time.monotonic()
        self.stop = anyio.Event()
        #: Whether the daemon stops because it was idle (not asked to).
        self.autostopped = False

    async def autostop(self, busy: Callable[[], bool]) -> None:
        """Stop once nothing happened for ``autostop_mins`` (calls in flight, clients heard)."""
        while True:
            await anyio.sleep(0.5)
            now = time.monotonic()
            if busy():
                self.last_active = now
            elif self.autostop_mins >= 0 and now - self.last_active > self.autostop_mins * 60:
                log.info("idle for %.0f s: autostop", now - self.last_active)
                self.autostopped = True
                self.stop.set()
                return


def agent_worker(
    endpoint: str, index: int, daemon: DaemonState, node: Node, curve: Path | None
) -> Worker:
    """The in-process worker serving this host's :class:`NodeAgent` as ``__node__.<index>``."""
    name = node_agent(index)
    worker = Worker(
        endpoint,
        name,
        group=NODE_GROUP,
        threads=4,
        curve=client_keys(curve) if curve else None,
        node=daemon.label,
        handle_signals=False,  # the daemon's own handlers stop it
        on_shutdown=daemon.stop.set,
    )
    worker.objects[name.encode()] = Entry(NodeAgent(daemon, node))
    return worker
