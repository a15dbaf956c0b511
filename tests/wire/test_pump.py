"""The pump's drain on real ZeroMQ sockets (inproc): bounded per wake-up, whatever peers send."""

from __future__ import annotations

import asyncio

import msgpack
import zmq

from rhzmq.wire.pump import BATCH_HEADER, DRAIN_BATCH, Pump


def test_a_flood_of_empty_batches_cannot_hold_the_loop() -> None:
    # An empty BATCH holds no message; counted as none, a peer sending them faster than the
    # drain read them kept one wake-up going forever (timers, other sockets starved).
    async def main() -> tuple[int, int]:
        ctx = zmq.Context.instance()
        router = ctx.socket(zmq.ROUTER)
        router.bind("inproc://pump-flood")
        peer = ctx.socket(zmq.DEALER)
        peer.connect("inproc://pump-flood")
        handled: list[list[bytes]] = []
        empty = msgpack.packb([])
        for _ in range(3 * DRAIN_BATCH):
            peer.send_multipart([BATCH_HEADER, empty])
        peer.send_multipart([b"real"])
        pump = Pump(router, handled.append, router=True)
        pump._kicked = True  # one wake-up by hand, not the loop's
        pump._on_ready()
        after_one = len(handled)
        for _ in range(200):  # the rest arrives over the following wake-ups
            await asyncio.sleep(0)
        pump.close()
        peer.close(0)
        return after_one, len(handled)

    after_one, total = asyncio.run(main())
    assert after_one == 0  # the wake-up stopped after DRAIN_BATCH messages, before the last one
    assert total == 1  # and the real message still got through afterwards
