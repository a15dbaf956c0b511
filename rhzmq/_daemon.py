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
import json
import logging
import os
import signal
import sys
import time
from typing import IO, Any

import anyio
import msgpack
import zmq
from anyio.abc import TaskGroup

from broker import Broker
from worker._envs import EnvInstallError, ensure_venv, run_setup
from worker._supervisor import Supervisor

from . import _config
from ._curve import ensure_keys
from ._protocol import Partial, Status
from ._version import PROTOCOL_VERSION, __version__

log = logging.getLogger("rhzmq.daemon")

WORKER_START_TIMEOUT = 60.0


class LocalNode:
    """The broker's :class:`~broker.NodeHooks` on this machine: environments as worker processes.

    An environment (``rh.env``) becomes ``replicas`` workers named ``name``, ``name.1``, ...
    in group ``name``, running the env's Python (a cached venv when it has requirements) with its
    env vars and working directory. Asking again with the same spec is a no-op; a changed spec
    restarts the group.
    """

    def __init__(self, broker: Broker, supervisor: Supervisor, tg: TaskGroup) -> None:
        self.broker = broker
        self.supervisor = supervisor
        self.tg = tg
        self.specs: dict[str, str] = {}  # group -> hash of the spec its workers run

    def spawn(self, cid: bytes, call_id: int, meta: dict[str, Any]) -> None:
        self.tg.start_soon(self._spawn, cid, call_id, meta)

    def stop_group(self, cid: bytes, call_id: int, group: str) -> None:
        self.tg.start_soon(self._stop_group, cid, call_id, group)

    def kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    async def _spawn(self, cid: bytes, call_id: int, meta: dict[str, Any]) -> None:
        def progress(text: str) -> None:
            self.broker.partial(cid, call_id, Partial.STDOUT, [text.encode()])

        try:
            name = str(meta["name"])
            replicas = int(meta.get("replicas") or 1)
            if not name or "/" in name or not 1 <= replicas <= 256:
                raise ValueError(f"bad environment {name!r} with {replicas} replicas")
            reqs = [str(r) for r in meta.get("reqs") or []]
            env_vars = {str(k): str(v) for k, v in (meta.get("env_vars") or {}).items()}
            env_vars.update({str(k): str(v) for k, v in (meta.get("secrets") or {}).items()})
            key = json.dumps(meta, sort_keys=True, default=str)
            names = [name] + [f"{name}.{i}" for i in range(1, replicas)]
            if self.specs.get(name) == key and all(n in self.supervisor.processes for n in names):
                return self.broker.reply(
                    cid, call_id, Status.OK, [msgpack.packb({"workers": names})]
                )
            if name in self.specs or self.supervisor.group_members(name):
                progress(f"restarting environment {name!r} with its new definition\n")
                await self.supervisor.stop_workers(self.supervisor.group_members(name))
            python = await ensure_venv(reqs, progress) if reqs else None
            if meta.get("setup_cmds"):
                await run_setup(list(meta["setup_cmds"]), meta.get("working_dir"), progress)
            progress(
                f"starting {replicas} worker process{'es' if replicas > 1 else ''} for {name!r}\n"
            )
            for n in names:
                self.tg.start_soon(
                    self.supervisor.run_worker, n, env_vars, python, meta.get("working_dir"), name
                )
            with anyio.fail_after(WORKER_START_TIMEOUT):
                for n in names:
                    await self.broker.wait_for_worker(n)
            self.specs[name] = key
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
        members = self.supervisor.group_members(group)
        self.specs.pop(group, None)
        self.broker.forget_group(group)
        await self.supervisor.stop_workers(members)
        log.info("environment %r deleted (workers %s stopped)", group, ", ".join(members))
        self.broker.reply(cid, call_id, Status.OK, [msgpack.packb(None)])


class _Handshake:
    def __init__(self, fd: int | None) -> None:
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


async def serve(
    port: int, gateway_port: int | None, host: str, token: str | None, ready_fd: int | None
) -> None:
    from gateway._serve import is_loopback

    # Reachable from other hosts: CURVE on every connection, with an allow-list of client keys.
    curve = None if is_loopback(host) else ensure_keys()
    hs = _Handshake(ready_fd)
    stop = anyio.Event()
    addresses = [f"tcp://{host}:{port}"]
    ipc = _config.local_dir() / "broker.sock"
    if len(str(ipc)) < 100:  # the OS limit for a unix socket path is ~107 bytes
        ipc.unlink(missing_ok=True)
        addresses.insert(0, f"ipc://{ipc}")
    broker = Broker(addresses, on_shutdown=stop.set, curve_dir=curve)
    supervisor = Supervisor("", log_file=sys.stderr, on_exit=broker.worker_exited)
    supervisor.curve_dir = str(curve) if curve else None
    gateway_proc = None
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                async for _ in signals:
                    stop.set()

            tg.start_soon(on_signal)
            broker.node = LocalNode(broker, supervisor, tg)
            hs.say("STEP starting broker")
            endpoints = await tg.start(broker.serve)
            # Local peers use the first endpoint (ipc when possible).
            supervisor.broker = endpoints[0].replace("0.0.0.0", "127.0.0.1")
            tcp = next(e for e in endpoints if e.startswith("tcp://"))
            hs.say(f"STEP broker listening on {', '.join(endpoints)}; starting the default worker")
            tg.start_soon(supervisor.run_worker, "default")
            with anyio.fail_after(WORKER_START_TIMEOUT):
                await broker.wait_for_worker("default")
            gateway_url = None
            if gateway_port is not None:
                from gateway._serve import start_gateway_process

                hs.say(f"STEP starting the HTTP gateway on port {gateway_port}")
                gateway_proc, gateway_url = await start_gateway_process(
                    supervisor.broker,
                    host,
                    gateway_port,
                    token,
                    log_file=sys.stderr,
                    curve_dir=str(curve) if curve else None,
                )
            state: dict[str, Any] = {
                "pid": os.getpid(),
                "endpoint": supervisor.broker,
                "tcp_endpoint": tcp,
                "curve": str(curve) if curve else None,
                "gateway": gateway_url,
                "version": __version__,
                "protocol": PROTOCOL_VERSION,
                "started": time.time(),
            }
            _config.write_state(state)
            log.info("daemon ready: %s", json.dumps(state))
            hs.say("READY " + json.dumps(state))
            hs.close()
            await stop.wait()
            log.info("daemon stopping")
            if gateway_proc is not None:
                gateway_proc.terminate()
                with anyio.move_on_after(5):
                    await gateway_proc.wait()
                if gateway_proc.returncode is None:
                    gateway_proc.kill()
            await supervisor.stop()
            _remove_state()
            broker.finish_shutdown()
            tg.cancel_scope.cancel()


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
    args = parser.parse_args(argv)
    if args.detach:
        # Classic double fork: the starter reaps our parent at once, and the daemon (not the
        # starter's child) is adopted by init, which reaps it when it ends.
        if os.fork() > 0:
            os._exit(0)
        os.setsid()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [daemon %(process)d] %(name)s: %(message)s",
    )
    try:
        anyio.run(
            serve,
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
