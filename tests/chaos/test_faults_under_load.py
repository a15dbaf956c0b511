"""A replica SIGKILLed in the middle of a load run: only the calls it held fail, with
WorkerDiedError; every other call gets exactly its own answer; the replica comes back."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from typing import Any

import remote_objects as ro
from helpers import worker_pid

import rhzmq as rh

PROCESSES = 8
CALLS = 600


def client(home: str, index: int, ready: Any, start: Any, out: Any) -> None:
    import asyncio

    os.environ["RHZMQ_HOME"] = home
    fn = rh.Function._bound(rh.cluster("local", gateway_port=None), "token_echo", {"call": "sync"})
    ok = died = 0
    other: list[str] = []

    async def run() -> None:
        nonlocal ok, died
        await fn.acall("warm", b"", 0.0)
        ready.put(index)  # connected and warm
        start.wait()
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            nonlocal ok, died
            token = f"p{index}-c{i}"
            async with sem:
                try:
                    got = await fn.acall(token, b"abc", 0.002)
                except rh.WorkerDiedError:
                    died += 1
                    return
                except Exception as exc:
                    other.append(f"{type(exc).__name__}: {exc}")
                    return
            if tuple(got) != (token, 3, sum(b"abc")):
                other.append(f"{token} crossed: {got!r}")
            else:
                ok += 1

        await asyncio.gather(*(one(i) for i in range(CALLS)))

    asyncio.run(run())
    out.put((ok, died, other))


def test_sigkill_of_a_replica_during_load(cluster: rh.Cluster) -> None:
    rh.function(ro.token_echo).to(cluster, env=rh.env(name="loadfault"), replicas=2)
    victim = worker_pid(cluster, "loadfault.1")
    ctx = mp.get_context("spawn")
    ready, start, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=client, args=(os.environ["RHZMQ_HOME"], i, ready, start, out))
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    assert sorted(ready.get(timeout=60) for _ in procs) == list(range(PROCESSES))  # handshake
    start.set()
    time.sleep(0.4)
    os.kill(victim, signal.SIGKILL)
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    ok = sum(r[0] for r in results)
    died = sum(r[1] for r in results)
    other = [x for r in results for x in r[2]]
    assert other == [], other[:5]
    assert ok + died == PROCESSES * CALLS
    assert 0 < died < PROCESSES * CALLS // 4, f"{died} calls died with the replica"
    assert worker_pid(cluster, "loadfault.1") != victim  # back for the next call
    cluster.delete("loadfault")
