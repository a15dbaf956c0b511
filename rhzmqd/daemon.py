"""The daemon for one host: broker + node supervisor (+ the HTTP gateway) on the head, a
supervisor and node agent on every other host of a cluster; one process, started detached.

Started by ``cluster.up_if_not()`` / ``rhzmq start`` as ``python -m rhzmqd`` (arguments:
:class:`rhzmq.wire.launch.DaemonArgs`). It outlives the script that started it and keeps its state
in ``$RHZMQ_HOME/local/``: ``daemon.json`` (pid, broker endpoint, gateway URL, version) written
atomically once it serves, and ``daemon.log`` (its own log plus every worker's output outside
calls). It tells its starter how start-up goes over the handshake stream (``--ready-fd``,
:mod:`rhzmq.wire.handshake`): ``STEP`` lines, then ``READY {json}`` once it serves.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import zmq
from anyio.abc import TaskGroup

from broker import Broker
from gateway._serve import start_gateway_process
from rhzmq.wire import config as _config
from rhzmq.wire import secrets
from rhzmq.wire.build import build_id
from rhzmq.wire.client import drop_client, get_client
from rhzmq.wire.curve import client_keys, curve_dir, ensure_keys
from rhzmq.wire.exceptions import RhzmqError
from rhzmq.wire.handshake import Announcer
from rhzmq.wire.launch import DaemonArgs
from rhzmq.wire.net import is_loopback
from rhzmq.wire.protocol import Cmd, Partial
from rhzmq.wire.settings import (
    HEAD_CONNECT_TIMEOUT,
    HEARTBEAT_INTERVAL,
    REAP_INTERVAL,
    UNREGISTERED_GRACE,
    WORKER_START_TIMEOUT,
)
from rhzmq.wire.spin import SPIN
from rhzmq.wire.version import PROTOCOL_VERSION, __version__
from worker._capture import install
from worker._envs import ensure_venv, run_setup
from worker._supervisor import Supervisor

from .node import DaemonState, LocalNode, Node, agent_worker, deliver_secrets

log = logging.getLogger("rhzmq.daemon")


@contextlib.asynccontextmanager
async def _running(daemon: DaemonState) -> AsyncIterator[TaskGroup]:
    """The task group a daemon runs in; SIGTERM and SIGINT ask it to stop."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                async for _ in signals:
                    daemon.stop.set()

            tg.start_soon(on_signal)
            yield tg
            tg.cancel_scope.cancel()


def _supervisor(broker: str, daemon: DaemonState, curve: Path | None, **kwargs: Any) -> Supervisor:
    # Workers can tell where they run: RHZMQ_NODE_INDEX (0 is the head), RHZMQ_NODE_ADDRESS.
    env = {}
    if daemon.index is not None:
        env = {"RHZMQ_NODE_INDEX": str(daemon.index), "RHZMQ_NODE_ADDRESS": daemon.label}
    return Supervisor(
        broker,
        log_file=sys.__stderr__,
        curve_dir=str(curve) if curve else None,
        node=daemon.label,
        env=env,
        **kwargs,
    )


async def _apply_default_env(
    args: DaemonArgs, node: Node, hs: Announcer
) -> tuple[str | None, str | None]:
    """The cluster's default env (``rh.cluster(..., default_env=...)``), before any worker runs:
    its setup commands run once, its variables go to every worker, its requirements into the
    default worker's venv and every env's; returns the default worker's Python and directory."""
    if not args.default_env:
        return None, None
    spec_file = anyio.Path(args.default_env)
    spec = json.loads(await spec_file.read_text())
    await spec_file.unlink(missing_ok=True)  # it may hold secrets: read once, never left behind
    node.default_env = spec
    working_dir = _config.expand(spec.get("working_dir"))

    def progress(text: str) -> None:
        for line in text.splitlines():
            hs.step(f"(default env) {line}")

    env_vars = {str(k): str(v) for k, v in (spec.get("env_vars") or {}).items()}
    env_vars.update(deliver_secrets("default", spec))
    node.supervisor.env.update(env_vars)
    if spec.get("setup_cmds"):
        await run_setup(list(spec["setup_cmds"]), working_dir, progress)
    reqs = [str(r) for r in spec.get("reqs") or []]
    python = await ensure_venv(reqs, progress) if reqs else None
    return python, working_dir


async def serve(args: DaemonArgs, token: str | None, daemon: DaemonState) -> None:
    """The head: broker, the default worker, the gateway; and the node agent in a cluster."""
    # Who can reach the broker can run code as this user. The ipc socket lives in the owner-only
    # $RHZMQ_HOME/local; a TCP port, even on loopback, is open to every user of the machine (and
    # beyond loopback to other machines), so any TCP endpoint requires CURVE with an allow-list
    # of keys. Plain local use binds ipc alone.
    ipc = _config.local_dir() / "broker.sock"
    use_ipc = len(os.fsencode(ipc)) < 100  # the OS limit for a unix socket path is ~107 bytes
    use_tcp = not use_ipc or args.curve or args.port != 0 or not is_loopback(args.host)
    curve = ensure_keys() if use_tcp else None
    hs = Announcer(args.ready_fd)
    addresses = [f"tcp://{args.host}:{args.port}"] if use_tcp else []
    if use_ipc:
        ipc.unlink(missing_ok=True)
        addresses.insert(0, f"ipc://{ipc}")
    broker = Broker(addresses, on_shutdown=daemon.stop.set, curve_dir=curve)
    gateway_proc = None
    async with _running(daemon) as tg:
        hs.step("starting broker")
        endpoints = await tg.start(broker.serve)
        # Local peers use the first endpoint (ipc when possible).
        local = endpoints[0].replace("0.0.0.0", "127.0.0.1")
        supervisor = _supervisor(local, daemon, curve, on_exit=broker.worker_exited)
        node = Node(supervisor, tg)
        broker.attach_node(LocalNode(broker, node))
        tcp = next((e for e in endpoints if e.startswith("tcp://")), None)
        hs.step(f"broker listening on {', '.join(endpoints)}; starting the default worker")
        python, cwd = await _apply_default_env(args, node, hs)
        tg.start_soon(supervisor.run_worker, "default", None, python, cwd, "default")
        agent = None
        with anyio.fail_after(WORKER_START_TIMEOUT):
            await supervisor.wait_registered(["default"])
            if daemon.index is not None:
                agent = agent_worker(local, daemon.index, daemon, node, curve)
                tg.start_soon(agent.serve)
                await agent.registered.wait()
        if daemon.index is not None:
            tg.start_soon(daemon.autostop, broker.busy)
        gateway_url = None
        if args.gateway_port is not None:
            hs.step(f"starting the HTTP gateway on port {args.gateway_port}")
            gateway_proc, gateway_url = await start_gateway_process(
                local,
                "127.0.0.1" if args.curve else args.host,
                args.gateway_port,
                token,
                log_file=sys.__stderr__,
                curve_dir=str(curve) if curve else None,
            )
        state = _state(daemon, "head", local)
        state.update(
            tcp_endpoint=tcp,
            curve=str(curve) if curve else None,
            gateway=gateway_url,
            default_env=node.default_env.get("hash"),
        )
        _ready(hs, state)
        await daemon.stop.wait()
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
        secrets.remove()  # every env's secret files on this host go with the cluster
        broker.finish_shutdown()
        if daemon.autostopped and args.on_autostop:
            _run_after_autostop(args.on_autostop)


def _run_after_autostop(module: str) -> None:
    """Start ``python -m module`` on its own (it outlives this daemon: an on-demand head's
    reaper terminates this very machine last). Its output goes to the daemon's log; it finds
    what it needs under RHZMQ_HOME, which it inherits."""
    log.info("autostop: running %s", module)
    subprocess.Popen(
        [sys.executable, "-m", module],
        stdin=subprocess.DEVNULL,
        stdout=sys.__stderr__,
        stderr=sys.__stderr__,
        start_new_session=True,
    )


async def serve_node(head: str, ready_fd: int | None, daemon: DaemonState) -> None:
    """A host other than the head: a supervisor whose workers (and the node agent) connect to the
    head's broker with CURVE keys distributed over SSH (see rhzmq.clusters.ssh.keys)."""
    if daemon.index is None:
        raise ValueError("a node daemon needs its --node-index")
    curve = curve_dir()
    hs = Announcer(ready_fd)
    supervisor = _supervisor(head, daemon, curve)
    keys = client_keys(curve)
    async with _running(daemon) as tg:
        node = Node(supervisor, tg)
        agent = agent_worker(head, daemon.index, daemon, node, curve)
        hs.step(f"connecting to the head's broker at {head}")
        tg.start_soon(agent.serve)
        try:
            with anyio.fail_after(HEAD_CONNECT_TIMEOUT):
                await agent.registered.wait()
        except TimeoutError:
            raise RuntimeError(
                f"the head's broker at {head} did not answer within {HEAD_CONNECT_TIMEOUT:g} s: check that this "
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
        secrets.remove()
        drop_client(head)


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


def _ready(hs: Announcer, state: dict[str, Any]) -> None:
    _config.write_state(state)
    log.info("daemon ready: %s", json.dumps(state))
    hs.ready(state)


def _remove_state() -> None:
    state = _config.read_state()
    if state and state.get("pid") == os.getpid():
        _config.state_file().unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    SPIN.off()  # the cluster's own process: its CPU is for calls (rhzmq.wire.spin)
    args = DaemonArgs.parse(argv)
    # The token comes by environment or file, never argv (visible to every user in `ps`), and
    # no child inherits it (the gateway gets it explicitly).
    token = os.environ.pop("RHZMQ_TOKEN", None)
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    if args.gateway_port is not None and args.head is None:
        if not token and not is_loopback(args.host):
            # Before anything starts: one line, no traceback.
            sys.exit(
                f"rhzmq daemon: refusing to serve HTTP on {args.host} without a token given "
                "(RHZMQ_TOKEN or --token-file): anyone who reaches it could run code on the cluster"
            )
        if token:
            _config.write_gateway_token(token)
        else:
            token = _config.gateway_token(create=True)  # on by default, even on loopback
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
            anyio.run(serve, args, token, daemon, backend_options={"use_uvloop": True})
        # Returns once the broker's last replies (SHUTDOWN's) are written, or its linger ends.
        zmq.Context.instance().term()
    except Exception:
        log.exception("daemon failed")
        _remove_state()
        sys.exit(1)


if __name__ == "__main__":
    main()
