"""Drive a plain (blocking-API) ZeroMQ socket from an asyncio loop, many messages per wake-up.

Why not ``zmq.asyncio``: it makes one future per ``recv``, and the design notes measured that at
~8,300 calls/s through a broker on this machine. A :class:`Pump` registers the socket's file
descriptor with the loop and, each time it fires, drains every ready message with ``NOBLOCK``
calls, handing each to a plain callback. No future, no task per message.

Batching. Profiles show the cost per call is dominated by ZeroMQ's per-message work (each send
wakes the I/O thread, each receive is several calls into libzmq), not by our code. So ``send``
only queues; once per loop iteration the queue is flushed (a DEALER's as soon as
:data:`FLUSH_AT` messages wait outside a drain: the next stage starts on a burst's first part
while this one makes the rest), and every group of small messages bound for the same peer goes
out as *one* two-frame ``BATCH`` message::

    [peer id]?  [header(BATCH)]  [msgpack array of messages, each an array of its frames]

msgpack packs and unpacks that in C, so a batch costs one ZeroMQ message instead of one per frame
(profiles showed per-frame ``send`` as the broker's biggest cost). Messages holding a large frame
(>= 64 KiB) are never batched: they go alone, zero-copy. The receiving Pump splits a BATCH back
into messages before the handler sees them, so batching is invisible above this module. A lone
message is sent as is, so an idle system pays no latency: the flush runs in the same loop
iteration as the send. Under load (many calls in flight) a dozen or more messages share one
ZeroMQ message, which is what lets one Python process route tens of thousands of calls per second.

ZeroMQ's FD is *edge*-triggered and shared by reads and writes: it signals that ``EVENTS`` changed,
not that a message is there, and a send can consume the edge for a pending read. Hence: drain
until ``EVENTS`` (or a ``recv`` raising ``Again``) says nothing is waiting, read ``EVENTS``
again after the last send of a wake-up (reading it re-arms the edge), and look at the socket
again whenever it says a message is waiting. (``EVENTS`` rather than ``Again`` to end a drain:
1.2 µs against 2.6 for the exception, and most wake-ups hold one message.)
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from typing import Any

import msgpack
import zmq

from .protocol import Cmd, pack_header
from .serialization import OOB_THRESHOLD
from .types import Frame, Identity

log = logging.getLogger("rhzmq.pump")

#: Messages handled per wake-up before yielding to other callbacks (keeps timers responsive).
DRAIN_BATCH = 512
#: Most messages in one BATCH.
MAX_BATCH = 1024
#: Messages queued outside a drain (a client's calls, a worker's results) that leave at once
#: instead of at the end of the loop iteration: the next stage starts on them while this one
#: queues the rest. DEALERs only: see Pump._flush_early.
FLUSH_AT = 32

BATCH_HEADER = pack_header(Cmd.BATCH)

_NOBLOCK = int(zmq.NOBLOCK)
_MORE = int(zmq.SNDMORE) | _NOBLOCK
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_EVENTS = int(zmq.EVENTS)
_RCVMORE = int(zmq.RCVMORE)
_ALL = 1 << 30  # "every frame" for frame counts

#: Frames before this index are small by the protocol (routing id, header, then a client or
#: worker id or a meta frame, see rhzmq.wire.protocol); a zero-copy Pump takes the ones from
#: here on without copying when they are large.
ZERO_COPY_FROM = 3

OnMessage = Callable[[list[bytes]], Any]
_BYTES_ONLY = frozenset({bytes})


def dealer(
    curve: Mapping[str, bytes] | None = None, *, immediate: bool = False
) -> zmq.Socket[bytes]:
    """A DEALER socket with rhzmq's options, not connected yet (a client attaches its monitor
    first). ``curve``: the peer's keypair and the broker's public key; ``immediate``: queue
    nothing while the broker is not connected (workers: a call must not wait for a broker that
    restarted and will not know it)."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)  # closing never blocks on unsent messages
    sock.setsockopt(zmq.SNDHWM, 100_000)  # explicit HWMs: tens of thousands of calls in flight
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)  # back off up to 2 s while the broker is away
    if immediate:
        sock.setsockopt(zmq.IMMEDIATE, 1)
    if curve:
        sock.curve_secretkey = curve["secret"]
        sock.curve_publickey = curve["public"]
        sock.curve_serverkey = curve["server"]
    return sock


def is_large(frames: Sequence[Any]) -> bool:
    """Whether any frame is big enough that sending it zero-copy beats copying."""
    for f in frames:
        if (f.nbytes if type(f) is memoryview else len(f)) >= OOB_THRESHOLD:
            return True
    return False


def recv_frames(sock: zmq.Socket[Any]) -> list[bytes]:
    """One waiting message's frames, as bytes (zmq.Again if none waits). Frame by frame with a
    plain RCVMORE read: recv_multipart asks it through pyzmq's enum layer (measured: 2.9
    against 3.5 µs for a 4-frame message)."""
    recv = sock.recv
    more = sock.getsockopt
    frames = [recv(_NOBLOCK)]
    while more(_RCVMORE):
        frames.append(recv(_NOBLOCK))
    return frames


def split_batch(blob: bytes) -> list[list[bytes]]:
    """The messages inside a BATCH's body frame."""
    msgs = msgpack.unpackb(blob)
    # Every frame must be bytes: a str or int would reach a socket's send half-way through a
    # multipart message and merge or drop other peers' messages. Nothing of a bad batch is
    # handled.
    # (The type check runs in C: map, chain and issuperset, no Python loop per frame.)
    if (
        type(msgs) is not list
        or not all(type(m) is list and m for m in msgs)
        or not _BYTES_ONLY.issuperset(map(type, chain.from_iterable(msgs)))
    ):
        raise ValueError("a BATCH body must be a msgpack array of non-empty arrays of bytes")
    return msgs


class Pump:
    """Reads and writes one socket on the running loop; see the module docstring.

    ``router=True`` for a ROUTER socket: messages start with the peer's routing id, batches are
    per peer, and ``on_unroutable(peer)`` is told when a peer is gone (ROUTER_MANDATORY).
    """

    def __init__(
        self,
        sock: zmq.Socket[Any],
        on_message: OnMessage,
        *,
        router: bool = False,
        on_unroutable: Callable[[Identity], Any] | None = None,
        zero_copy: bool = False,
        user_ids: bool = False,
    ) -> None:
        self.sock = sock
        # user_ids (a CURVE server with a ZAP handler): ``user`` is the User-Id of the message
        # being handled, the role its sender's key has (rhzmq.wire.curve).
        self.user_ids = user_ids
        self.user = ""
        # zero_copy: receive payload frames (index ZERO_COPY_FROM on) without copying and hand
        # large ones on as zmq.Frame objects, so a forwarder (the broker) passes big payloads
        # through without ever copying them. Leading frames are small by the protocol (routing
        # id, header, a client id or meta) and taken as bytes: a zmq.Frame costs ~0.5 µs to
        # make and its ``.bytes`` a copy anyway (measured: a 4-frame message taken with
        # copy=False then ``.bytes`` 5.4 µs, as bytes 2.9).
        self._copy_first = ZERO_COPY_FROM if zero_copy else _ALL
        self.on_message = on_message
        self.router = router
        self.on_unroutable = on_unroutable
        self.loop = asyncio.get_running_loop()
        self._queue: list[Sequence[Frame]] = []  # sent this iteration, not flushed yet
        self._outbox: deque[Sequence[Frame]] = deque()  # flushed but refused (peer's HWM)
        self._kicked = False
        self._draining = False
        self._closed = False
        self._fd = int(sock.getsockopt(zmq.FD))
        self.loop.add_reader(self._fd, self._on_ready)
        self._kick()  # messages may already be queued

    def send(self, frames: Sequence[Frame]) -> None:
        """Queue a message; it leaves in this loop iteration, batched with its neighbours (at
        once with the FLUSH_AT - 1 before it, when that many wait outside a drain of a DEALER)."""
        if not self._closed:
            self._queue.append(frames)
            if not self._draining:  # a drain flushes what its handlers send: see _run
                if len(self._queue) >= FLUSH_AT and not self.router:
                    self._flush_early()
                self._kick()

    def _flush_early(self) -> None:
        """Pipelining: with all 64 calls of a loop iteration in one BATCH, client, broker and
        worker took turns, one busy at a time (docs/performance.md, round six). The kick that
        follows (already scheduled by the burst's first send) still runs: it reads EVENTS, whose
        edge these sends may have taken (see _run).

        DEALERs only. A ROUTER's failed send runs ``on_unroutable`` (the broker's handler, which
        sends and edits its tables): in the middle of whatever broker code made the 32nd send,
        that nested a client's drop inside itself (a KeyError stopped the broker), and a flush
        nested in a flush sent a peer's later messages before its earlier ones. The broker sends
        from its drains anyway, which flush at their end. And a send error here must not land
        in the caller (a client registering a call, a timer cancelling one): it is logged, as
        the end-of-iteration flush's would be."""
        try:
            self._flush_queue()
        except zmq.ZMQError:
            log.exception("sending queued messages failed")

    def _kick(self) -> None:
        if not self._kicked:
            self._kicked = True
            self.loop.call_soon(self._on_kick)

    def _on_ready(self) -> None:
        """The socket's file descriptor fired: a message is likely waiting."""
        self._run(-1)

    def _on_kick(self) -> None:
        """Scheduled by a send (or a drain that stopped early): ask EVENTS before reading, as
        most of the time only sends wait (1.2 µs, where a recv raising zmq.Again takes 2.5)."""
        self._kicked = False  # first: a socket error below must not stop every later kick
        if not self._closed:
            self._run(int(self.sock.getsockopt(_EVENTS)))

    def _run(self, events: int) -> None:
        """Drain, then flush. ``events``: EVENTS as just read, or -1 (not read: try a recv)."""
        self._kicked = False
        if self._closed:
            return
        # _draining: the handlers' sends wait for the flush below instead of each scheduling
        # one more pass (the broker made one per message it routed: a wasted callback with a
        # recv raising zmq.Again and an EVENTS read, measured).
        self._draining = True
        try:
            if events == -1 or events & _POLLIN:
                events = self._drain()
        except BaseException:
            # Escaping the drain (a recv error, a handler's BaseException): what the handlers
            # queued, and what still waits to be read, go on in the next pass.
            self._draining = False
            self._kick()
            raise
        self._draining = False
        if self._closed:
            return  # a handler closed it
        sock = self.sock
        if self._queue:
            self._flush_queue()
            events = -1  # the sends may have taken the edge: look again
        if events == -1:
            # Reading EVENTS re-arms the edge-triggered FD; it may also reveal a late arrival.
            events = int(sock.getsockopt(_EVENTS))
        if self._outbox and events & _POLLOUT:
            self._flush_outbox()
            events = int(sock.getsockopt(_EVENTS))  # those sends may have taken the edge too
        if events & _POLLIN and not self._kicked:
            self._kicked = True
            self.loop.call_soon(self._on_ready)  # a message waits: read first

    def _drain(self) -> int:
        """Hand waiting messages (up to DRAIN_BATCH) to the handler; returns EVENTS as last
        read, -1 if not read since the socket was last used."""
        sock = self.sock
        recv = sock.recv
        getsockopt = sock.getsockopt
        handle = self.on_message
        n = 0
        copy_first = self._copy_first
        user_ids = self.user_ids
        # bytes, except (zero_copy) zmq.Frame objects for large frames, which handlers forward
        # untouched: they only ever read routing ids, headers and meta, all small. Frame by
        # frame, as recv_frames (inline: this is the hot loop).
        frames: list[Any]
        events = -1
        while n < DRAIN_BATCH:
            try:
                frames = [recv(_NOBLOCK)]
            except zmq.Again:
                return -1
            if user_ids:
                # The sender's role (rhzmq.wire.curve): metadata of a frame from the wire (a
                # ROUTER makes the routing id frame itself).
                self.user = ""
                if getsockopt(_RCVMORE):
                    frame = recv(_NOBLOCK, copy=False)
                    self.user = str(frame.get("User-Id"))
                    frames.append(frame.bytes)
            while getsockopt(_RCVMORE):
                if len(frames) < copy_first:
                    frames.append(recv(_NOBLOCK))
                else:
                    frame = recv(_NOBLOCK, copy=False)
                    frames.append(frame.bytes if len(frame) < OOB_THRESHOLD else frame)
            n += self._dispatch(frames, handle)
            if self._closed:
                return -1  # a handler closed it
            # Is another message there? EVENTS says so for half the cost of the zmq.Again a
            # recv raises when none is (measured: 1.2 vs 2.6 µs), and most wake-ups hold one.
            events = int(sock.getsockopt(_EVENTS))
            if not events & _POLLIN:
                break
        return events

    def _dispatch(self, frames: list[Any], handle: OnMessage) -> int:
        """Hand one received message to the handler, a BATCH as the messages inside it;
        returns how many that was, at least one: a peer sending empty BATCHes must not keep
        a drain from ever reaching DRAIN_BATCH."""
        n = 0
        try:
            if self.router and len(frames) == 3 and frames[1] == BATCH_HEADER:
                peer = frames[0]
                for msg in split_batch(frames[2]):
                    msg.insert(0, peer)
                    n += 1
                    handle(msg)
            elif not self.router and len(frames) == 2 and frames[0] == BATCH_HEADER:
                for msg in split_batch(frames[1]):
                    n += 1
                    handle(msg)
            else:
                n += 1
                handle(frames)
        except Exception:
            # One bad message must not stop the pump; the handler reports what it can.
            log.exception("error handling a message")
        return max(n, 1)

    def _flush_queue(self) -> None:
        queue, self._queue = self._queue, []
        if self._outbox:
            self._outbox.extend(queue)
            return
        if not self.router:
            self._send_grouped(queue, None)
            return
        groups: dict[bytes, list[Sequence[Frame]]] = {}
        for msg in queue:
            peer = bytes(msg[0])
            group = groups.get(peer)
            if group is None:
                groups[peer] = [msg]
            else:
                group.append(msg)
        for peer, msgs in groups.items():
            self._send_grouped(msgs, peer)

    def _send_grouped(self, msgs: list[Sequence[Frame]], peer: bytes | None) -> None:
        if len(msgs) == 1:
            return self._send_raw(msgs[0], peer)
        skip = 0 if peer is None else 1
        small: list[Sequence[Frame]] = []
        for m in msgs:
            if is_large(m):
                self._send_batch(small, peer)  # keep the order: what came before goes first
                small = []
                self._send_raw(m, peer)
            else:
                small.append(m[skip:] if skip else m)
                if len(small) >= MAX_BATCH:
                    self._send_batch(small, peer)
                    small = []
        self._send_batch(small, peer)

    def _send_batch(self, msgs: list[Sequence[Frame]], peer: bytes | None) -> None:
        if not msgs:
            return
        if len(msgs) == 1:
            return self._send_raw(msgs[0] if peer is None else [peer, *msgs[0]], peer)
        body = msgpack.packb(msgs)
        self._send_raw([BATCH_HEADER, body] if peer is None else [peer, BATCH_HEADER, body], peer)

    def _send_raw(self, frames: Sequence[Frame], peer: bytes | None) -> None:
        if self._outbox:
            self._outbox.append(frames)
            return
        try:
            self._send_now(frames)
        except zmq.Again:
            self._outbox.append(frames)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH or peer is None:
                raise
            # ROUTER_MANDATORY: the peer disconnected. Tell the owner; never drop silently.
            if self.on_unroutable is not None:
                self.on_unroutable(peer)
            else:
                log.warning("peer %s is gone; dropped a message for it", peer.hex())

    def _send_now(self, frames: Sequence[Frame]) -> None:
        # Plain int flags: pyzmq's send_multipart does enum arithmetic per frame, which showed
        # up in profiles. A message is atomic in ZeroMQ: if the first frame is accepted, all are.
        send = self.sock.send
        copy = not is_large(frames)
        last = len(frames) - 1
        for i, f in enumerate(frames):
            send(f, _MORE if i < last else _NOBLOCK, copy=copy)

    def _flush_outbox(self) -> None:
        while self._outbox:
            frames = self._outbox[0]
            try:
                self._send_now(frames)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EHOSTUNREACH or not self.router:
                    raise
                if self.on_unroutable is not None:
                    self.on_unroutable(bytes(frames[0]))
            self._outbox.popleft()

    def close(self, linger: int = 0) -> None:
        """Flush what this iteration queued and close; ``linger`` ms lets ZeroMQ deliver it
        when the context is terminated (the default drops it: nobody waits for it)."""
        if not self._closed:
            if self._queue:
                try:
                    self._flush_queue()
                except zmq.ZMQError:
                    pass  # closing anyway
            self._closed = True
            self.loop.remove_reader(self._fd)
            self.sock.close(linger=linger)
