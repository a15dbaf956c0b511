"""Load: 32 client processes x 2,000 calls, mixed sync/async, random payloads and durations, on
two worker replicas. Every call must get exactly its own answer: none lost, none duplicated,
none crossed between callers (each carries a unique token)."""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any

import remote_objects as ro

import rhzmq as rh

PROCESSES = 32
CALLS = 2000


def client(home: str, index: int, out: Any) -> None:
    import asyncio
    import random

    os.environ["RHZMQ_HOME"] = home
    c = rh.cluster("local", gateway_port=None)
    sync_fn = rh.Function._bound(c, "token_echo", {"call": "sync"})
    async_fn = rh.Function._bound(c, "atoken_echo", {"call": "async"})
    rng = random.Random(index)
    bad: list[str] = []

    def check(token: str, payload: bytes, got: Any) -> None:
        if tuple(got) != (token, len(payload), sum(payload[:64])):
            bad.append(f"{token}: got {got!r}")

    async def run() -> int:
        sem = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            token = f"p{index}-c{i}"
            payload = os.urandom(rng.choice((0, 10, 1000, 100_000)))
            pause = rng.choice((0.0, 0.0, 0.0, 0.001))
            fn = async_fn if i % 2 else sync_fn
            async with sem:
                check(token, payload, await fn.acall(token, payload, pause))

        await asyncio.gather(*(one(i) for i in range(CALLS - 50)))
        return CALLS - 50

    done = asyncio.run(run())
    for i in range(CALLS - 50, CALLS):  # the blocking stub, through the sync facade
        token = f"p{index}-c{i}"
        payload = os.urandom(rng.choice((0, 10, 1000)))
        check(token, payload, sync_fn(token, payload, 0.0))
        done += 1
    out.put((index, done, bad))


def test_32_clients_2000_calls_each_exactly_their_own_answers(cluster: rh.Cluster) -> None:
    rh.function(ro.token_echo).to(cluster, replicas=2)
    rh.function(ro.atoken_echo).to(cluster, env=rh.env(name="token_echo-replicas"), replicas=2)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=client, args=(os.environ["RHZMQ_HOME"], i, out))
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sorted(r[0] for r in results) == list(range(PROCESSES))
    assert all(r[1] == CALLS for r in results), "calls lost"
    crossed = [b for r in results for b in r[2]]
    assert crossed == [], crossed[:5]
    st = cluster.status()
    assert st["inflight"] == 0
    done = sum(w["calls_done"] for w in st["workers"] if w["env"] == "token_echo-replicas")
    assert done >= PROCESSES * CALLS, "a replica answered fewer calls than were made"
    assert all(
        w["calls_done"] > PROCESSES * CALLS // 10
        for w in st["workers"]
        if w["env"] == "token_echo-replicas"
    )
    cluster.delete("token_echo-replicas")
