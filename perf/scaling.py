"""How cost grows (issue 20): calls/s and p50 as one thing grows and the rest stays fixed, and the
latency tail at a steady load.

    python -m perf --only scaling            # all six below, several minutes
    python -m perf --only scaling.objects    # or any of them alone
    python -m perf --only tails              # 64 in flight for 60 s

None of these is in the default run (``python -m perf``): they take minutes, and they would change
how long the default run takes and so what its history compares. ``--quick`` shrinks every size
so that each runs in seconds (a smoke run, not a measurement).

Scenarios, each a section of the report whose keys read ``<what>=<value> <figure>``:

* ``scaling.replicas``: worker replicas of a no-op, 1 -> 64, 64 calls in flight;
* ``scaling.clients``: client processes, 1 -> 64, each with 64 in flight, total calls/s;
* ``scaling.objects``: named objects on one worker, 1 -> 100,000; calls to one of them must
  not slow down as the directory grows;
* ``scaling.payload``: echo 64 B -> 64 MiB, one call at a time, MiB/s and the peak RSS one
  call, and a run of calls, adds to the client, the daemon (broker) and the worker, as a
  multiple of the payload (the issue's rule: at most ~3x in any process);
* ``scaling.inflight``: calls in flight from one asyncio client, 1 -> 4,096;
* ``scaling.hosts``: hosts of an SSH cluster on loopback ``sshd``, 1 -> 6 (see
  :func:`hosts` for what "a function on every host" can mean through the public API);
* ``tails``: p50, p99 and p99.9 of every call's latency at 64 in flight, and p99/p50 (the
  issue's target: p99 <= 2x p50).

Every client-side latency is ``time.perf_counter()`` around one ``acall``. On a 2-core machine
nothing here can add capacity (more replicas, clients or hosts share the same two cores), so these
figures show what the *overhead* of more of each costs, which is what issue 20 asks about.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing as mp
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

import rhzmq as rh

from . import bench, targets

REPLICAS = (1, 2, 4, 8, 16, 32, 64)
CLIENTS = (1, 2, 4, 8, 16, 32, 64)
OBJECTS = (1, 10, 100, 1_000, 10_000, 100_000)
PAYLOADS = tuple(64 << (4 * i) for i in range(6))  # 64 B, 1 KiB, 16 KiB, 256 KiB, 4 MiB, 64 MiB
IN_FLIGHT = (1, 4, 16, 64, 256, 1024, 4096)
HOSTS = (1, 2, 3, 4, 5, 6)

#: The sections this module adds, in the order ``--only scaling`` runs them.
SECTIONS = (
    "scaling.replicas",
    "scaling.clients",
    "scaling.objects",
    "scaling.payload",
    "scaling.inflight",
    "scaling.hosts",
)


def key(what: str, value: int | str, figure: str) -> str:
    """A report key: ``replicas=8 calls_per_s`` (perf.charts reads them back with :func:`parse`)."""
    return f"{what}={value} {figure}"


def parse(k: str) -> tuple[str, str, str]:
    """``"replicas=8 calls_per_s"`` -> ``("replicas", "8", "calls_per_s")``."""
    point, figure = k.split(" ", 1)
    what, value = point.split("=", 1)
    return what, value, figure


def size_label(size: int) -> str:
    """64B, 1KiB, 16KiB, 256KiB, 4MiB, 64MiB: exact, unlike bench._size_label's 1000s."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift}{unit}"
    return f"{size}B"


def parse_size(label: str) -> int:
    for unit, shift in (("MiB", 20), ("KiB", 10), ("B", 0)):
        if label.endswith(unit):
            return int(label[: -len(unit)]) << shift
    raise ValueError(label)


def _pct_us(lat: list[float], q: float) -> float:
    """The q-quantile of sorted latencies (seconds), in µs (nearest rank, as bench._pct)."""
    return lat[min(len(lat) - 1, int(len(lat) * q))] * 1e6


async def timed_in_flight(
    fn: rh.Function, calls: int, width: int, warm_up: bool = True
) -> tuple[float, list[float]]:
    """Calls/s with ``width`` calls always in flight from one asyncio client, and every call's
    latency (seconds, unsorted). bench.in_flight without the latencies is the same loop."""
    per_worker = max(1, calls // width)
    lat: list[float] = []
    add, clock = lat.append, time.perf_counter

    async def worker() -> None:
        for _ in range(per_worker):
            t = clock()
            await fn.acall(1)
            add(clock() - t)

    if warm_up:
        await asyncio.gather(*(fn.acall(1) for _ in range(min(width * 2, 8192))))
    t0 = clock()
    await asyncio.gather(*(worker() for _ in range(width)))
    return per_worker * width / (clock() - t0), lat


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for a block (the local daemon inherits them at start-up)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _add(results: dict[str, list[float]], k: str, value: float) -> None:
    results.setdefault(k, []).append(value)


def _throughput_and_p50(
    results: dict[str, list[float]],
    what: str,
    x: int | str,
    fn: rh.Function,
    calls: int,
    width: int,
) -> None:
    import uvloop

    rate, lat = uvloop.run(timed_in_flight(fn, calls, width))
    lat.sort()
    _add(results, key(what, x, f"calls_per_s_{width}_in_flight"), rate)
    _add(results, key(what, x, "p50_us"), _pct_us(lat, 0.5))


# -- replicas ----------------------------------------------------------------------------------


def replicas(
    rounds: int = 3, counts: tuple[int, ...] = REPLICAS, calls: int = 20000
) -> dict[str, Any]:
    """A no-op on 1 -> 64 worker replicas, 64 in flight: what choosing among more workers costs
    (each call goes to the least loaded replica). Each count gets its own env, stopped after;
    how long its workers took to start is reported too, and a count whose workers did not start
    is reported as ``replicas=<n> error`` instead of ending the run."""
    results: dict[str, list[float]] = {}
    extra: dict[str, Any] = {}
    with bench.local_cluster() as c:
        for n in counts:
            name, env = f"noop_x{n}", f"noop-x{n}"
            t = time.monotonic()
            try:
                fn = rh.function(targets.noop).to(c, name=name, env=rh.env(name=env), replicas=n)
            except rh.RhzmqError as exc:
                # Seen on the 2-core machine under load: while 64 workers start at once the
                # broker misses the client's pings (ClusterNotRunning after ~4 s). Recorded, not
                # fatal: the other counts still say something.
                why = f"{type(exc).__name__} after {time.monotonic() - t:.1f} s: {exc}"
                print(f"scaling.replicas: {n} replicas failed to start: {why}", flush=True)
                extra[key("replicas", n, "error")] = why
                with contextlib.suppress(rh.RhzmqError):
                    c.delete(env)
                if not c.is_up():
                    break
                continue
            extra[key("replicas", n, "start_s")] = time.monotonic() - t
            for _ in range(rounds):
                _throughput_and_p50(results, "replicas", n, fn, calls, 64)
            c.delete(name)
            c.delete(env)  # an env's name: its worker processes stop
    return {**bench.summarize(results), **extra}


# -- client processes --------------------------------------------------------------------------


def _client(home: str, calls: int, width: int, ready: Any, start: Any, out: Any) -> None:
    """One client process: connected and warmed up before ``ready``; after ``start``, exactly
    ``calls`` calls. (bench._client_process runs its 256-call warm-up after the start signal:
    with the ~600 calls each of 64 clients here, that would put ~40 % more calls than counted
    into the timed span.)"""
    import uvloop

    os.environ["RHZMQ_HOME"] = home
    c = rh.cluster("local", gateway_port=None)
    fn = rh.Function._bound(c, "noop", {"call": "sync"})

    async def run() -> tuple[float, float]:
        await asyncio.gather(*(fn.acall(1) for _ in range(width * 2)))
        ready.put(os.getpid())
        await asyncio.get_running_loop().run_in_executor(None, start.wait)
        rate, lat = await timed_in_flight(fn, calls, width, warm_up=False)
        return rate, statistics.median(lat) * 1e6

    out.put(uvloop.run(run()))


def clients(
    rounds: int = 3, counts: tuple[int, ...] = CLIENTS, calls: int = 40000
) -> dict[str, Any]:
    """Total calls/s of 1 -> 64 client processes, 64 in flight each, ``calls`` in all (split
    between them), started together after each has connected and warmed up; with the median of
    the clients' p50s."""
    results: dict[str, list[float]] = {}
    with bench.local_cluster() as c:
        rh.function(targets.noop).to(c)
        home = os.environ["RHZMQ_HOME"]
        for n in counts:
            each = max(64 * 4, calls // n)
            for _ in range(rounds):
                ready: Any = mp.Queue()
                out: Any = mp.Queue()
                start: Any = mp.Event()
                procs = [
                    mp.Process(target=_client, args=(home, each, 64, ready, start, out))
                    for _ in range(n)
                ]
                for p in procs:
                    p.start()
                try:
                    for _ in procs:  # handshake: every client connected and warm
                        ready.get(timeout=180)
                    t = time.perf_counter()
                    start.set()
                    done = [out.get(timeout=600) for _ in procs]
                    elapsed = time.perf_counter() - t
                finally:
                    for p in procs:
                        p.join(timeout=30)
                        if p.is_alive():
                            p.kill()
                            p.join()
                per = (each // 64) * 64  # what timed_in_flight does with each
                _add(results, key("clients", n, "calls_per_s"), n * per / elapsed)
                _add(
                    results, key("clients", n, "p50_us"), statistics.median(p50 for _, p50 in done)
                )
    return bench.summarize(results)


# -- named objects -----------------------------------------------------------------------------


def objects(
    rounds: int = 3, counts: tuple[int, ...] = OBJECTS, calls: int = 20000, seq_calls: int = 2000
) -> dict[str, Any]:
    """One no-op among 1 -> 100,000 named objects on the same (default) worker: its calls/s at
    64 in flight and its sequential ``acall`` p50 must stay flat as the directory grows. The
    objects are small ints stored with ``cluster.aput`` (the public way, one PUT each, 256 at a
    time); the rate of those puts and the daemon's and worker's RSS are reported too."""
    import uvloop

    results: dict[str, list[float]] = {}
    out: dict[str, Any] = {}
    # The worker refuses more than RHZMQ_MAX_OBJECTS (10,000 by default); the daemon and its
    # workers read it at start-up.
    with _environ(RHZMQ_MAX_OBJECTS=str(max(counts) + 16)), bench.local_cluster() as c:
        fn = rh.function(targets.noop).to(c)
        st = c.status()
        daemon = int(st["pid"])
        worker = next(int(w["pid"]) for w in st["workers"] if "noop" in w["objects"])
        have = 1  # the no-op is one of the objects

        async def put_up_to(n: int) -> float:
            nonlocal have
            t, first = time.perf_counter(), have
            while have < n:
                batch = range(have, min(n, have + 256))
                await asyncio.gather(*(c.aput(f"obj{i:06d}", i) for i in batch))
                have = batch[-1] + 1
            return (have - first) / (time.perf_counter() - t)

        async def sequential() -> float:
            lat = []
            for _ in range(seq_calls):
                t = time.perf_counter()
                await fn.acall(1)
                lat.append(time.perf_counter() - t)
            return statistics.median(lat) * 1e6

        for n in counts:
            if n > have:
                out[key("objects", n, "puts_per_s")] = uvloop.run(put_up_to(n))
            for _ in range(rounds):
                _throughput_and_p50(results, "objects", n, fn, calls, 64)
                _add(results, key("objects", n, "acall_p50_us"), uvloop.run(sequential()))
            out[key("objects", n, "daemon_rss_mib")] = _rss(daemon) / (1 << 20)
            out[key("objects", n, "worker_rss_mib")] = _rss(worker) / (1 << 20)
        if c.get(f"obj{have - 1:06d}") != have - 1:  # the last object is really there
            raise RuntimeError("the objects benchmark's last object is missing")
    return {**bench.summarize(results), **out}


# -- payload size and peak memory --------------------------------------------------------------


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _rss(pid: int) -> int:
    return _status_kib(pid, "VmRSS") * 1024


def _reset_peak(pid: int) -> None:
    """Set the process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0, same user or root)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def payload(
    rounds: int = 3, sizes: tuple[int, ...] = PAYLOADS, budget: int = 512 << 20
) -> dict[str, Any]:
    """Echo of random bytes from 64 B to 64 MiB, one call at a time: MiB/s each way, and how far
    each of the client, the daemon (the broker runs in it) and the worker went above its RSS
    before the first call of the size (the kernel's peak RSS, VmHWM, reset there).

    Two peaks per process, as multiples of the payload size (from 1 MiB up; below that the
    growth is a few pages and the ratio means nothing; ``*_peak_growth_mib`` has them all):

    * ``<process>_one_call_peak_x``: after the first call of the size: what one call costs, the
      issue's rule (at most ~3x);
    * ``<process>_all_calls_peak_x``: after all ``calls`` of the size, back to back: memory a
      process frees late (garbage freed by the cyclic GC, buffers released by ZeroMQ's I/O
      thread) piles up here.

    The payload is made before the baseline, so the client's figures count sending it and
    receiving the answer (the answer alone is 1x). MiB/s times the calls after the first."""
    import uvloop

    results: dict[str, list[float]] = {}
    with bench.local_cluster() as c:
        echo = rh.function(targets.echo).to(c)
        st = c.status()
        pids = {
            "client": os.getpid(),
            "daemon": int(st["pid"]),
            "worker": next(int(w["pid"]) for w in st["workers"] if "echo" in w["objects"]),
        }
        try:
            for pid in pids.values():
                _reset_peak(pid)
        except OSError as exc:
            return {"skipped": f"cannot reset peak RSS through /proc/<pid>/clear_refs: {exc}"}
        uvloop.run(echo.acall(b"warm"))

        def peaks(label: str, size: int, base: dict[str, int], when: str) -> None:
            for name, pid in pids.items():
                growth = max(0, _status_kib(pid, "VmHWM") * 1024 - base[name])
                _add(results, key("size", label, f"{name}_{when}_peak_growth_mib"), growth / 2**20)
                if size >= 1 << 20:
                    _add(results, key("size", label, f"{name}_{when}_peak_x"), growth / size)

        for _ in range(rounds):
            for size in sizes:
                calls = max(3, min(2000, budget // size))
                label = size_label(size)
                value = os.urandom(size)

                async def run(n: int, value: bytes = value) -> float:
                    t = time.perf_counter()
                    for _ in range(n):
                        await echo.acall(value)
                    return time.perf_counter() - t

                gc.collect()
                base = {}
                for name, pid in pids.items():
                    _reset_peak(pid)
                    base[name] = _rss(pid)
                uvloop.run(run(1))
                peaks(label, size, base, "one_call")
                elapsed = uvloop.run(run(calls - 1))
                peaks(label, size, base, "all_calls")
                _add(results, key("size", label, "calls"), calls)
                _add(results, key("size", label, "MiB_per_s"), (calls - 1) * size / elapsed / 2**20)
                del value
    return bench.summarize(results)


# -- calls in flight ---------------------------------------------------------------------------


def inflight(
    rounds: int = 3, widths: tuple[int, ...] = IN_FLIGHT, calls: int = 20000
) -> dict[str, Any]:
    """One asyncio client, 1 -> 4,096 calls in flight: calls/s, and the p50 of each call's
    latency (which grows with the queue: Little's law says p50 ~ width / rate)."""
    import uvloop

    results: dict[str, list[float]] = {}
    with bench.local_cluster() as c:
        fn = rh.function(targets.noop).to(c)
        for width in widths:
            n = max(calls, width * 8) if width > 1 else max(1000, calls // 10)
            for _ in range(rounds):
                rate, lat = uvloop.run(timed_in_flight(fn, n, width))
                lat.sort()
                _add(results, key("in_flight", width, "calls_per_s"), rate)
                _add(results, key("in_flight", width, "p50_us"), _pct_us(lat, 0.5))
                _add(results, key("in_flight", width, "p99_us"), _pct_us(lat, 0.99))
    return bench.summarize(results)


# -- SSH hosts ---------------------------------------------------------------------------------


def hosts(rounds: int = 3, counts: tuple[int, ...] = HOSTS, calls: int = 20000) -> dict[str, Any]:
    """An SSH cluster of ``max(counts)`` hosts on loopback sshd (the tests' helper); for each
    count n, the no-op on the first n hosts, 64 calls in flight spread evenly over them.

    Why not one name replicated on every host: an env's replicas all run on the env's one node
    (``rh.env(compute={"node": i})``), and putting the same name into a second env *moves* it
    (the broker keeps one env per name). So each host gets its own env and its own name,
    ``noop_h<i>``, and the client spreads its calls over the n names: the same work a
    per-host replica would do, routed by the client instead of the broker. All hosts' daemons
    run for every n (the cluster is bootstrapped once; n only says how many hold the no-op)."""
    if not bench.have_sshd():
        return {"skipped": "no sshd on this machine (apt-get install openssh-server)"}
    import uvloop

    results: dict[str, list[float]] = {}
    out: dict[str, Any] = {}
    t = time.monotonic()
    with bench.loopback_ssh_cluster("perf-hosts", max(counts)) as c:
        out["bootstrap_s"] = time.monotonic() - t
        stubs = [
            rh.function(targets.noop).to(
                c, name=f"noop_h{i}", env=rh.env(name=f"h{i}", compute={"node": i})
            )
            for i in range(max(counts))
        ]
        where = {w["env"]: w.get("node") for w in c.status()["workers"]}
        out["nodes_of_envs"] = ", ".join(f"{e}: {where.get(e)}" for e in sorted(where))
        for n in counts:
            for _ in range(rounds):
                rate, lat = uvloop.run(_spread(stubs[:n], calls, 64))
                lat.sort()
                _add(results, key("hosts", n, "calls_per_s_64_in_flight"), rate)
                _add(results, key("hosts", n, "p50_us"), _pct_us(lat, 0.5))
    return {**bench.summarize(results), **out}


async def _spread(stubs: list[rh.Function], calls: int, width: int) -> tuple[float, list[float]]:
    """timed_in_flight over several stubs: in-flight slot j always calls stubs[j % n]."""
    per_worker = max(1, calls // width)
    lat: list[float] = []
    add, clock = lat.append, time.perf_counter

    async def worker(fn: rh.Function) -> None:
        for _ in range(per_worker):
            t = clock()
            await fn.acall(1)
            add(clock() - t)

    await asyncio.gather(*(stubs[j % len(stubs)].acall(1) for j in range(width * 2)))
    t0 = clock()
    await asyncio.gather(*(worker(stubs[j % len(stubs)]) for j in range(width)))
    return per_worker * width / (clock() - t0), lat


# -- tails -------------------------------------------------------------------------------------


def tails(seconds: float = 60.0, width: int = 64) -> dict[str, Any]:
    """One asyncio client keeping ``width`` no-op calls in flight for ``seconds``: p50, p99,
    p99.9 and the worst of every call's latency, and p99/p50 (issue 20's target: at most 2).
    One long run, not rounds: the tail is what a long run sees."""
    import uvloop

    async def run(fn: rh.Function) -> tuple[list[float], float]:
        lat: list[float] = []
        add, clock = lat.append, time.perf_counter
        await asyncio.gather(*(fn.acall(1) for _ in range(width * 4)))  # warm-up
        t0 = clock()
        until = t0 + seconds

        async def worker() -> None:
            while clock() < until:
                t = clock()
                await fn.acall(1)
                add(clock() - t)

        await asyncio.gather(*(worker() for _ in range(width)))
        return lat, clock() - t0

    with bench.local_cluster() as c:
        fn = rh.function(targets.noop).to(c)
        lat, elapsed = uvloop.run(run(fn))
    lat.sort()
    p50, p99 = _pct_us(lat, 0.5), _pct_us(lat, 0.99)
    return {
        "seconds": elapsed,
        "calls": len(lat),
        "calls_per_s": len(lat) / elapsed,
        "p50_us": p50,
        "p99_us": p99,
        "p99.9_us": _pct_us(lat, 0.999),
        "max_us": lat[-1] * 1e6,
        "p99_over_p50": p99 / p50,
        "target_p99_at_most_2x_p50": "met" if p99 <= 2 * p50 else "not met",
    }
