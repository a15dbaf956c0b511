"""What every peer script shares: the three workloads' loops and the JSON it prints.

Runs inside the peers' throwaway venv (perf/peers/__init__.py) as well as rhzmq's: stdlib only.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

MIB = 1 << 20  # the echo's payload: its calls/s is also its MiB/s each way
#: What a run does when it is given nothing on the command line (a smoke run's sizes).
DEFAULTS = {"rounds": 1, "seq": 200, "tput": 2000, "echo": 16, "width": 64, "echo_width": 4}


def params() -> dict[str, int]:
    """The sizes of this run: the JSON object in argv[1] over DEFAULTS."""
    given = json.loads(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "serve" else {}
    return {**DEFAULTS, **given}


def sequential_p50_us(call: Callable[[], Any], calls: int, warm_up: int = 200) -> float:
    """p50 of ``calls`` blocking calls one after another, in µs."""
    for _ in range(warm_up):
        call()
    lat = []
    for _ in range(calls):
        t = time.perf_counter()
        call()
        lat.append(time.perf_counter() - t)
    return statistics.median(lat) * 1e6


def threads_in_flight(make_call: Callable[[], Callable[[], Any]], width: int, calls: int) -> float:
    """Calls/s of ``width`` threads calling at once, each with its own ``make_call()`` (made and
    used once in its thread before the shared start), ``calls // width`` calls each."""
    per = max(1, calls // width)
    ready = threading.Barrier(width + 1)
    start = threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            call = make_call()
            call()  # connected and warm
        except BaseException as exc:
            errors.append(exc)
            ready.abort()
            raise
        ready.wait()
        start.wait()
        try:
            for _ in range(per):
                call()
        except BaseException as exc:
            errors.append(exc)
            raise

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(width)]
    for th in threads:
        th.start()
    try:
        ready.wait(timeout=120)
    except threading.BrokenBarrierError:
        raise RuntimeError(f"a client thread failed to start: {errors[:1]}") from None
    t = time.perf_counter()
    start.set()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    if errors:
        raise RuntimeError(f"{len(errors)} client threads failed: {errors[0]!r}")
    return per * width / elapsed


def asyncio_in_flight(call: Callable[[], Awaitable[Any]], width: int, calls: int) -> float:
    """Calls/s with ``width`` calls always in flight from one asyncio loop (as perf.bench)."""
    per = max(1, calls // width)

    async def run() -> float:
        async def worker() -> None:
            for _ in range(per):
                await call()

        await asyncio.gather(*(call() for _ in range(width * 2)))  # warm-up
        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(width)))
        return per * width / (time.perf_counter() - t)

    return asyncio.run(run())


def emit(system: str, version: str, how: str, rounds: list[dict[str, float]]) -> None:
    """The one line of JSON the runner reads (the last line of stdout)."""
    print(json.dumps({"system": system, "version": version, "how": how, "rounds": rounds}))
