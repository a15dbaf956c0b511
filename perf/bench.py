"""rhzmq's own figures: sequential latency and calls/s through the broker, and the HTTP gateway.

Each scenario runs against a fresh local daemon in a temporary RHZMQ_HOME, warms up first, and is
repeated ``rounds`` times; the report gives the median and the range.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import rhzmq as rh

from . import targets


@contextlib.contextmanager
def local_cluster(gateway: bool = False) -> Iterator[rh.Cluster]:
    with tempfile.TemporaryDirectory(prefix="rhzmq-perf-") as home:
        old = os.environ.get("RHZMQ_HOME")
        os.environ["RHZMQ_HOME"] = home
        try:
            c = rh.cluster("local", gateway_port=0 if gateway else None).up_if_not()
            try:
                yield c
            finally:
                c.teardown()
        finally:
            if old is None:
                os.environ.pop("RHZMQ_HOME", None)
            else:
                os.environ["RHZMQ_HOME"] = old


def _pct(lat: list[float], q: float) -> float:
    lat = sorted(lat)
    return lat[min(len(lat) - 1, int(len(lat) * q))] * 1e6


def sequential_sync(fn: rh.Function, calls: int) -> dict[str, float]:
    for _ in range(200):
        fn(1)
    lat = []
    for _ in range(calls):
        t = time.perf_counter()
        fn(1)
        lat.append(time.perf_counter() - t)
    return {"p50_us": _pct(lat, 0.5), "p99_us": _pct(lat, 0.99)}


async def sequential_async(fn: rh.Function, calls: int) -> dict[str, float]:
    for _ in range(200):
        await fn.acall(1)
    lat = []
    for _ in range(calls):
        t = time.perf_counter()
        await fn.acall(1)
        lat.append(time.perf_counter() - t)
    return {"p50_us": _pct(lat, 0.5), "p99_us": _pct(lat, 0.99)}


async def in_flight(fn: rh.Function, calls: int, width: int) -> float:
    """Calls/s with ``width`` calls always in flight from one asyncio client."""
    per_worker = calls // width

    async def worker() -> None:
        for _ in range(per_worker):
            await fn.acall(1)

    await asyncio.gather(*(fn.acall(1) for _ in range(width * 4)))  # warm-up
    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(width)))
    return per_worker * width / (time.perf_counter() - t)


def core(rounds: int = 3, calls: int = 3000, tput_calls: int = 40000) -> dict[str, Any]:
    """Sequential p50/p99 (sync stub and acall) and calls/s with 64 in flight, no-op sync and async."""
    results: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        results.setdefault(key, []).append(value)

    with local_cluster() as c:
        noop = rh.function(targets.noop).to(c)
        anoop = rh.function(targets.anoop).to(c)
        for _ in range(rounds):
            s = sequential_sync(noop, calls)
            add("sync_stub_p50_us", s["p50_us"])
            add("sync_stub_p99_us", s["p99_us"])

            async def run() -> None:
                a = await sequential_async(noop, calls)
                add("acall_p50_us", a["p50_us"])
                add("acall_p99_us", a["p99_us"])
                add("calls_per_s_64_sync_fn", await in_flight(noop, tput_calls, 64))
                add("calls_per_s_64_async_fn", await in_flight(anoop, tput_calls, 64))

            import uvloop

            uvloop.run(run())
    return summarize(results)


def summarize(results: dict[str, list[float]]) -> dict[str, Any]:
    return {
        k: {"median": statistics.median(v), "min": min(v), "max": max(v), "rounds": len(v)}
        for k, v in results.items()
    }


def replicas(rounds: int = 3, calls: int = 2000) -> dict[str, Any]:
    """Calls/s of a 2 ms CPU-bound function with 1 and 2 worker replicas (ideal scaling: 2x)."""
    import uvloop

    results: dict[str, list[float]] = {}
    with local_cluster() as c:
        one = rh.function(targets.burn_2ms).to(c, name="burn_1", env=rh.env(name="burn-1"))
        two = rh.function(targets.burn_2ms).to(c, name="burn_2", replicas=2)
        for _ in range(rounds):
            results.setdefault("cpu_2ms_calls_per_s_1_replica", []).append(
                uvloop.run(in_flight(one, calls, 16))
            )
            results.setdefault("cpu_2ms_calls_per_s_2_replicas", []).append(
                uvloop.run(in_flight(two, calls, 16))
            )
    out = summarize(results)
    out["replica_scaling"] = (
        out["cpu_2ms_calls_per_s_2_replicas"]["median"]
        / out["cpu_2ms_calls_per_s_1_replica"]["median"]
    )
    return out


# -- gateway ---------------------------------------------------------------------------------------


def _bare_app_server(port_q: Any) -> None:
    """A bare Starlette app on the same uvicorn stack: POST /echo returns the JSON it got."""
    import uvicorn
    import uvloop
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def echo(request: Request) -> Response:
        body = await request.body()
        return Response(b'{"result":' + body + b"}", media_type="application/json")

    app = Starlette(routes=[Route("/{name}", echo, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port_q.put(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    uvloop.run(server.serve(sockets=[sock]))


async def http_load(url: str, requests: int, concurrency: int, body: bytes) -> float:
    import aiohttp

    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one() -> None:
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"{url} answered {r.status}")

        async def worker(n: int) -> None:
            for _ in range(n):
                await one()

        await asyncio.gather(*(worker(20) for _ in range(concurrency)))  # warm-up
        t = time.perf_counter()
        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
        return (requests // concurrency) * concurrency / (time.perf_counter() - t)


def gateway(rounds: int = 3, requests: int = 20000, concurrency: int = 64) -> dict[str, Any]:
    """Requests/s through the gateway vs a bare Starlette echo app, 64 concurrent, same run."""
    import uvloop

    results: dict[str, list[float]] = {}
    q: Any = mp.Queue()
    bare = mp.Process(target=_bare_app_server, args=(q,), daemon=True)
    bare.start()
    bare_url = f"http://127.0.0.1:{q.get(timeout=30)}/echo"
    body = b'{"args": [1]}'
    try:
        with local_cluster(gateway=True) as c:
            rh.function(targets.noop).to(c)
            url = f"{c.gateway_url}/noop"
            for _ in range(rounds):
                results.setdefault("bare_starlette_rps", []).append(
                    uvloop.run(http_load(bare_url, requests, concurrency, body))
                )
                results.setdefault("gateway_rps", []).append(
                    uvloop.run(http_load(url, requests, concurrency, body))
                )
    finally:
        bare.kill()
        bare.join()
    out = summarize(results)
    out["gateway_vs_bare"] = out["gateway_rps"]["median"] / out["bare_starlette_rps"]["median"]
    return out
