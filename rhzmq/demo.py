"""The README's first command: the quickstart example end to end on the embedded local cluster.

Run it with ``python -m rhzmq.demo``. It starts the local daemon (or uses a running one), sends a
function and a class to it, calls them from plain code and from asyncio, reads the HTTP gateway,
and tears the cluster down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import Iterator

import anyio

import rhzmq as rh

log = logging.getLogger("rhzmq.demo")


def add(a: int, b: int) -> int:
    print(f"adding {a} and {b}")
    return a + b


class Counter(rh.Module):
    def __init__(self, start: int = 0) -> None:
        self.n = start

    def incr(self, k: int = 1) -> int:
        self.n += k
        return self.n

    async def slow_double(self, x: int) -> int:
        await anyio.sleep(0.1)
        return 2 * x

    def count_to(self, n: int) -> Iterator[int]:
        yield from range(n)


async def async_part(remote_add: rh.Function, c: rh.RemoteObject) -> None:
    assert await remote_add.acall(1, 2) == 3
    assert await c.slow_double(4) == 8
    results = await asyncio.gather(*(remote_add.acall(i, i, stream_logs=False) for i in range(100)))
    assert results == [2 * i for i in range(100)]
    print("asyncio: 100 concurrent calls ok")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cluster = rh.cluster("local").up_if_not()  # also rh.here
    remote_add = rh.function(add).to(cluster)  # name defaults to the function's name
    assert remote_add(1, 2) == 3  # prints "(add) adding 1 and 2" as it happens
    RemoteCounter = rh.module(Counter).to(cluster)
    c = RemoteCounter(5, name="counter")  # constructed remotely, held under "counter"
    assert c.incr() == 6 and c.n == 6
    assert list(c.count_to(3)) == [0, 1, 2]  # generators stream item by item
    asyncio.run(async_part(remote_add, c))
    assert set(cluster.keys()) >= {"add", "counter"}
    same = cluster.get("counter", remote=True)  # a second stub, same object
    assert same.incr() == 7
    if cluster.gateway_url:
        # Any language can call it too: POST JSON with the gateway's bearer token.
        request = urllib.request.Request(
            f"{cluster.gateway_url}/counter/incr",
            data=json.dumps({"kwargs": {"k": 3}}).encode(),
            headers={"content-type": "application/json", **cluster.gateway_headers()},
        )
        with urllib.request.urlopen(request) as r:
            print("HTTP POST /counter/incr {k: 3} ->", json.loads(r.read()))
    cluster.delete("counter")
    cluster.teardown()
    print("demo finished: every assertion held")


if __name__ == "__main__":
    main()
