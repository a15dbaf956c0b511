"""Pyro5: a Daemon in another process (``python -m perf.peers.pyro5_peer serve`` prints its URI: the
handshake), called through Proxy objects. Pyro proxies belong to one thread, so 64 in flight is
64 threads with a proxy each (the daemon's thread pool serves a connection per thread), and the
1 MiB echo 4 threads. Serializer msgpack: the default, serpent, sends bytes as base64 text.

Run by perf/peers with the peers' venv's Python; prints one JSON line (see _common.emit)."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from ._common import MIB, emit, params, sequential_p50_us, threads_in_flight

pyro: Any = importlib.import_module("Pyro5.api")  # in the peers' venv only
config: Any = importlib.import_module("Pyro5").config
config.SERIALIZER = "msgpack"


class Peer:
    def noop(self, x: object) -> object:
        return x

    def echo(self, x: object) -> object:
        return x


def serve() -> None:
    config.THREADPOOL_SIZE = 128  # one thread per connected proxy: 64 + the others
    daemon = pyro.Daemon(host="127.0.0.1", port=0)
    uri = daemon.register(pyro.expose(Peer)(), "peer")
    print(uri, flush=True)
    daemon.requestLoop()


def main() -> None:
    p = params()
    server = subprocess.Popen(
        [sys.executable, "-m", "perf.peers.pyro5_peer", "serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        uri = server.stdout.readline().strip()
        if not uri:
            raise RuntimeError(f"the Pyro5 daemon exited ({server.wait()}) before saying its URI")
        data = os.urandom(MIB)

        def proxy_call(method: str, arg: object) -> Callable[[], Callable[[], Any]]:
            def make() -> Callable[[], Any]:
                proxy = pyro.Proxy(uri)
                fn = getattr(proxy, method)
                return lambda: fn(arg)

            return make

        with pyro.Proxy(uri) as one:
            if one.echo(data) != data:
                raise RuntimeError("Pyro5's echo changed the bytes")
            rounds = [
                {
                    "sequential_p50_us": sequential_p50_us(lambda: one.noop(1), p["seq"]),
                    "calls_per_s_64_in_flight": threads_in_flight(
                        proxy_call("noop", 1), p["width"], p["tput"]
                    ),
                    "echo_1MiB_MiB_per_s": threads_in_flight(
                        proxy_call("echo", data), p["echo_width"], p["echo"]
                    ),
                }
                for _ in range(p["rounds"])
            ]
    finally:
        server.kill()
        server.wait()
    emit(
        "pyro5",
        importlib.metadata.version("Pyro5"),
        "Proxy per thread, daemon in another process, msgpack serializer",
        rounds,
    )


if __name__ == "__main__":
    serve() if sys.argv[1:] == ["serve"] else main()
