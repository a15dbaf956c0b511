"""Blocking calls made in the caller's own thread, on DEALER sockets pooled per broker client.

A blocking stub ``f(x)`` used to run ``acall`` on the portal's loop thread and wait for it: two
thread hand-offs per call (wake the loop, then wake the caller), which cost 50 to 130 µs on top
of ``acall`` on a 2-core machine, a third of the call. Here the calling thread does the whole
round trip itself on a socket checked out for the call, as a plain blocking ZeroMQ client does:
send, poll, receive. No event loop, no future, no other thread is woken.

It is only the fast path of a connection the portal's :class:`~rhzmq.wire.client.Client`
already made: that one did the connecting work (an SSH tunnel, the first contact's errors, the
CURVE handshake's diagnosis), and a stub falls back to it whenever it is not connected. What a
call promises is the same on both paths, and tested on both: output printed live with the
object's prefix, log records re-emitted, remote exceptions re-raised, ``timeout=`` cancels the
remote call, Ctrl-C cancels it too, and a broker that stops answering fails the call after
``HEARTBEAT_LIVENESS`` silent intervals instead of hanging (a PING every interval, Paranoid
Pirate, as :mod:`rhzmq.wire.client` explains).

A ZeroMQ socket is used by one thread at a time: the sockets are pooled per client and checked
out for a call (:func:`checkout`). A socket's first call is preceded by a hello (a PING with the
process's pid), not waited for: the portal's client checked the protocol version when it
connected. Closing the client (teardown) closes its idle sockets; one in a call is closed when
it comes back.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import zmq

from .client import (
    NO_ARGS,
    Client,
    Output,
    broker_instance,
    broker_restarted,
    call_timed_out,
    decode_final,
    lost_broker,
)
from .exceptions import ClusterNotRunning, ProtocolError
from .limits import check_size
from .protocol import (
    COMMAND,
    FINAL_OUTPUT,
    FLAGS,
    MAGIC,
    MAGIC_BYTES,
    PREFIX,
    PREFIX_BYTES,
    VERSION_BYTE,
    Cmd,
    Partial,
    pack_header,
    read_call_id,
    version_message,
)
from .pump import BATCH_HEADER, dealer, recv_frames, split_batch
from .serialization import OOB_THRESHOLD, dumps_call
from .settings import HEARTBEAT_INTERVAL, HEARTBEAT_LIVENESS
from .spin import SPIN
from .types import Frame

_FINAL, _PARTIAL = Cmd.FINAL, Cmd.PARTIAL
_NOBLOCK = int(zmq.NOBLOCK)
_MORE = int(zmq.SNDMORE)
_POLLIN = int(zmq.POLLIN)
_EVENTS = int(zmq.EVENTS)

log = logging.getLogger("rhzmq.client")


def checkout(client: Client) -> BlockingClient:
    """An idle socket beside ``client`` (the portal's, connected), or a new one.

    A pool per client, not a socket per thread: a socket may move between threads with a full
    memory barrier between its users (ZeroMQ's rule), which the pool's lock is. So there are only
    as many sockets as blocking calls ever ran at once, a thread-per-request server does not
    connect anew for every request, and a call made while another of the same thread is in
    flight (from a log handler showing its output) simply takes a second socket."""
    with client.blocking_lock:
        pool = client.blocking_pool
        while pool:
            b: BlockingClient = pool.pop()
            if not b.closed:
                return b
    return BlockingClient(client)


def checkin(b: BlockingClient) -> None:
    """Give a socket back after its call (a closed one, or one of a closed client, is dropped)."""
    parent = b.parent
    if not b.closed:
        with parent.blocking_lock:
            if not parent.closed:
                parent.blocking_pool.append(b)
                return
        b.close()


def _spin_until_readable(sock: zmq.Socket[Any], until: float) -> bool:
    """Look at ``sock`` until a message waits (True) or ``until`` (monotonic) passes (False);
    see rhzmq.wire.spin."""
    events = sock.getsockopt
    clock = time.monotonic
    while clock() < until:
        if int(events(_EVENTS)) & _POLLIN:
            return True
        os.sched_yield()  # a thread woken on this CPU runs now (rhzmq.wire.spin)
    return False


class BlockingClient:
    """One socket to one broker, used by one thread at a time; see the module docstring."""

    def __init__(self, parent: Client) -> None:
        self.closed = True  # until the socket exists (__del__ may see a failed __init__)
        self.parent = parent
        self.endpoint = parent.endpoint
        self.sock = dealer(parent.curve)
        try:
            self.sock.connect(parent.endpoint)
        except BaseException:
            self.sock.close(linger=0)
            raise
        self._ids = itertools.count(1)
        self._ping = parent._ping  # call id 0: a liveness probe, its answer only counts as heard
        self._hello = False
        self.instance: str | None = None  # the broker's, from the hello's answer
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close(linger=0)

    def __del__(self) -> None:  # dropped from its pool (its client was closed)
        self.close()

    def call(
        self,
        target: bytes,
        meta: bytes,
        payload: Sequence[Frame],
        label: str,
        timeout: float | None,
    ) -> tuple[int, list[bytes]]:
        """Send a CALL and wait for its FINAL, showing its output: ``(status, frames)``."""
        if self.parent.closed:
            self.close()
            raise ClusterNotRunning(f"the connection to {self.endpoint} is closed")
        if not self._hello:
            self._say_hello()
        if len(payload) > 1 or (payload and len(payload[0]) > OOB_THRESHOLD):  # big calls only
            check_size(
                payload,
                self.parent.limits.max_message_bytes,
                f"the call to {label or target.decode()}",
            )
        call_id = next(self._ids)
        self._send([pack_header(Cmd.CALL, call_id, 0, target), meta, *payload])
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            try:
                return self._wait(call_id, Output(label), deadline)
            except TimeoutError:
                raise call_timed_out(label, timeout or 0) from None
        except BaseException:
            # Ctrl-C, a timeout or a lost broker: the worker stops the call too. (After a lost
            # broker the CANCEL waits in the socket and reaches the next broker at this
            # endpoint, which ignores a CANCEL for a call it does not know.)
            if not self.closed:
                self._send([pack_header(Cmd.CANCEL, call_id)])
            raise

    def _say_hello(self) -> None:
        """Who we are, for the broker's client table (it does not give up on the calls of a
        silent client whose process it can see alive). Sent just ahead of the first call, not
        waited for: the portal's client already checked the protocol and learnt the broker's
        instance when it connected, so a thread's first call costs no extra round trip (a
        thread-per-request server makes a new thread for every request)."""
        self._send(self._ping)
        self.instance = self.parent.instance
        self._hello = True

    def _send(self, frames: Sequence[Frame]) -> None:
        send = self.sock.send
        copy = not any(
            (f.nbytes if type(f) is memoryview else len(f)) >= OOB_THRESHOLD for f in frames
        )
        last = len(frames) - 1
        try:
            for i, f in enumerate(frames):
                send(f, _MORE if i < last else 0, copy=copy)
        except BaseException:
            # Interrupted between frames (Ctrl-C; a worker thread's cancellation is injected at
            # any bytecode): the socket holds half a message, and the next one would be glued to
            # it. This socket is done; the thread's next call makes a new one.
            self.close()
            raise

    def _wait(
        self,
        call_id: int,
        out: Output,
        deadline: float | None,
    ) -> tuple[int, list[bytes]]:
        """Until the FINAL of ``call_id``; TimeoutError at ``deadline``.

        Liveness as the async client's watchdog: a PING every heartbeat interval while waiting
        (the broker cancels the calls of a client it has not heard from, unless it can see the
        client's process, which it cannot through a tunnel), and ClusterNotRunning after
        ``HEARTBEAT_LIVENESS`` intervals in a row in which nothing at all arrived."""
        sock = self.sock
        silent = 0
        heard = False
        began = time.monotonic()
        next_tick = began + HEARTBEAT_INTERVAL
        # Spin-waiting (rhzmq.wire.spin) happens once per call, before its first message, and
        # that message's delay is what the call tells SPIN: a peer streaming messages at short
        # gaps must not keep a caller spinning for the length of its call.
        first = spin = self.parent.spin
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError
            if now >= next_tick:
                if heard:
                    silent = 0
                else:
                    silent += 1
                    if silent >= HEARTBEAT_LIVENESS:
                        # The portal's client connects afresh for the next call (a clear "no
                        # broker answered" if it is still gone) instead of trusting this one.
                        self.parent._connected = False
                        raise lost_broker(self.endpoint, silent)
                heard = False
                self._send(self._ping)
                next_tick = now + HEARTBEAT_INTERVAL
            wake = next_tick if deadline is None else min(next_tick, deadline)
            until = SPIN.begin() if spin else 0.0
            spin = False
            if until:  # expecting the answer within a moment: look for it without sleeping
                _spin_until_readable(sock, min(until, wake))
                SPIN.end(until)
            ready = sock.poll(max(1, int((wake - now) * 1000)), _POLLIN)
            if first:  # the call's first message, or a heartbeat interval of nothing (a long call)
                first = False
                SPIN.waited(time.monotonic() - began)
            if not ready:
                continue
            heard = True
            while True:
                try:
                    frames = recv_frames(sock)
                except zmq.Again:
                    break
                if len(frames) == 2 and frames[0] == BATCH_HEADER:
                    messages = split_batch(frames[1])
                else:
                    messages = [frames]
                for msg in messages:
                    final = self._handle(msg, call_id, out)
                    if final is not None:
                        return final
                if not int(sock.getsockopt(_EVENTS)) & _POLLIN:
                    break  # nothing more waits (asking costs half the zmq.Again a recv raises)

    def _handle(
        self, frames: list[bytes], call_id: int, out: Output
    ) -> tuple[int, list[bytes]] | None:
        """A message from the broker: the FINAL of our call is returned, output is shown, the
        rest (answers to PINGs, late answers to calls given up on) is dropped."""
        header = frames[0]
        if header[PREFIX_BYTES] != PREFIX or len(header) < 15:
            if (
                header[MAGIC_BYTES] == MAGIC
                and len(header) >= 12
                and read_call_id(header) == call_id
            ):
                raise ProtocolError(version_message(header[VERSION_BYTE]))
            return None
        if read_call_id(header) != call_id:
            if read_call_id(header) == 0 and header[COMMAND] == _FINAL and len(frames) > 1:
                # A PING answered by another broker than the one our call went to: it
                # restarted at this endpoint (too fast to look silent), and the call is lost.
                instance = broker_instance(frames[1])
                if instance is not None and self.instance is not None and instance != self.instance:
                    self._hello = False
                    self.parent._connected = False
                    raise broker_restarted(self.endpoint)
            return None
        if header[COMMAND] == _FINAL:
            status = header[FLAGS]
            if status & FINAL_OUTPUT:  # the call's last stdout came with its result
                status ^= FINAL_OUTPUT
                out.final_output(frames)
            return status, frames[1:]
        if header[COMMAND] == _PARTIAL and header[FLAGS] != Partial.ITEM:
            try:
                out.partial(header[FLAGS], frames[1:])
            except Exception:  # a local stdout that fails must not lose the call's result
                log.exception("could not show the output of %s", out.label or "a call")
        return None


def blocking_call(
    parent: Client,
    target: bytes,
    meta: bytes,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    label: str,
    timeout: float | None,
) -> Any:
    """:meth:`Client.call` from a plain thread, on an idle socket beside ``parent``."""
    payload = dumps_call(args, kwargs) if (args or kwargs) else NO_ARGS
    b = checkout(parent)
    try:
        status, frames = b.call(target, meta, payload, label, timeout)
    finally:
        checkin(b)
    return decode_final(status, frames)
