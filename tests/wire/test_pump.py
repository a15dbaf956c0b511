"""The pump's drain on real ZeroMQ sockets (inproc): bounded per wake-up, whatever peers send."""

from __future__ import annotations

import asyncio
from typing import Any

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


def test_replies_sent_while_draining_leave_with_the_drain_and_schedule_nothing() -> None:
    # A handler's sends are flushed at the end of the drain that called it. Each used to also
    # schedule one more pass of the pump (a recv raising zmq.Again and an EVENTS read, for
    # nothing): the broker paid it for every message it routed.
    async def main() -> tuple[list[bytes], int]:
        ctx = zmq.Context.instance()
        router = ctx.socket(zmq.ROUTER)
        router.bind("inproc://pump-replies")
        peer = ctx.socket(zmq.DEALER)
        peer.connect("inproc://pump-replies")
        pump: Pump

        def echo(frames: list[bytes]) -> None:
            pump.send(frames)  # [peer id, body]: straight back

        pump = Pump(router, echo, router=True)
        for _ in range(20):  # the constructor's first look
            await asyncio.sleep(0)
        passes = 0  # passes of this pump the loop is asked to run
        loop = asyncio.get_running_loop()
        call_soon = loop.call_soon

        def counted(callback: Any, *args: Any, **kwargs: Any) -> asyncio.Handle:
            nonlocal passes
            passes += getattr(callback, "__self__", None) is pump
            return call_soon(callback, *args, **kwargs)

        loop.call_soon = counted  # type: ignore[method-assign]
        replies = []
        for i in range(5):
            peer.send_multipart([b"%d" % i])
            for _ in range(10_000):  # the loop's turns until the echo is back
                if peer.poll(0):
                    break
                await asyncio.sleep(0)
            replies.append(peer.recv_multipart()[0])
        pump.close()
        peer.close(0)
        return replies, passes

    replies, passes = asyncio.run(main())
    assert replies == [b"0", b"1", b"2", b"3", b"4"]
    assert passes == 0
