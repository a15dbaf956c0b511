"""Ray: an actor's methods, called with ``ray.get(actor.noop.remote(1))`` and, 64 at a time, by
awaiting the ObjectRefs from one asyncio loop (Ray's asyncio support). A local Ray instance,
2 CPUs, no dashboard, a 256 MiB object store under its own temporary directory.

Run by perf/peers with the peers' venv's Python; prints one JSON line (see _common.emit)."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import tempfile
from typing import Any

from ._common import (
    MIB,
    asyncio_in_flight,
    emit,
    params,
    sequential_p50_us,
)

ray: Any = importlib.import_module("ray")  # in the peers' venv only (no stubs in rhzmq's)


class Peer:
    def noop(self, x: object) -> object:
        return x

    def echo(self, x: object) -> object:
        return x


def main() -> None:
    p = params()
    tmp = tempfile.mkdtemp(prefix="rp-")  # short: Ray's socket paths must fit in 107 bytes
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=256 * MIB,
        _temp_dir=tmp,
    )
    try:
        actor = ray.remote(Peer).remote()
        ray.get(actor.noop.remote(1))  # handshake: the actor's process is up
        data = os.urandom(MIB)
        if ray.get(actor.echo.remote(data)) != data:
            raise RuntimeError("Ray's echo changed the bytes")
        rounds = [
            {
                "sequential_p50_us": sequential_p50_us(
                    lambda: ray.get(actor.noop.remote(1)), p["seq"]
                ),
                "calls_per_s_64_in_flight": asyncio_in_flight(
                    lambda: actor.noop.remote(1), p["width"], p["tput"]
                ),
                "echo_1MiB_MiB_per_s": asyncio_in_flight(
                    lambda: actor.echo.remote(data), p["echo_width"], p["echo"]
                ),
            }
            for _ in range(p["rounds"])
        ]
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    emit(
        "ray",
        importlib.metadata.version("ray"),
        "actor method; ray.get for sequential, awaited ObjectRefs from asyncio in flight",
        rounds,
    )


if __name__ == "__main__":
    main()
