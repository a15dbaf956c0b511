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
    return {"p50_us": _pct(lat, 0.5), "p99_us": _pct(lat, 0.99), "samples": lat}  # type: ignore[dict-item]


#: Sequential sync-stub latencies of the last core() run, for the histogram.
LATENCIES: list[float] = []


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


def core(
    rounds: int = 3,
    calls: int = 3000,
    tput_calls: int = 40000,
    widths: tuple[int, ...] = (1, 8, 64, 256),
) -> dict[str, Any]:
    """Sequential p50/p99 (sync stub and acall), 1 MiB echo one call at a time (sync stub and
    acall), and calls/s with 1 to 256 in flight, no-op sync and async."""
    results: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        results.setdefault(key, []).append(value)

    with local_cluster() as c:
        noop = rh.function(targets.noop).to(c)
        anoop = rh.function(targets.anoop).to(c)
        echo = rh.function(targets.echo).to(c)
        # Random bytes: a run of b"x" hides costs that depend on content (a repr() of the
        # arguments per blocking call once cost 10 ms for 1 MiB of random bytes, half for b"x").
        mib = os.urandom(1 << 20)
        big_calls = max(8, calls // 30)
        for _ in range(rounds):
            s = sequential_sync(noop, calls)
            LATENCIES.extend(s.pop("samples"))  # type: ignore[arg-type]
            add("sync_stub_p50_us", s["p50_us"])
            add("sync_stub_p99_us", s["p99_us"])
            echo(mib)
            t = time.perf_counter()
            for _ in range(big_calls):
                echo(mib)
            add("sync_1MiB_MiB_per_s", big_calls / (time.perf_counter() - t))

            async def run() -> None:
                a = await sequential_async(noop, calls)
                add("acall_p50_us", a["p50_us"])
                add("acall_p99_us", a["p99_us"])
                await echo.acall(mib)
                t = time.perf_counter()
                for _ in range(big_calls):
                    await echo.acall(mib)
                add("acall_1MiB_MiB_per_s", big_calls / (time.perf_counter() - t))
                for width in widths:
                    add(
                        f"calls_per_s_{width}_in_flight",
                        await in_flight(noop, tput_calls if width > 1 else calls, width),
                    )
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


def _client_process(home: str, calls: int, width: int, ready: Any, start: Any, out: Any) -> None:
    import uvloop

    os.environ["RHZMQ_HOME"] = home
    c = rh.cluster("local", gateway_port=None)
    fn = rh.Function._bound(c, "noop", {"call": "sync"})

    async def run() -> float:
        await fn.acall(1)  # connected and warm before the start signal
        ready.put(1)
        start.wait()
        return await in_flight(fn, calls, width)

    out.put(uvloop.run(run()))


def many_clients(rounds: int = 3, processes: int = 8, calls: int = 10000) -> dict[str, Any]:
    """Total calls/s of ``processes`` client processes, 64 in flight each, started together."""
    results: dict[str, list[float]] = {}
    with local_cluster() as c:
        rh.function(targets.noop).to(c)
        home = os.environ["RHZMQ_HOME"]
        for _ in range(rounds):
            ready: Any = mp.Queue()
            out: Any = mp.Queue()
            start = mp.Event()
            procs = [
                mp.Process(target=_client_process, args=(home, calls, 64, ready, start, out))
                for _ in range(processes)
            ]
            for p in procs:
                p.start()
            for _ in procs:  # handshake: every client is connected and warm before the clock starts
                ready.get(timeout=120)
            t = time.perf_counter()
            start.set()
            rates = [out.get(timeout=300) for _ in procs]
            elapsed = time.perf_counter() - t
            for p in procs:
                p.join()
            results.setdefault(f"calls_per_s_{processes}_clients", []).append(
                processes * calls / elapsed
            )
            results.setdefault("slowest_client_calls_per_s", []).append(min(rates))
    return summarize(results)


PAYLOADS = (100, 10_000, 1 << 20, 16 << 20, 64 << 20)


def payloads(
    rounds: int = 3, sizes: tuple[int, ...] = PAYLOADS, budget: int = 256 << 20
) -> dict[str, Any]:
    """Echo throughput in MiB/s each way for bytes and NumPy payloads from 100 B to 64 MiB."""
    import numpy as np
    import uvloop

    results: dict[str, list[float]] = {}
    with local_cluster() as c:
        echo = rh.function(targets.echo).to(c)
        for _ in range(rounds):
            for size in sizes:
                calls = max(4, min(2000, budget // size))
                for kind, value in (
                    ("bytes", os.urandom(size)),
                    ("numpy", np.frombuffer(os.urandom(size), dtype=np.uint8)),
                ):

                    async def run(
                        value: Any = value, calls: int = calls, size: int = size
                    ) -> float:
                        await echo.acall(value)
                        t = time.perf_counter()
                        sem = asyncio.Semaphore(4)

                        async def one() -> None:
                            async with sem:
                                await echo.acall(value)

                        await asyncio.gather(*(one() for _ in range(calls)))
                        return calls * size / (time.perf_counter() - t) / (1 << 20)

                    results.setdefault(f"{kind}_{_size_label(size)}_MiB_per_s", []).append(
                        uvloop.run(run())
                    )
    return summarize(results)


def _size_label(size: int) -> str:
    for unit, factor in (("MiB", 1 << 20), ("KB", 1000)):
        if size >= factor:
            return f"{size // factor}{unit}"
    return f"{size}B"


def log_streaming(rounds: int = 3, calls: int = 2000) -> dict[str, Any]:
    """Calls/s of a function printing 10 lines, with its output streamed back vs not.

    ``streaming_cost`` is the median over adjacent pairs (one round streamed, one not, in turn
    first) of each pair's own cost, with three pairs per round asked (so its on/off figures say
    ``rounds: 9`` where runs before 2026-11-30 21:00 said 3): a round takes a fraction of a second, and
    on a shared machine the median of three rounds each way swung from 1 % to 15 % between
    runs of the same code (2026-11-30, round six).
    """
    import contextlib
    import io

    import uvloop

    results: dict[str, list[float]] = {}
    costs: list[float] = []
    with local_cluster() as c:
        chatty = rh.function(targets.ten_prints).to(c)

        async def run(stream: bool) -> float:
            async def one() -> None:
                await chatty.acall(1, stream_logs=stream)

            await one()
            t = time.perf_counter()
            for _ in range(calls // 8):
                await asyncio.gather(*(one() for _ in range(8)))
            return (calls // 8) * 8 / (time.perf_counter() - t)

        for i in range(3 * rounds):
            off = 0.0
            if i % 2:  # each order in turn: no first-of-the-pair effect on one side only
                off = uvloop.run(run(False))
            with contextlib.redirect_stdout(io.StringIO()):  # printing locally is part of the cost
                on = uvloop.run(run(True))
            if not i % 2:
                off = uvloop.run(run(False))
            results.setdefault("streaming_on_calls_per_s", []).append(on)
            results.setdefault("streaming_off_calls_per_s", []).append(off)
            costs.append(1 - on / off)
    out = summarize(results)
    out["streaming_cost"] = statistics.median(costs)
    return out


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory(calls: int = 10_000) -> dict[str, Any]:
    """RSS of the daemon and the worker after 100 calls and after ``calls`` more."""
    import uvloop

    with local_cluster() as c:
        noop = rh.function(targets.noop).to(c)
        st = c.status()
        daemon, worker = st["pid"], st["workers"][0]["pid"]

        async def run(n: int) -> None:
            await in_flight(noop, n, 64)

        uvloop.run(run(128))
        before = {"daemon": _rss(daemon), "worker": _rss(worker)}
        uvloop.run(run(calls))
        after = {"daemon": _rss(daemon), "worker": _rss(worker)}
    return {
        **{f"{k}_rss_mib_after_100": v / (1 << 20) for k, v in before.items()},
        **{f"{k}_rss_mib_after_{calls}": v / (1 << 20) for k, v in after.items()},
        "daemon_growth_mib": (after["daemon"] - before["daemon"]) / (1 << 20),
        "worker_growth_mib": (after["worker"] - before["worker"]) / (1 << 20),
    }


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


async def http_load(
    url: str, requests: int, concurrency: int, body: bytes, auth: dict[str, str] | None = None
) -> float:
    import aiohttp

    headers = {"content-type": "application/json", **(auth or {})}
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
                    uvloop.run(http_load(url, requests, concurrency, body, c.gateway_headers()))
                )
    finally:
        bare.kill()
        bare.join()
    out = summarize(results)
    out["gateway_vs_bare"] = out["gateway_rps"]["median"] / out["bare_starlette_rps"]["median"]
    return out


def have_sshd() -> bool:
    import shutil

    return bool(shutil.which("sshd")) or os.path.exists("/usr/sbin/sshd")


@contextlib.contextmanager
def loopback_ssh_cluster(name: str, hosts: int) -> Iterator[rh.Cluster]:
    """An SSH cluster bootstrapped for real on ``hosts`` OpenSSH ``sshd`` hosts on 127.0.0.N (the
    tests' helper, tests/sshd.py), with a temporary RHZMQ_HOME; torn down and every sshd stopped
    by PID afterwards."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from sshd import free_port, start_hosts

    with tempfile.TemporaryDirectory(prefix=f"rhzmq-{name}-") as root:
        old = os.environ.get("RHZMQ_HOME")
        os.environ["RHZMQ_HOME"] = str(Path(root) / "client")
        sshds = start_hosts(Path(root) / "hosts", hosts)
        try:
            c = rh.cluster(
                name=name,
                host=sshds.addresses,
                ssh_creds=sshds.creds(),
                server_port=free_port(["127.0.0.1"]),
                gateway_port=None,
                autostop_mins=-1,
            ).up_if_not()
            try:
                yield c
            finally:
                c.teardown()
        finally:
            sshds.stop()
            if old is None:
                os.environ.pop("RHZMQ_HOME", None)
            else:
                os.environ["RHZMQ_HOME"] = old


def ssh_cluster(rounds: int = 3, calls: int = 2000, tput_calls: int = 20000) -> dict[str, Any]:
    """The same no-op through an SSH cluster on a loopback ``sshd`` (SSH port forward + CURVE)
    and through the local daemon (ipc, no encryption), in one run: what the tunnel costs."""
    if not have_sshd():
        return {"skipped": "no sshd on this machine (apt-get install openssh-server)"}
    import uvloop

    results: dict[str, list[float]] = {}

    def measure(prefix: str, c: Any) -> None:
        noop = rh.function(targets.noop).to(c)
        for _ in range(rounds):
            s = sequential_sync(noop, calls)
            results.setdefault(f"{prefix}_sync_stub_p50_us", []).append(s["p50_us"])

            async def run() -> None:
                width = await in_flight(noop, tput_calls, 64)
                results.setdefault(f"{prefix}_calls_per_s_64_in_flight", []).append(width)

            uvloop.run(run())

    with loopback_ssh_cluster("perf-ssh", 1) as c:
        measure("ssh", c)
    with local_cluster() as c:
        measure("local", c)
    out = summarize(results)
    out["ssh_vs_local_throughput"] = (
        out["ssh_calls_per_s_64_in_flight"]["median"]
        / out["local_calls_per_s_64_in_flight"]["median"]
    )
    return out
