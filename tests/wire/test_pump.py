"""The pump's drain on real ZeroMQ sockets (inproc): bounded per wake-up, whatever peers send."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import msgpack
import zmq
from helpers import router_and_peer

from rhzmq.wire.pump import BATCH_HEADER, DRAIN_BATCH, FLUSH_AT, Pump, split_batch


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


class _Escapes(BaseException):
    """Not an Exception: the pump's per-message guard does not catch it."""


def test_what_a_drain_left_goes_on_after_an_error_escapes_it() -> None:
    # Sends made while draining wait for the drain's flush; an error escaping the drain (here a
    # handler's BaseException; also a recv error) skips that flush, and must not leave the
    # reply unsent or the next message unread until some other traffic comes.
    async def main() -> tuple[list[bytes], list[bytes], list[str]]:
        ctx = zmq.Context.instance()
        router = ctx.socket(zmq.ROUTER)
        router.bind("inproc://pump-escape")
        peer = ctx.socket(zmq.DEALER)
        peer.connect("inproc://pump-escape")
        loop = asyncio.get_running_loop()
        errors: list[str] = []
        loop.set_exception_handler(lambda _, context: errors.append(repr(context["exception"])))
        handled: list[bytes] = []
        pump: Pump

        def handler(frames: list[bytes]) -> None:
            handled.append(frames[1])
            pump.send(frames)  # the echo, queued for the drain's flush
            if frames[1] == b"0":
                raise _Escapes()

        pump = Pump(router, handler, router=True)
        for _ in range(20):
            await asyncio.sleep(0)
        peer.send_multipart([b"0"])
        peer.send_multipart([b"1"])
        got: list[bytes] = []
        for _ in range(2000):  # turns of the loop: no timer, nothing else would wake the pump
            await asyncio.sleep(0)
            while peer.poll(0):
                got.append(peer.recv_multipart()[-1])
            if len(handled) == 2 and got:
                break
        pump.close()
        peer.close(0)
        return handled, got, errors

    handled, got, errors = asyncio.run(main())
    assert handled == [b"0", b"1"]
    assert got  # the echoes left (as one BATCH or two messages)
    assert errors == ["_Escapes()"]


def test_a_forwarder_takes_small_frames_as_bytes_and_large_payloads_uncopied() -> None:
    # The broker's pump (zero_copy) hands large payload frames on as the zmq.Frame it received,
    # so 64 MiB go through without a copy; everything else arrives as bytes, whatever its
    # position: the routing id, header and meta are read by the broker, and small payloads are
    # cheaper as bytes than as Frame objects. A frame's position decides nothing but whether
    # it may be large (a big frame where the protocol has a small one is still handed on).
    big = bytes(range(256)) * 1024  # 256 KiB, over the zero-copy threshold

    async def main() -> list[list[Any]]:
        ctx = zmq.Context.instance()
        router = ctx.socket(zmq.ROUTER)
        router.bind("inproc://pump-zero-copy")
        peer = ctx.socket(zmq.DEALER)
        peer.setsockopt(zmq.IDENTITY, b"peer")
        peer.connect("inproc://pump-zero-copy")
        handled: list[list[Any]] = []
        peer.send_multipart([b"header", b"meta", b"small", big, b"tail"])
        peer.send_multipart([b"header", big])  # a big frame early: taken, as bytes
        peer.send_multipart([b"lone"])
        pump = Pump(router, handled.append, router=True, zero_copy=True)
        for _ in range(50):
            await asyncio.sleep(0)
            if len(handled) == 3:
                break
        pump.close()
        peer.close(0)
        return handled

    first, second, third = asyncio.run(main())
    assert first[:3] == [b"peer", b"header", b"meta"] and first[3] == b"small"
    assert all(type(f) is bytes for f in first[:4]) and first[5] == b"tail"
    assert isinstance(first[4], zmq.Frame) and first[4].bytes == big  # not copied
    assert second == [b"peer", b"header", big] and type(second[2]) is bytes
    assert third == [b"peer", b"lone"]


def test_a_long_burst_starts_leaving_before_the_loop_iteration_ends() -> None:
    # Pipelining: 64 calls made in one loop iteration used to leave as one BATCH at its end, so
    # the broker and worker idled while the client made them (and the client idled while they
    # worked). The first FLUSH_AT leave at once; the rest at the end of the iteration.
    async def main() -> tuple[list[list[bytes]], bool, list[list[bytes]]]:
        ctx = zmq.Context.instance()
        peer = ctx.socket(zmq.ROUTER)
        peer.bind("inproc://pump-burst")
        dealer = ctx.socket(zmq.DEALER)
        dealer.connect("inproc://pump-burst")
        pump = Pump(dealer, lambda frames: None)
        for _ in range(20):  # the constructor's first look
            await asyncio.sleep(0)
        for i in range(FLUSH_AT + 8):
            pump.send([b"m%d" % i])
        # Still the same loop iteration: nothing has given the loop a turn.
        first = split_batch(peer.recv_multipart()[2]) if peer.poll(5000) else []
        held = not peer.poll(100)  # the other 8 wait for the iteration's end
        for _ in range(20):
            await asyncio.sleep(0)
        rest = split_batch(peer.recv_multipart()[2]) if peer.poll(5000) else []
        pump.close()
        peer.close(0)
        return first, held, rest

    first, held, rest = asyncio.run(main())
    assert first == [[b"m%d" % i] for i in range(FLUSH_AT)]
    assert held
    assert rest == [[b"m%d" % i] for i in range(FLUSH_AT, FLUSH_AT + 8)]


def test_bursts_sent_while_answers_arrive_lose_no_answer() -> None:
    # A flush inside send() may consume the socket's "readable" edge while an answer waits;
    # the pump must still read it (no later traffic would wake it). An echo peer answers every
    # message at once while the pump sends bursts of FLUSH_AT + 8, iteration after iteration:
    # every answer arrives.
    ctx = zmq.Context.instance()
    peer = ctx.socket(zmq.ROUTER)
    peer.bind("inproc://pump-echo-bursts")
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            if peer.poll(50):
                peer.send_multipart(peer.recv_multipart())
        peer.close(0)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    bursts, size = 200, FLUSH_AT + 8

    async def main() -> int:
        dealer = ctx.socket(zmq.DEALER)
        dealer.connect("inproc://pump-echo-bursts")
        got: list[list[bytes]] = []
        done = asyncio.Event()

        def on_answer(frames: list[bytes]) -> None:
            got.append(frames)
            if len(got) == bursts * size:
                done.set()

        pump = Pump(dealer, on_answer)
        for burst in range(bursts):
            for i in range(size):
                pump.send([b"%d.%d" % (burst, i)])
            await asyncio.sleep(0)
        try:
            await asyncio.wait_for(done.wait(), 20)
        except TimeoutError:
            pass
        pump.close()
        return len(got)

    try:
        answered = asyncio.run(main())
    finally:
        stop.set()
        thread.join(5)
    assert answered == bursts * size


def test_a_router_flushes_at_the_end_of_the_iteration_and_keeps_each_peers_order() -> None:
    # A ROUTER's failed send runs on_unroutable (the broker's handler), which sends in turn. An
    # early flush there ran it in the middle of the broker code making the sends, and a flush
    # nested in a flush delivered a peer's later messages before its earlier ones.
    async def main() -> list[bytes]:
        router, peer = router_and_peer("inproc://pump-router-order", b"P")
        pump: Pump

        def gone(_: bytes) -> None:  # as the broker does: tell others about the lost peer
            for j in range(FLUSH_AT):
                pump.send([b"P", b"new%d" % j])

        pump = Pump(router, lambda frames: None, router=True, on_unroutable=gone)
        for _ in range(20):
            await asyncio.sleep(0)
        pump.send([b"X", b"to a peer that is not there"])
        for i in range(FLUSH_AT - 1):
            pump.send([b"P", b"old%d" % i])
        got: list[bytes] = []
        for _ in range(200):
            await asyncio.sleep(0.005)
            while peer.poll(0):
                msg = peer.recv_multipart()
                got += [m[-1] for m in split_batch(msg[1])] if msg[0] == BATCH_HEADER else [msg[-1]]
            if len(got) >= 2 * FLUSH_AT - 1:
                break
        pump.close()
        peer.close(0)
        return got

    got = asyncio.run(main())
    old = [b"old%d" % i for i in range(FLUSH_AT - 1)]
    assert got == old + [b"new%d" % j for j in range(FLUSH_AT)]
