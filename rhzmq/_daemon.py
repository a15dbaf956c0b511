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
import json
import logging
import os
import signal
import sys
import time
from typing import IO, Any

import anyio

from broker import Broker
from worker._supervisor import Supervisor

from . import _config
from ._version import PROTOCOL_VERSION, __version__

log = logging.getLogger("rhzmq.daemon")

WORKER_START_TIMEOUT = 60.0


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
    hs = _Handshake(ready_fd)
    stop = anyio.Event()
    addresses = [f"tcp://{host}:{port}"]
    ipc = _config.local_dir() / "broker.sock"
    if len(str(ipc)) < 100:  # the OS limit for a unix socket path is ~107 bytes
        ipc.unlink(missing_ok=True)
        addresses.insert(0, f"ipc://{ipc}")
    broker = Broker(addresses, on_shutdown=stop.set)
    supervisor = Supervisor("", log_file=sys.stderr, on_exit=broker.worker_exited)
    gateway_proc = None
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                async for _ in signals:
                    stop.set()

            tg.start_soon(on_signal)
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
                    supervisor.broker, host, gateway_port, token, log_file=sys.stderr
                )
            state: dict[str, Any] = {
                "pid": os.getpid(),
                "endpoint": supervisor.broker,
                "tcp_endpoint": tcp,
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
            await anyio.sleep(0.05)  # let the SHUTDOWN replies leave the socket
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
    except Exception:
        log.exception("daemon failed")
        _remove_state()
        sys.exit(1)


if __name__ == "__main__":
    main()
