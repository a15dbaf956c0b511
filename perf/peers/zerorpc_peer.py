"""zerorpc: a Server in another process (``python -m perf.peers.zerorpc_peer serve`` binds, then prints its
port: the handshake) and one Client, gevent-based as zerorpc is: 64 in flight is 64 greenlets
sharing the client (zerorpc multiplexes calls over its one socket), the 1 MiB echo 4 greenlets.

Run by perf/peers with the peers' venv's Python; prints one JSON line (see _common.emit)."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import socket
import subprocess
import sys
import time
from typing import Any

from ._common import MIB, emit, params, sequential_p50_us

zerorpc: Any = importlib.import_module("zerorpc")  # in the peers' venv only
gevent: Any = importlib.import_module("gevent")


class Peer:
    def noop(self, x: object) -> object:
        return x

    def echo(self, x: object) -> object:
        return x


def serve() -> None:
    server = zerorpc.Server(Peer())
    for _ in range(20):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            server.bind(f"tcp://127.0.0.1:{port}")
            break
        except Exception:  # taken between the probe and the bind: another port
            continue
    else:
        raise RuntimeError("no free port")
    print(port, flush=True)
    server.run()


def greenlets_in_flight(client: Any, method: str, arg: object, width: int, calls: int) -> float:
    per = max(1, calls // width)
    fn = getattr(client, method)

    def worker() -> None:
        for _ in range(per):
            fn(arg)

    gevent.joinall([gevent.spawn(fn, arg) for _ in range(width * 2)], raise_error=True)  # warm
    t = time.perf_counter()
    gevent.joinall([gevent.spawn(worker) for _ in range(width)], raise_error=True)
    return per * width / (time.perf_counter() - t)


def main() -> None:
    p = params()
    server = subprocess.Popen(
        [sys.executable, "-m", "perf.peers.zerorpc_peer", "serve"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        if not port:
            raise RuntimeError(f"the zerorpc server exited ({server.wait()}) before binding")
        client = zerorpc.Client(timeout=60)
        client.connect(f"tcp://127.0.0.1:{port}")
        data = os.urandom(MIB)
        if client.echo(data) != data:
            raise RuntimeError("zerorpc's echo changed the bytes")
        rounds = [
            {
                "sequential_p50_us": sequential_p50_us(lambda: client.noop(1), p["seq"]),
                "calls_per_s_64_in_flight": greenlets_in_flight(
                    client, "noop", 1, p["width"], p["tput"]
                ),
                "echo_1MiB_MiB_per_s": greenlets_in_flight(
                    client, "echo", data, p["echo_width"], p["echo"]
                ),
            }
            for _ in range(p["rounds"])
        ]
        client.close()
    finally:
        server.kill()
        server.wait()
    emit(
        "zerorpc",
        importlib.metadata.version("zerorpc"),
        "one Client shared by greenlets (gevent), server in another process",
        rounds,
    )


if __name__ == "__main__":
    serve() if sys.argv[1:] == ["serve"] else main()
