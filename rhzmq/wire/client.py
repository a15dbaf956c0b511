"""The asyncio client: one DEALER socket per event loop and cluster, many calls in flight.
(Blocking stub calls use pooled sockets beside it, from the caller's thread: :mod:`rhzmq.wire.blocking`.)

Each call gets an id (a counter), a future and an entry in ``_calls``. Replies are matched by id in
one plain callback that the :class:`~rhzmq.wire.pump.Pump` calls for every message it drains; PARTIAL
messages print output, re-emit log records or feed a generator's queue, and the one FINAL resolves
the future. Cancelling the awaiting task sends CANCEL; ``timeout=`` is a loop timer that fails the
future with :class:`CallTimeout` and cancels the remote call.

Liveness: workers are watched by the broker, but the broker itself may die. While calls are in
flight a watchdog PINGs the broker every heartbeat interval, and counts the intervals in which
nothing at all arrived (Paranoid Pirate's liveness counter, RFC 6); after
``HEARTBEAT_LIVENESS`` silent intervals in a row every pending call fails with
:class:`ClusterNotRunning` instead of waiting forever.

Why count intervals rather than compare against the time of the last message: the watchdog only
runs while calls are pending (an idle client must not look busy to autostop), so after an idle
spell the last message is old for a perfectly healthy broker, and a long call started then would
fail at the first tick. Likewise a process that was stopped or suspended (Ctrl-Z, a laptop that
slept) wakes up to one silent interval, not to a dead broker. Only intervals the watchdog was
awake for, each with a PING sent, count.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import os
import pickle
import threading
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import msgpack
import zmq
from zmq.utils.monitor import parse_monitor_message

from . import config as _config
from .curve import client_keys
from .exceptions import (
    AuthenticationError,
    CallTimeout,
    ClusterNotRunning,
    ProtocolError,
    RemoteError,
    RemoteTraceback,
)
from .limits import Limits, check_size
from .output import PrefixedWriter, emit_log
from .protocol import (
    COMMAND,
    FINAL_OUTPUT,
    FLAGS,
    MAGIC,
    MAGIC_BYTES,
    PREFIX,
    PREFIX_BYTES,
    VERSION_BYTE,
    CallMeta,
    Cmd,
    Partial,
    Status,
    error_from_frame,
    pack_header,
    pack_meta,
    read_call_id,
    version_message,
)
from .pump import Pump, dealer
from .serialization import OOB_THRESHOLD, dumps_call, loads
from .settings import CONNECT_TIMEOUT, HEARTBEAT_INTERVAL, HEARTBEAT_LIVENESS
from .spin import MAX_IN_FLIGHT, SPIN
from .types import Frame
from .version import PROTOCOL_VERSION

log = logging.getLogger("rhzmq.client")

_FINAL, _PARTIAL = Cmd.FINAL, Cmd.PARTIAL
NO_ARGS = dumps_call((), {})
_END = object()

#: Items a stream may send ahead of its consumer, and how many more each CREDIT grants.
STREAM_CREDIT = 64
CREDIT_BATCH = 32


#: CURVE handshake outcomes a client watches for until its first answer (socket monitor).
_HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


class Output:
    """Shows one call's streamed output here: prints prefixed by its label, re-emitted logs."""

    __slots__ = ("label", "stderr", "stdout")

    def __init__(self, label: str) -> None:
        self.label = label
        self.stdout: PrefixedWriter | None = None
        self.stderr: PrefixedWriter | None = None

    def partial(self, kind: int, frames: list[bytes]) -> None:
        self._show(kind, frames)

    def _show(self, kind: int, frames: list[bytes]) -> None:
        if kind == Partial.STDOUT:
            if self.stdout is None:
                self.stdout = PrefixedWriter(self.label, "stdout")
            self.stdout.write(frames[0].decode(errors="replace"))
        elif kind == Partial.STDERR:
            if self.stderr is None:
                self.stderr = PrefixedWriter(self.label, "stderr")
            self.stderr.write(frames[0].decode(errors="replace"))
        elif kind == Partial.LOG:
            emit_log(msgpack.unpackb(frames[0]), self.label)

    def final_output(self, frames: list[bytes]) -> None:
        """Show the stdout that a FINAL flagged FINAL_OUTPUT carries (``frames[1]``) and take it
        out, leaving ``frames`` as they would be without it."""
        if len(frames) > 1:
            output = frames.pop(1)
            try:
                self.partial(Partial.STDOUT, [output])
            except Exception:  # it came with the result, which must still reach the caller
                log.exception("could not show the output of %s", self.label or "a call")


class _Pending(Output):
    """One call in flight: its future, how to show its output, where its items go.

    Output is shown in the caller's context (``ctx``), not in the context of the socket's
    reader callback, which is whichever call first made this loop's client: in a worker, a
    nested call's prints must reach the call that made it (worker/_capture.py routes writes by
    a context variable), not the long-finished call that happened to connect first."""

    __slots__ = ("capture_all", "ctx", "future", "items", "timer")

    def __init__(
        self,
        future: asyncio.Future[Any],
        label: str,
        items: asyncio.Queue[Any] | None,
        capture_all: bool = False,
    ) -> None:
        # Output.__init__ inline (one call less per call).
        self.label = label
        self.stdout: PrefixedWriter | None = None
        self.stderr: PrefixedWriter | None = None
        self.future = future
        self.items = items  # (kind, frames) of generator items, or of every partial
        self.capture_all = capture_all
        self.timer: asyncio.TimerHandle | None = None
        self.ctx = contextvars.copy_context()  # O(1): contexts are immutable maps

    def _show(self, kind: int, frames: list[bytes]) -> None:
        self.ctx.run(Output._show, self, kind, frames)

    def partial(self, kind: int, frames: list[bytes]) -> None:
        if self.capture_all or kind == Partial.ITEM:
            if self.items is not None:
                self.items.put_nowait((kind, frames))
        else:
            super().partial(kind, frames)


def decode_final(status: int, frames: Sequence[bytes]) -> Any:
    """The result of a FINAL, or the exception it carries raised."""
    if status == Status.OK:
        return loads(frames)
    if not frames:
        raise ProtocolError(f"FINAL with status {status} but no error frame")
    if status == Status.REMOTE:
        raise remote_exception(frames[0])
    raise error_from_frame(status, frames[0])


def remote_exception(payload: bytes) -> BaseException:
    """Rebuild a remote exception as its own type when possible, else a RemoteError."""
    body = msgpack.unpackb(payload)
    tb = str(body.get("traceback", ""))
    if body.get("exc") is not None:
        try:
            exc = pickle.loads(body["exc"])
        except Exception:
            exc = None
        if isinstance(exc, BaseException):
            exc.__cause__ = RemoteTraceback(tb)
            return exc
    return RemoteError(str(body.get("message", "")), str(body.get("type", "")), tb)


class Client:
    """Talks to one broker from one event loop. Get one with :func:`get_client`."""

    def __init__(
        self, endpoint: str, curve: dict[str, bytes] | None = None, *, spin: bool = False
    ) -> None:
        self.endpoint = endpoint
        self.curve = curve
        # spin: waits may spin (rhzmq.wire.spin). Only where no thread of this process carries
        # the answer: a spinning thread holds the GIL, and an SSH tunnel's forwarding runs on
        # the portal's thread here, so spinning would delay the very answer it waits for.
        self.spin = spin
        self.loop = asyncio.get_running_loop()
        sock = dealer(curve)
        # A refused CURVE handshake is silent on the socket itself (no message ever arrives):
        # watch the socket's monitor until the first answer, so the caller hears why at once
        # instead of "no broker answered" after the connect timeout.
        self._monitor: Pump | None = None
        # Every PING says which process this is: the broker keeps the calls of a silent client
        # whose process still exists on its machine (stopped, or asleep), see broker._broker.
        self._ping = [
            pack_header(Cmd.PING),
            pack_meta({"pid": os.getpid(), "machine": _config.MACHINE_ID}),
        ]
        if curve:
            self._monitor = Pump(sock.get_monitor_socket(_HANDSHAKE_EVENTS), self._on_monitor)
        sock.connect(endpoint)
        self.pump = Pump(sock, self._on_message)
        self._calls: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._heard = 0  # messages received: the watchdog looks for a change, not a time
        self._watchdog: asyncio.Task[None] | None = None
        self._connected = False
        self.instance: str | None = None  # the broker's, from the first contact's PING answer
        # Idle sockets for blocking calls from plain threads (rhzmq.wire.blocking), any thread's.
        self.blocking_pool: list[Any] = []
        self.blocking_lock = threading.Lock()
        self.closed = False
        self.limits = Limits.from_env()
        self._spinning = False  # see _spin
        self._spin_until = 0.0
        self._wait_began = 0.0  # when the first call sent since the last answer left

    @property
    def ready(self) -> bool:
        """Connected (the broker answered) and not closed: calls go out at once."""
        return self._connected and not self.closed

    # -- receiving ---------------------------------------------------------------------------

    def _on_message(self, frames: list[bytes]) -> None:
        self._heard += 1
        if self._wait_began:
            SPIN.waited(time.monotonic() - self._wait_began)
            self._wait_began = 0.0
        header = frames[0]
        if header[PREFIX_BYTES] != PREFIX or len(header) < 15:
            if header[MAGIC_BYTES] == MAGIC and len(header) >= 12:
                pending = self._calls.pop(read_call_id(header), None)
                if pending is not None and not pending.future.done():
                    pending.future.set_exception(
                        ProtocolError(version_message(header[VERSION_BYTE]))
                    )
            return
        call_id = read_call_id(header)
        if header[COMMAND] == _FINAL:
            pending = self._calls.pop(call_id, None)
            if pending is None:
                if call_id == 0 and len(frames) > 1:  # the watchdog's PING answered
                    self._check_instance(frames[1])
                return  # answered already (timed out, cancelled)
            if pending.timer is not None:
                pending.timer.cancel()
            status = header[FLAGS]
            if status & FINAL_OUTPUT:  # the call's last stdout came with its result
                status ^= FINAL_OUTPUT
                pending.final_output(frames)
            if pending.items is not None:
                pending.items.put_nowait(_END)
            if not pending.future.done():
                pending.future.set_result((status, frames[1:]))
        elif header[COMMAND] == _PARTIAL:
            pending = self._calls.get(call_id)
            if pending is not None:
                pending.partial(header[FLAGS], frames[1:])

    def _check_instance(self, body: bytes) -> None:
        """A PING answer from another broker than the one our calls went to (restarted at the
        same endpoint within the liveness window, so never silent): those calls are lost."""
        instance = broker_instance(body)
        if instance is not None and self.instance is not None and instance != self.instance:
            self._fail_all(broker_restarted(self.endpoint))

    def _on_monitor(self, frames: list[bytes]) -> None:
        event = parse_monitor_message(frames)
        kind, value = int(event["event"]), int(event["value"])
        if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            return
        if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            problem = AuthenticationError(
                f"the broker at {self.endpoint} refused this client's CURVE key (ZAP status "
                f"{value}): the key is not on the broker's allow-list. For an SSH cluster, "
                "`cluster.restart_server()` sends the keys again (and check that the head's "
                "RHZMQ_HOME is where its daemon runs); for a daemon started with --bind, copy this "
                "machine's $RHZMQ_HOME/local/curve/local.key into the broker host's "
                "$RHZMQ_HOME/local/curve/authorized/."
            )
        else:
            why = "protocol error" if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL else "no detail"
            problem = AuthenticationError(
                f"the CURVE handshake with the broker at {self.endpoint} failed ({why}): the "
                "broker's public key this client holds does not match the broker's, or the peer "
                "is not an rhzmq broker with CURVE on. Restart the cluster "
                "(`cluster.restart_server()`) so both sides share fresh keys."
            )
        self._fail_all(problem)

    def _stop_monitor(self) -> None:
        if self._monitor is not None:
            self.pump.sock.disable_monitor()
            self._monitor.close()
            self._monitor = None

    # -- sending -----------------------------------------------------------------------------

    def _start(
        self,
        cmd: int,
        target: bytes,
        body: Sequence[Frame],
        label: str,
        timeout: float | None,
        items: asyncio.Queue[Any] | None = None,
        capture_all: bool = False,
    ) -> tuple[int, _Pending]:
        if self.closed:
            raise ClusterNotRunning(f"the connection to {self.endpoint} is closed")
        call_id = next(self._ids)
        pending = _Pending(self.loop.create_future(), label, items, capture_all)
        self._calls[call_id] = pending
        self.pump.send([pack_header(cmd, call_id, 0, target), *body])
        if timeout is not None:
            pending.timer = self.loop.call_later(timeout, self._expire, call_id, timeout)
        if self.spin:  # (only a client that may spin tells SPIN how long its waits last)
            if not self._wait_began:
                self._wait_began = time.monotonic()
            if not self._spinning and len(self._calls) <= MAX_IN_FLIGHT:
                until = SPIN.begin()
                if until:  # keep the loop turning while the answer is on its way (wire.spin)
                    self._spinning = True
                    self._spin_until = until
                    self.loop.call_soon(self._spin)
        if self._watchdog is None:
            # Owned by this client: it ends when nothing is pending, close() cancels it.
            self._watchdog = self.loop.create_task(self._watch())
        return call_id, pending

    def _spin(self) -> None:
        """Queued again each loop turn while calls wait and the budget lasts: a loop with a
        callback ready polls its sockets without sleeping, so the answer needs no wake-up."""
        if (
            0 < len(self._calls) <= MAX_IN_FLIGHT
            and not self.closed
            and time.monotonic() < self._spin_until
        ):
            # A thread woken on this CPU runs now (rhzmq.wire.spin). Not a look at the socket
            # first: reading EVENTS takes the edge of its file descriptor from the pump.
            os.sched_yield()
            self.loop.call_soon(self._spin)
            return
        self._spinning = False
        SPIN.end(self._spin_until)

    def _expire(self, call_id: int, timeout: float) -> None:
        pending = self._calls.pop(call_id, None)
        if pending is None:
            return
        self._send_cancel(call_id)
        if pending.items is not None:
            pending.items.put_nowait(_END)
        if not pending.future.done():
            pending.future.set_exception(call_timed_out(pending.label, timeout))

    def _send_cancel(self, call_id: int) -> None:
        self.pump.send([pack_header(Cmd.CANCEL, call_id)])

    async def _await(self, call_id: int, pending: _Pending) -> tuple[int, list[bytes]]:
        """Wait for the FINAL; cancelling the waiting task cancels the remote call."""
        try:
            return await pending.future  # type: ignore[no-any-return]
        except asyncio.CancelledError:
            self._abandon(call_id, pending)
            raise

    def _abandon(self, call_id: int, pending: _Pending) -> None:
        """The caller stopped waiting (its task was cancelled): cancel the remote call."""
        if self._calls.pop(call_id, None) is not None:
            self._send_cancel(call_id)
            if pending.timer is not None:
                pending.timer.cancel()

    async def ensure_connected(self) -> None:
        """First contact: PING the broker so a missing daemon is a clear error, not a hang."""
        if self._connected:
            return
        call_id, pending = self._start(Cmd.PING, b"", self._ping[1:], "", None)
        try:
            status, frames = await asyncio.wait_for(asyncio.shield(pending.future), CONNECT_TIMEOUT)
        except TimeoutError:
            self._calls.pop(call_id, None)
            raise no_broker(self.endpoint) from None
        info = decode_final(status, frames)
        check_hello(info)
        self.instance = info.get("instance")
        self._connected = True
        self._stop_monitor()

    # -- public API ------------------------------------------------------------------------------

    async def call(
        self,
        target: bytes,
        meta: bytes,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        label: str = "",
        timeout: float | None = None,
    ) -> Any:
        """Call ``target``'s method (named in ``meta``, see :func:`call_meta`) and return its result."""
        payload = dumps_call(args, kwargs or {}) if (args or kwargs) else NO_ARGS
        if not self._connected:
            await self.ensure_connected()
        call_id, pending = self._send_call(target, meta, payload, label, timeout)
        # _await inline: every coroutine between a caller and its future costs the call a
        # level to create, resume and return through (measured in docs/performance.md).
        try:
            status, frames = await pending.future
        except asyncio.CancelledError:
            self._abandon(call_id, pending)
            raise
        return decode_final(status, frames)

    async def call_raw(
        self,
        target: bytes,
        meta: bytes,
        payload: Sequence[Frame],
        *,
        label: str = "",
        timeout: float | None = None,
    ) -> tuple[int, list[bytes]]:
        """Like :meth:`call` with arguments already serialized; returns ``(status, frames)``."""
        if not self._connected:
            await self.ensure_connected()
        call_id, pending = self._send_call(target, meta, payload, label, timeout)
        return await self._await(call_id, pending)

    def _send_call(
        self,
        target: bytes,
        meta: bytes,
        payload: Sequence[Frame],
        label: str,
        timeout: float | None,
    ) -> tuple[int, _Pending]:
        if len(payload) > 1 or (payload and len(payload[0]) > OOB_THRESHOLD):  # big calls only
            check_size(
                payload, self.limits.max_message_bytes, f"the call to {label or target.decode()}"
            )
        return self._start(Cmd.CALL, target, (meta, *payload), label, timeout)

    async def stream(
        self,
        target: bytes,
        meta: bytes,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        label: str = "",
        timeout: float | None = None,
    ) -> AsyncIterator[Any]:
        """Call a generator method and yield its items as they arrive."""
        if not self._connected:
            await self.ensure_connected()
        payload = dumps_call(args, kwargs or {}) if (args or kwargs) else NO_ARGS
        items: asyncio.Queue[Any] = asyncio.Queue()
        call_id, pending = self._start(Cmd.CALL, target, (meta, *payload), label, timeout, items)
        async for _, frames in self._queued(call_id, items):
            yield loads(frames)
        decode_final(*pending.future.result())

    async def _queued(self, call_id: int, items: asyncio.Queue[Any]) -> AsyncIterator[Any]:
        """A streamed call's queued events. Taking items grants the worker more credit; leaving
        before the end cancels the remote call."""
        consumed = 0
        try:
            while True:
                event = await items.get()
                if event is _END:
                    return
                yield event
                if event[0] == Partial.ITEM:
                    consumed += 1
                    if consumed == CREDIT_BATCH:  # the consumer took these: the producer may go on
                        self.pump.send([pack_header(Cmd.CREDIT, call_id, CREDIT_BATCH)])
                        consumed = 0
        finally:
            if self._calls.pop(call_id, None) is not None:
                self._send_cancel(call_id)  # the consumer stopped early

    async def events(
        self,
        target: bytes,
        meta: bytes,
        payload: Sequence[Frame],
        *,
        timeout: float | None = None,
    ) -> AsyncIterator[tuple[int, Any]]:
        """Every PARTIAL of a call as ``(Partial kind, frames)``, then ``(-1, (status, frames))``.

        Nothing is decoded or printed: the HTTP gateway decodes what it forwards itself, without
        ever unpickling. Stopping early cancels the remote call.
        """
        if not self._connected:
            await self.ensure_connected()
        items: asyncio.Queue[Any] = asyncio.Queue()
        call_id, pending = self._start(
            Cmd.CALL, target, (meta, *payload), "", timeout, items, capture_all=True
        )
        async for event in self._queued(call_id, items):
            yield event
        yield -1, await pending.future

    async def control(
        self,
        cmd: int,
        target: str = "",
        frames: Sequence[Frame] = (),
        timeout: float | None = None,
        label: str = "",
    ) -> Any:
        """A control command (PUT, DELETE, KEYS, STATUS, PING, SHUTDOWN); returns its result."""
        if not self._connected and cmd != Cmd.PING:
            await self.ensure_connected()
        call_id, pending = self._start(cmd, target.encode(), frames, label, timeout)
        return decode_final(*await self._await(call_id, pending))

    async def _watch(self) -> None:
        """Fail pending calls if the broker stops answering (see the module docstring)."""
        ping = self._ping
        heard = self._heard
        silent = 0
        try:
            # No PING before the first interval: a call answered within it needs none, and each
            # PING counts as activity for autostop (a daemon polling STATUS must not keep a head
            # up; tests/test_ssh.py's autostop test caught that).
            while self._calls and not self.closed:
                await asyncio.sleep(HEARTBEAT_INTERVAL)
                if not self._calls:
                    # Nothing pending any more: no PING, which would count as activity (the
                    # broker's client table feeds autostop) for a client that is merely polling.
                    break
                if self._heard != heard:
                    heard, silent = self._heard, 0
                else:
                    silent += 1
                    if silent >= HEARTBEAT_LIVENESS:
                        self._fail_all(lost_broker(self.endpoint, silent))
                        break
                self.pump.send(ping)  # its FINAL (call id 0) only counts as something heard
        finally:
            self._watchdog = None

    def _fail_all(self, exc: BaseException) -> None:
        calls, self._calls = self._calls, {}
        self._connected = False
        for pending in calls.values():
            if pending.items is not None:
                pending.items.put_nowait(_END)
            if not pending.future.done():
                pending.future.set_exception(exc)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._fail_all(ClusterNotRunning(f"the connection to {self.endpoint} was closed"))
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._stop_monitor()
            self.pump.close()
            # Pooled sockets are idle, so this thread may close them (the lock is the barrier
            # ZeroMQ asks for when a socket changes threads).
            with self.blocking_lock:
                pool, self.blocking_pool = self.blocking_pool, []
            for b in pool:
                b.close()


def call_timed_out(label: str, timeout: float) -> CallTimeout:
    return CallTimeout(
        f"{label or 'the call'} did not finish within timeout={timeout:g} s; "
        "it was cancelled on the worker. Pass a larger timeout= if it needs longer."
    )


def no_broker(endpoint: str) -> ClusterNotRunning:
    return ClusterNotRunning(
        f"no rhzmq broker answered at {endpoint} within {CONNECT_TIMEOUT:g} s. "
        "Start the cluster with cluster.up_if_not() (or `rhzmq start`)."
    )


def lost_broker(endpoint: str, silent: int) -> ClusterNotRunning:
    return ClusterNotRunning(
        f"lost the connection to the broker at {endpoint}: no answer to {silent} pings in "
        f"{silent * HEARTBEAT_INTERVAL:.0f} s. Check `rhzmq status`."
    )


def broker_restarted(endpoint: str) -> ClusterNotRunning:
    return ClusterNotRunning(
        f"the broker at {endpoint} restarted while this call was in flight, and the call was "
        "lost with it. Call again; check `rhzmq status` first: objects whose worker did not "
        "outlive the old broker must be sent again"
    )


def broker_instance(body: bytes) -> str | None:
    """The ``instance`` of a PING answer's body, or None (an older broker, or not a dict)."""
    try:
        info = msgpack.unpackb(body)
    except Exception:
        return None
    instance = info.get("instance") if isinstance(info, dict) else None
    return instance if isinstance(instance, str) else None


def check_hello(info: Any) -> None:
    """The answer to a first PING: the broker must speak our protocol version."""
    if info.get("protocol") != PROTOCOL_VERSION:
        raise ProtocolError(version_message(info.get("protocol", 0)))


def call_meta(method: str, stream_logs: bool = True, credit: int = 0) -> bytes:
    """The meta frame of a CALL; stubs build it once per method and reuse it.

    ``credit``: for streamed calls, how many items the worker may send before the caller grants
    more (flow control; see worker.Credit).
    """
    meta: CallMeta = {"m": method}
    if stream_logs:
        meta["o"] = True  # this client reads output inside a FINAL (FINAL_OUTPUT)
    else:
        meta["s"] = False
    if credit:
        meta["c"] = credit
    return pack_meta(meta)


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Client]] = (
    weakref.WeakKeyDictionary()
)
#: Loops that serve calls (a worker's): a blocking call made on one would wait for itself
#: (rhzmq._portal raises there instead).
SERVING_LOOPS: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def connected_client(loop: asyncio.AbstractEventLoop, endpoint: str) -> Client | None:
    """``loop``'s client for ``endpoint`` if it is connected and open (any thread may ask)."""
    client = _clients.get(loop, {}).get(endpoint)
    return client if client is not None and client.ready else None


def get_client(
    endpoint: str, curve: dict[str, bytes] | None = None, *, spin: bool = False
) -> Client:
    """The client for ``endpoint`` on the running loop (one DEALER per loop and cluster);
    ``spin``: see :class:`Client`."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.get(loop)
    if per_loop is None:
        per_loop = _clients[loop] = {}
    client = per_loop.get(endpoint)
    if client is None or client.closed:
        client = per_loop[endpoint] = Client(endpoint, curve, spin=spin)
    elif client.spin and not spin:
        client.spin = False  # spinning only where every user of the client allows it
    return client


def local_broker(name: str = "local") -> tuple[str, dict[str, bytes] | None]:
    """The endpoint and CURVE keys of this machine's daemon (``$RHZMQ_HOME/local``);
    ClusterNotRunning if it is not up."""
    state = _config.read_state()
    if not state or not _config.pid_alive(int(state.get("pid", 0))):
        raise ClusterNotRunning(
            f"cluster {name!r} is not running. Start it with "
            f"rh.cluster({name!r}).up_if_not() or `rhzmq start`."
        )
    curve = client_keys(Path(state["curve"])) if state.get("curve") else None
    return str(state["endpoint"]), curve


def drop_client(endpoint: str) -> None:
    """Close the running loop's client for ``endpoint`` (after a teardown)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    client = _clients.get(loop, {}).pop(endpoint, None)
    if client is not None:
        client.close()
