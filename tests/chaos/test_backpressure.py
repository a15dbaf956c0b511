"""A slow consumer of a fast generator slows the producer down (credit-based flow control):
nothing piles up without bound, nothing is dropped."""

from __future__ import annotations

import asyncio
import time

import remote_objects as ro

import rhzmq as rh
from rhzmq.wire.client import STREAM_CREDIT


def test_slow_consumer_slows_the_producer(cluster: rh.Cluster) -> None:
    hose = rh.module(ro.Firehose).to(cluster)(name="firehose")
    watcher = cluster.get("firehose", remote=True)
    it = iter(hose.items(20_000, 10_000))  # 200 MB if nothing held the producer back
    first = [next(it) for _ in range(10)]
    assert all(len(x) == 10_000 for x in first)
    time.sleep(0.5)  # a slow consumer: the producer gets ahead only by its credit
    ahead = watcher.produced
    assert ahead <= STREAM_CREDIT + 10 + 1, f"the producer ran {ahead} items ahead"
    rest = sum(1 for _ in it)
    assert rest + 10 == 20_000, "items were dropped"
    assert watcher.produced == 20_000


def test_async_generator_is_held_back_too(cluster: rh.Cluster) -> None:
    hose = rh.module(ro.Firehose).to(cluster)(name="afirehose")
    watcher = cluster.get("afirehose", remote=True)

    async def consume() -> list[int]:
        got = []
        async for x in hose.aitems.aiter(5_000):
            got.append(x)
            if len(got) == 5:
                await asyncio.sleep(0.5)
                assert await watcher.rh_agetattr("produced") <= STREAM_CREDIT + 5 + 1
        return got

    assert asyncio.run(consume()) == list(range(5_000))
    cluster.delete(["firehose", "afirehose"])
