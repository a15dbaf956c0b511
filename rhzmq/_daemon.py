"""The cluster daemon for one node: broker + node supervisor (+ the HTTP gateway), in one process.

Started detached by ``cluster.up_if_not()`` / ``rhzmq start`` as ``python -m rhzmq._daemon``. It
outlives the script that started it and keeps its state in ``$RHZMQ_HOME/local/``:
``daemon.json`` (pid, broker endpoint, gateway URL, version) written atomically once it serves,
and ``daemon.log`` (its own log plus every worker's output outside calls).

Start-up handshake: the starter passes the write end of a pipe (``--ready-fd``). The daemon writes
progress lines (``STEP ...``) and finally ``READY {json}`` once the broker is bound and the default
worker has registered, then closes it. The starter reads until READY or EOF — no sleeping, and a
daemon that fails to start is reported with its own error, from the log.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import anyio
import msgpack
import zmq
from anyio.abc import TaskGroup

from broker import NODE_GROUP, Broker
from worker._capture import install
from worker._envs import EnvInstallError, ensure_venv, run_setup
from worker._supervisor import Supervisor
from worker._worker import Entry, Worker

from . import _config
from ._build import build_id
from ._client import drop_client, get_client
from ._curve import client_keys, curve_dir, ensure_keys
from ._exceptions import EnvError, RhzmqError
from ._protocol import HEARTBEAT_INTERVAL, Cmd, Partial, Status
from ._version import PROTOCOL_VERSION, __version__

log = logging.getLogger("rhzmq.daemon")

WORKER_START_TIMEOUT = 60.0
REAP_INTERVAL = 2.0
UNREGISTERED_GRACE = 10.0


class Node:
    """Environments as worker processes on this host; used by both :class:`LocalNode` (the head's
    broker hooks) and :class:`NodeAgent` (the other hosts).

    An environment (``rh.env``) becomes ``replicas`` workers named ``name``, ``name.1``, ...
    in group ``name``, running the env's Python (a cached venv when it has requirements) with its
    env vars and working directory. Asking again with the same spec is a no-op; a changed spec
    restarts the group.
    """

    def __init__(
        self,
        supervisor: Supervisor,
        tg: TaskGroup,
        wait_workers: Callable[[list[str]], Awaitable[Any]],
    ) -> None:
        self.supervisor = supervisor
        self.tg = tg
        self.wait_workers = wait_workers
        self.specs: dict[str, str] = {}  # group -> hash of the spec its workers run

    async def start_env(self, meta: dict[str, Any], progress: Callable[[str], None]) -> list[str]:
        """Make sure the env's workers run; returns their names. Raises EnvInstallError,
        TimeoutError (workers did not register) or ValueError (a bad spec)."""
        name = str(meta["name"])
        replicas = int(meta.get("replicas") or 1)
        if not name or "/" in name or name == NODE_GROUP or not 1 <= replicas <= 256:
            raise ValueError(f"bad environment {name!r} with {replicas} replicas")
        reqs = [str(r) for r in meta.get("reqs") or []]
        env_vars = {str(k): str(v) for k, v in (meta.get("env_vars") or {}).items()}
        env_vars.update({str(k): str(v) for k, v in (meta.get("secrets") or {}).items()})
        key = json.dumps(meta, sort_keys=True, default=str)
        names = [name] + [f"{name}.{i}" for i in range(1, replicas)]
        if self.specs.get(name) == key and all(n in self.supervisor.processes for n in names):
            return names
        if name in self.specs or self.supervisor.group_members(name):
            progress(f"restarting environment {name!r} with its new definition\n")
            await self.supervisor.stop_workers(self.supervisor.group_members(name))
        python = await ensure_venv(reqs, progress) if reqs else None
        working_dir = _config.expand(meta.get("working_dir"))
        if meta.get("setup_cmds"):
            await run_setup(list(meta["setup_cmds"]), working_dir, progress)
        progress(f"starting {replicas} worker process{'es' if replicas > 1 else ''} for {name!r}\n")
        for n in names:
            self.tg.start_soon(self.supervisor.run_worker, n, env_vars, python, working_dir, name)
        with anyio.fail_after(WORKER_START_TIMEOUT):
            await self.wait_workers(names)
        self.specs[name] = key
        return names

    async def stop_env(self, group: str) -> list[str]:
        members = self.supervisor.group_members(group)
        self.specs.pop(group, None)
        await self.supervisor.stop_workers(members)
        if members:
            log.info("environment %r deleted (workers %s stopped)", group, ", ".join(members))
        return members

    def owns(self, pid: int) -> bool:
        return any(p.pid == pid for p in self.supervisor.processes.values())


class LocalNode:
    """The broker's :class:`~broker.NodeHooks` on the head host: answers SPAWN and env DELETE."""

    def __init__(self, broker: Broker, node: Node) -> None:
        self.broker = broker
        self.node = node

    def spawn(self, cid: bytes, call_id: int, meta: dict[str, Any]) -> None:
        self.node.tg.start_soon(self._spawn, cid, call_id, meta)

    def stop_group(self, cid: bytes, call_id: int, group: str) -> None:
        self.node.tg.start_soon(self._stop_group, cid, call_id, group)

    def kill(self, pid: int) -> None:
        if self.node.owns(pid):  # a worker of another host is that host's business
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

    async def autostop(self, busy: Callable[[], bool]) -> None:
        """Stop once nothing happened for ``autostop_mins`` (calls in flight, clients heard)."""
        while True:
            await anyio.sleep(0.5)
            now = time.monotonic()
            if busy():
                self.last_active = now
            elif self.autostop_mins >= 0 and now - self.last_active > self.autostop_mins * 60:
                log.info("idle for %.0f s: autostop", now - self.last_active)
                self.stop.set()
                return


class _Handshake:
    def __init__(self, fd: int | None) -> None:
        if fd is not None:
            # Inherited, so inheritable: worker processes must not hold it open (the starter
            # reads until it closes, e.g. the SSH channel that started this daemon).
            os.set_inheritable(fd, False)
        self.stream: IO[str] | None = os.fdopen(fd, "w", buffering=1) if fd is not None else None

    def say(self, line: str) -> None:
        if self.stream is not None:
            try:
                self.stream.write(line + "\n")
            except OSError:
                self.stream = None  # the starter went away; the daemon keeps going

    def close(self) -> None:
        if self.stream is not None:
            try:
                self.stream.close()
            except OSError:
                pass
            self.stream = None


def _agent_worker(endpoint: str, daemon: DaemonState, node: Node, curve: Path | None) -> Worker:
    """The in-process worker serving this host's :class:`NodeAgent` as ``__node__.<index>``."""
    name = f"{NODE_GROUP}.{daemon.index}"
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


def _node_env(supervisor: Supervisor, daemon: DaemonState) -> None:
    supervisor.node = daemon.label
    if daemon.index is not None:
        # Workers can tell where they run: RHZMQ_NODE_INDEX (0 is the head), RHZMQ_NODE_ADDRESS.
        supervisor.env = {"RHZMQ_NODE_INDEX": str(daemon.index), "RHZMQ_NODE_ADDRESS": daemon.label}


async def serve(
    port: int,
    gateway_port: int | None,
    host: str,
    token: str | None,
    ready_fd: int | None,
    *,
    force_curve: bool = False,
    daemon: DaemonState,
) -> None:
    """The head: broker, the default worker, the gateway; and the node agent in a cluster."""
    from gateway._serve import is_loopback

    # Reachable from other hosts (or an SSH cluster): CURVE on every connection, with an
    # allow-list of client keys.
    curve = ensure_keys() if force_curve or not is_loopback(host) else None
    hs = _Handshake(ready_fd)
    stop = daemon.stop
    addresses = [f"tcp://{host}:{port}"]
    ipc = _config.local_dir() / "broker.sock"
    if len(str(ipc)) < 100:  # the OS limit for a unix socket path is ~107 bytes
        ipc.unlink(missing_ok=True)
        addresses.insert(0, f"ipc://{ipc}")
    broker = Broker(addresses, on_shutdown=stop.set, curve_dir=curve)
    supervisor = Supervisor("", log_file=sys.__stderr__, on_exit=broker.worker_exited)
    supervisor.curve_dir = str(curve) if curve else None
    _node_env(supervisor, daemon)

    async def wait_workers(names: list[str]) -> None:
        for n in names:
            await broker.wait_for_worker(n)

    gateway_proc = None
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                async for _ in signals:
                    stop.set()

            tg.start_soon(on_signal)
            node = Node(supervisor, tg, wait_workers)
            broker.node = LocalNode(broker, node)
            hs.say("STEP starting broker")
            endpoints = await tg.start(broker.serve)
            # Local peers use the first endpoint (ipc when possible).
            supervisor.broker = endpoints[0].replace("0.0.0.0", "127.0.0.1")
            tcp = next(e for e in endpoints if e.startswith("tcp://"))
            hs.say(f"STEP broker listening on {', '.join(endpoints)}; starting the default worker")
            tg.start_soon(supervisor.run_worker, "default")
            agent = None
            with anyio.fail_after(WORKER_START_TIMEOUT):
                await broker.wait_for_worker("default")
                if daemon.index is not None:
                    agent = _agent_worker(supervisor.broker, daemon, node, curve)
                    tg.start_soon(agent.serve)
                    await agent.registered.wait()
            if daemon.index is not None:
                tg.start_soon(daemon.autostop, lambda: bool(broker.inflight or broker.clients))
            gateway_url = None
            if gateway_port is not None:
                from gateway._serve import start_gateway_process

                hs.say(f"STEP starting the HTTP gateway on port {gateway_port}")
                gateway_proc, gateway_url = await start_gateway_process(
                    supervisor.broker,
                    "127.0.0.1" if force_curve else host,
                    gateway_port,
                    token,
                    log_file=sys.__stderr__,
                    curve_dir=str(curve) if curve else None,
                )
            state = _state(daemon, "head", supervisor.broker)
            state.update(tcp_endpoint=tcp, curve=str(curve) if curve else None, gateway=gateway_url)
            _ready(hs, state)
            await stop.wait()
            log.info("daemon stopping")
            if gateway_proc is not None:
                gateway_proc.terminate()
                with anyio.move_on_after(5):
                    await gateway_proc.wait()
                if gateway_proc.returncode is None:
                    gateway_proc.kill()
            await supervisor.stop()
            if agent is not None:
                agent.stop()
            _remove_state()
            broker.finish_shutdown()
            tg.cancel_scope.cancel()


async def serve_node(head: str, ready_fd: int | None, daemon: DaemonState) -> None:
    """A host other than the head: a supervisor whose workers (and the node agent) connect to the
    head's broker with CURVE keys distributed over SSH (see rhzmq._cluster_ssh)."""
    curve = curve_dir()
    hs = _Handshake(ready_fd)
    supervisor = Supervisor(head, log_file=sys.__stderr__)
    supervisor.curve_dir = str(curve)
    _node_env(supervisor, daemon)
    keys = client_keys(curve)

    async def wait_workers(names: list[str]) -> None:
        client = get_client(head, keys)
        while True:
            status = await client.control(Cmd.STATUS, timeout=10.0)
            here = {w["name"] for w in status["workers"] if w.get("node") == daemon.label}
            if set(names) <= here:
                return
            await anyio.sleep(0.1)

    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                async for _ in signals:
                    daemon.stop.set()

            tg.start_soon(on_signal)
            node = Node(supervisor, tg, wait_workers)
            agent = _agent_worker(head, daemon, node, curve)
            hs.say(f"STEP connecting to the head's broker at {head}")
            tg.start_soon(agent.serve)
            try:
                with anyio.fail_after(30):
                    await agent.registered.wait()
            except TimeoutError:
                raise RuntimeError(
                    f"the head's broker at {head} did not answer within 30 s: check that this "
                    "host can reach the head on that port (firewall, security group)"
                ) from None
            # Without a head (it stopped without telling us, or the network is gone) for the
            # autostop period, stop too.
            tg.start_soon(
                daemon.autostop,
                lambda: time.monotonic() - agent.last_heard < 10 * HEARTBEAT_INTERVAL,
            )
            tg.start_soon(_reap_unregistered, supervisor, daemon, head, keys)
            _ready(hs, _state(daemon, "node", head))
            await daemon.stop.wait()
            log.info("node daemon stopping")
            await supervisor.stop()
            agent.stop()
            await anyio.sleep(0.1)  # lets the agent's DISCONNECT out
            _remove_state()
            drop_client(head)
            tg.cancel_scope.cancel()


async def _reap_unregistered(
    supervisor: Supervisor, daemon: DaemonState, head: str, keys: dict[str, bytes]
) -> None:
    """Kill this host's workers that the head no longer lists, so the supervisor restarts them.

    The head declares a worker dead when its heartbeats stop (hung: SIGSTOP, stuck in C holding
    the GIL) but can kill only processes on its own host; here the process is ours to kill.
    A worker gets UNREGISTERED_GRACE seconds to register first.
    """
    client = get_client(head, keys)
    missing_since: dict[int, float] = {}
    while True:
        await anyio.sleep(REAP_INTERVAL)
        pids = {p.pid: name for name, p in supervisor.processes.items()}
        if not pids:
            continue
        try:
            status = await client.control(Cmd.STATUS, timeout=5.0)
        except RhzmqError:
            continue  # the head is away: nothing to compare with
        listed = {w["pid"] for w in status["workers"] if w.get("node") == daemon.label}
        now = time.monotonic()
        for pid, name in pids.items():
            if pid in listed:
                missing_since.pop(pid, None)
            elif now - missing_since.setdefault(pid, now) > UNREGISTERED_GRACE:
                log.warning(
                    "worker %r (pid %d) is not registered with the head: killing it", name, pid
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                del missing_since[pid]
        for pid in set(missing_since) - set(pids):
            del missing_since[pid]


def _state(daemon: DaemonState, role: str, endpoint: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "role": role,
        "index": daemon.index,
        "address": daemon.label,
        "endpoint": endpoint,
        "version": __version__,
        "build": build_id(),
        "protocol": PROTOCOL_VERSION,
        "started": time.time(),
        "autostop_mins": daemon.autostop_mins,
    }


def _ready(hs: _Handshake, state: dict[str, Any]) -> None:
    _config.write_state(state)
    log.info("daemon ready: %s", json.dumps(state))
    hs.say("READY " + json.dumps(state))
    hs.close()


def _remove_state() -> None:
    state = _config.read_state()
    if state and state.get("pid") == os.getpid():
        _config.state_file().unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rhzmq._daemon")
    parser.add_argument("--port", type=int, default=0, help="broker port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    parser.add_argument("--gateway-port", type=int, default=None)
    parser.add_argument("--token", default=os.environ.get("RHZMQ_TOKEN"))
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument("--detach", action="store_true", help="fork into the background first")
    parser.add_argument("--curve", action="store_true", help="CURVE even on loopback")
    parser.add_argument("--token-file", default=None, help="read the gateway's token from here")
    parser.add_argument("--head", default=None, help="join the cluster whose broker is here")
    parser.add_argument("--node-index", type=int, default=None, help="this host's index")
    parser.add_argument("--node-label", default=None, help="this host's address in the cluster")
    parser.add_argument("--autostop-mins", type=float, default=-1, help="-1: never")
    args = parser.parse_args(argv)
    if args.token_file:
        args.token = Path(args.token_file).read_text().strip()
    if args.detach:
        # Classic double fork: the starter reaps our parent at once, and the daemon (not the
        # starter's child) is adopted by init, which reaps it when it ends.
        if os.fork() > 0:
            os._exit(0)
        os.setsid()
    # Logging to stderr (the log file); output of the node agent's calls streams to their
    # callers instead (pip's lines, progress).
    install(Partial.STDOUT, Partial.STDERR, label="daemon")
    daemon = DaemonState(
        args.node_index, args.node_label or socket.gethostname(), args.autostop_mins
    )
    try:
        if args.head:
            anyio.run(
                serve_node, args.head, args.ready_fd, daemon, backend_options={"use_uvloop": True}
            )
        else:
            anyio.run(
                functools.partial(serve, force_curve=args.curve, daemon=daemon),
                args.port,
                args.gateway_port,
                args.host,
                args.token,
                args.ready_fd,
                backend_options={"use_uvloop": True},
            )
        # Returns once the broker's last replies (SHUTDOWN's) are written, or its linger ends.
        zmq.Context.instance().term()
    except Exception:
        log.exception("daemon failed")
        _remove_state()
        sys.exit(1)


if __name__ == "__main__":
    main()
