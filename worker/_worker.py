"""A worker process: holds named objects and runs calls on them.

``async def`` methods run as tasks on the worker's loop (uvloop), so thousands can wait at once;
sync methods and generators run in a thread pool so they never block heartbeats or other calls.
While a call runs, its output, log records and generator items travel back as PARTIAL messages (in
the order they happened), then exactly one FINAL carries the result or the error. Output is held
back a little so that it costs fewer messages: a quick call's output leaves inside its FINAL, a
long call's every 15 ms (``OUTPUT_INTERVAL``); generator items leave at once.

Cancelling a sync call: Python cannot stop a thread from outside, but it can schedule an exception
in it (``PyThreadState_SetAsyncExc``), delivered at the next bytecode. That stops pure-Python work
promptly; a call blocked inside C code stops when it returns to Python. The caller gets its
``CallCancelled`` at once either way.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import inspect
import logging
import os
import signal
import socket
import threading
import time
import traceback
import types
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
import msgpack

from rhzmq.wire import code as _specs
from rhzmq.wire.client import SERVING_LOOPS
from rhzmq.wire.code import call_kind
from rhzmq.wire.exceptions import SerializationError
from rhzmq.wire.handshake import Announcer
from rhzmq.wire.limits import Limits, check_size
from rhzmq.wire.protocol import (
    CALL_ID,
    COMMAND,
    FINAL_OUTPUT,
    FLAGS,
    RH_DESCRIBE,
    RH_GETATTR,
    RH_PREFIX,
    RH_SETATTR,
    RH_VALUE,
    TARGET,
    Cmd,
    DescribeInfo,
    Partial,
    ReadyMeta,
    Status,
    check_header,
    final_error,
    name_problem,
    pack_header,
    pack_meta,
    read_call_id,
    unpack_meta,
)
from rhzmq.wire.pump import Pump, dealer
from rhzmq.wire.serialization import OOB_THRESHOLD, dumps, loads
from rhzmq.wire.settings import HEARTBEAT_INTERVAL, HEARTBEAT_LIVENESS
from rhzmq.wire.version import PROTOCOL_VERSION, __version__

from ._capture import current_call, install
from ._threads import CallThreads

log = logging.getLogger("rhzmq.worker")

_NONE = dumps(None)
_PARTIAL, _FINAL = int(Cmd.PARTIAL), int(Cmd.FINAL)
_STDOUT, _STDERR = int(Partial.STDOUT), int(Partial.STDERR)


def _encode(text: str) -> bytes:
    # backslashreplace: a lone surrogate printed by a call must not make the flush (and so the
    # FINAL sent with or after it) raise on the loop.
    return text.encode("utf-8", "backslashreplace")


#: Seconds between two sends of the output of calls still running. Output of a call that ends
#: sooner leaves with its FINAL; a line printed by a long call reaches the caller within about this
#: long (plus the way there).
OUTPUT_INTERVAL = 0.015


class _ThreadCancelled(BaseException):
    """Raised inside a worker thread to stop a cancelled sync call."""


@dataclass
class Entry:
    """A named object and what the worker knows about calling it."""

    obj: Any
    max_concurrency: int | None = None
    kinds: dict[str, str] = field(default_factory=dict)
    running: int = 0
    waiting: deque[Callable[[], None]] = field(default_factory=deque)


def describe(obj: Any) -> DescribeInfo:
    """What a client needs to build a stub: method names and their kinds, docs, signatures."""
    if inspect.isroutine(obj) or inspect.isclass(obj):
        return {
            "type": "function",
            "call": call_kind(obj),
            "doc": inspect.getdoc(obj) or "",
            "signature": _signature(obj),
            "params": _params(obj),
            "qualname": getattr(obj, "__qualname__", ""),
        }
    cls = type(obj)
    methods: dict[str, str] = {}
    signatures: dict[str, str] = {}
    params: dict[str, list[dict[str, Any]]] = {}
    docs: dict[str, str] = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attr = inspect.getattr_static(cls, name)
        if isinstance(attr, staticmethod | classmethod):
            attr = attr.__func__
        if inspect.isfunction(attr) or inspect.ismethoddescriptor(attr) or inspect.isbuiltin(attr):
            methods[name] = call_kind(attr)
            signatures[name] = _signature(getattr(obj, name))
            params[name] = _params(getattr(obj, name))
            docs[name] = inspect.getdoc(attr) or ""
    attributes = sorted(n for n in getattr(obj, "__dict__", {}) if not n.startswith("_"))
    return {
        "type": "object",
        "qualname": cls.__qualname__,
        "module": cls.__module__,
        "doc": inspect.getdoc(cls) or "",
        "methods": methods,
        "signatures": signatures,
        "params": params,
        "docs": docs,
        "attributes": attributes,
        "call": call_kind(cls.__call__) if callable(obj) else None,
    }


def _signature(fn: Any) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "(...)"


def _params(fn: Any) -> list[dict[str, Any]]:
    """Parameters as plain data (for the gateway's OpenAPI document)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    out = []
    for p in sig.parameters.values():
        item: dict[str, Any] = {
            "name": p.name,
            "kind": p.kind.name,
            "required": p.default is p.empty,
        }
        if p.annotation is not p.empty:
            item["annotation"] = (
                p.annotation
                if isinstance(p.annotation, str)
                else getattr(p.annotation, "__name__", str(p.annotation))
            )
        out.append(item)
    return out


def error_payload(exc: BaseException, where: str = "") -> tuple[int, list[Any]]:
    """The FINAL status and frames for an exception raised by user code."""
    if isinstance(exc, SerializationError):
        return Status.SERIALIZATION, [
            msgpack.packb({"type": "SerializationError", "message": f"{where}{exc}"})
        ]
    tb = exc.__traceback__
    # Drop the worker's own frames at the top: the caller wants to see their code.
    while tb is not None and tb.tb_frame.f_globals.get("__name__") == __name__:
        tb = tb.tb_next
    # A TypeError with no user frame left was raised binding the arguments: the caller's mistake.
    args_error = isinstance(exc, TypeError) and tb is None
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    body: dict[str, Any] = {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."),
        "message": str(exc),
        "traceback": text,
    }
    if args_error:
        body["args_error"] = True
    try:
        body["exc"] = cloudpickle.dumps(exc.with_traceback(None), protocol=5)
    except Exception:
        pass  # the client falls back to RemoteError with type name and traceback
    return Status.REMOTE, [msgpack.packb(body)]


class Credit:
    """How many more generator items a streaming call may send (flow control).

    The caller grants an initial credit in the CALL's meta and more with CREDIT messages as it
    consumes items. A producer with no credit waits: a sync generator's thread in short
    ``acquire`` timeouts (so cancelling it still works), an async generator on an event. A slow
    consumer thus slows the producer down instead of letting items pile up in memory.
    """

    #: Most items one stream may have on the way, whatever its caller claims: a client granting
    #: itself a credit of 10**9 once made the broker buffer without bound.
    MAX = 1024

    def __init__(self, initial: int) -> None:
        self._cond = threading.Condition()
        self._left = max(0, min(initial, self.MAX))
        self._granted = asyncio.Event()

    def grant(self, n: int) -> None:  # loop thread
        with self._cond:
            self._left = min(self._left + max(0, n), self.MAX)
            self._cond.notify_all()
        self._granted.set()

    def take(self) -> None:  # a call thread
        with self._cond:
            while self._left <= 0:
                self._cond.wait(0.1)  # short waits: a cancelled call's exception gets delivered
            self._left -= 1

    async def atake(self) -> None:  # the loop
        while True:
            with self._cond:
                if self._left > 0:
                    self._left -= 1
                    return
                self._granted.clear()
            await self._granted.wait()


#: Guards a call's ``thread_id`` against ``cancel()`` (which raises into that thread). One lock
#: for every call: held for a few bytecodes, twice per sync call, and one lock object per call
#: was a measurable share of a no-op call's cost.
_THREAD_ID_LOCK = threading.Lock()

#: Meta frames already decoded: a stub sends the same few bytes with every call. Only small
#: ones are kept (a stub's are a dozen bytes), at most _MAX_METAS of them.
_METAS: dict[bytes, dict[str, Any]] = {}
_MAX_METAS = 1024
_MAX_META_BYTES = 256

_CALL, _CANCEL, _CREDIT = int(Cmd.CALL), int(Cmd.CANCEL), int(Cmd.CREDIT)
_COROUTINE, _GENERATOR = types.CoroutineType, types.GeneratorType


def _call_meta(frame: bytes) -> dict[str, Any]:
    """A CALL's meta, decoded once per distinct frame (read-only: shared between calls)."""
    if type(frame) is not bytes or len(frame) > _MAX_META_BYTES:
        return unpack_meta(frame)
    meta = _METAS.get(frame)
    if meta is None:
        meta = unpack_meta(frame)  # ProtocolError when not a map: not kept
        if len(_METAS) >= _MAX_METAS:
            _METAS.clear()  # many distinct metas: a client making them up; start over
        _METAS[bytes(frame)] = meta
    return meta


class Call:
    """One running call: queues its output and items in order, sends its FINAL once.

    Output (prints, log records) and generator items share one queue, ``out``, so they leave in
    the order they happened. Appending to it takes no lock (``list.append`` is atomic) and output
    wakes nothing: a call's output leaves with its FINAL (inside it, see FINAL_OUTPUT, or just
    before it in the same loop iteration, in order and usually in the same BATCH), or, while
    the call runs on, at the worker's next output tick (:meth:`Worker.output_pending`), a few
    milliseconds later. A generator item is different: its consumer waits for it, so it asks the
    loop to flush at once.
    """

    __slots__ = (
        "_wake",
        "call_id",
        "cancelled",
        "cid",
        "credit",
        "done",
        "entry",
        "fold",
        "header_id",
        "key",
        "noted",
        "out",
        "started",
        "stream_logs",
        "task",
        "thread_id",
        "worker",
    )

    def __init__(
        self, worker: Worker, cid: bytes, call_id: int, header_id: bytes, stream_logs: bool
    ) -> None:
        self.worker = worker
        self.cid = cid
        self.call_id = call_id
        self.header_id = header_id
        self.key = cid + header_id  # in Worker.calls while it runs
        self.stream_logs = stream_logs
        self.fold = False  # the caller reads its last stdout inside the FINAL (CallMeta "o")
        self.credit: Credit | None = None
        self.entry: Entry | None = None
        self.task: asyncio.Task[None] | None = None
        self.thread_id: int | None = None
        self.cancelled = False
        self.done = False
        self.started = False
        # In the order produced: stdout text as a bare str, else (kind, text) for stderr and
        # (kind, frames) for a log record or an item. Only ever appended to (any thread) and cut
        # from the front (the loop), never replaced: a writer holding it while the loop flushes
        # can then never append to a list that is gone.
        self.out: list[str | tuple[int, Any]] = []
        # noted: the call is on the worker's output tick list. _wake: a flush is posted to the
        # loop (for an item). Each is set by a producer *after* its append and cleared by the
        # loop *before* it takes the queue, so a producer that sees it set knows its entry will
        # be taken; one that sees it clear registers again, at worst once too many.
        self.noted = False
        self._wake = False

    # Called from any thread -------------------------------------------------------------------

    # (The capture layer appends stdout to ``out`` itself, then calls note(): see CallSink.)

    def note(self) -> None:
        self.noted = True
        self.worker.output_pending(self)

    def output(self, kind: int, text: str) -> None:
        # stdout is queued as the bare str (see _send_out).
        self.out.append(text if kind == _STDOUT else (kind, text))
        if not self.noted:
            self.note()

    def log_record(self, record: dict[str, Any]) -> None:
        self.out.append((Partial.LOG, [msgpack.packb(record)]))
        if not self.noted:
            self.note()

    def item(self, value: Any) -> None:
        self.out.append((Partial.ITEM, dumps(value)))
        if not self._wake:
            self._wake = True
            self.worker.call_soon_any_thread(self.flush)

    # Loop thread only ------------------------------------------------------------------------------

    def flush(self) -> None:
        """Send what the call queued so far (nothing once its FINAL went)."""
        if not self.done:
            self._send_out()

    def _send_out(self, final: bool = False) -> bytes | None:
        """Send the queued output and items as PARTIALs. ``final`` (from :meth:`finish`): if
        it is only stdout and the caller reads FINAL_OUTPUT, return it instead, for the FINAL."""
        self._wake = False
        self.noted = False
        out = self.out
        n = len(out)
        if not n:
            return None
        # Producers may append meanwhile; they only ever add after index n, which stays queued.
        entries = out[:n]
        del out[:n]
        try:
            # Nothing but stdout (the usual case): one frame, joined in C. Any other entry is a
            # tuple, and join raises.
            text = "".join(entries)  # type: ignore[arg-type]
        except TypeError:
            pass
        else:
            if final and self.fold:
                return _encode(text)
            self._send_text(_STDOUT, text)
            return None
        # Mixed: in order, consecutive writes to one stream merged into one PARTIAL.
        texts: list[str] = []
        texts_kind = _STDOUT
        for entry in entries:
            kind, data = (_STDOUT, entry) if isinstance(entry, str) else entry
            if texts and kind != texts_kind:
                self._send_text(texts_kind, "".join(texts))
                texts = []
            if kind == _STDOUT or kind == _STDERR:
                texts.append(data)
                texts_kind = kind
            else:
                self.worker.pump.send([pack_header(_PARTIAL, self.call_id, kind), self.cid, *data])
        if texts:
            self._send_text(texts_kind, "".join(texts))
        return None

    def _send_text(self, kind: int, text: str) -> None:
        self.worker.pump.send([pack_header(_PARTIAL, self.call_id, kind), self.cid, _encode(text)])

    def finish(self, status: int, frames: list[Any]) -> None:
        if self.done:
            return
        self.done = True
        # The task's context holds this call (current_call): dropping the task now breaks that
        # cycle, so the call, its task and context are freed at once, not by the cyclic GC
        # (measured: 8 objects per async call left to it, ~1 µs per call in collections).
        self.task = None
        # Output still queued leaves now, in this loop iteration: inside the FINAL (stdout only,
        # to a caller that reads that), else as PARTIALs just before it, on the same socket and
        # so in order (usually in the FINAL's BATCH). Either way the broker forwards it untouched.
        try:
            stdout = self._send_out(final=True)
        except Exception:  # whatever the output held, the FINAL must go (the caller waits)
            log.exception("could not send the output of a call")
            stdout = None
        # Code still running in the call's context (a task an async call started) may print on:
        # the capture drops that now, as the broker would.
        self.stream_logs = False
        if stdout is None:
            header = pack_header(_FINAL, self.call_id, status)
            self.worker.pump.send([header, self.cid, *frames])
        else:
            header = pack_header(_FINAL, self.call_id, status | FINAL_OUTPUT)
            self.worker.pump.send([header, self.cid, stdout, *frames])
        self.worker.call_done(self)

    def cancel(self) -> None:
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()
            return
        with _THREAD_ID_LOCK:
            if self.thread_id is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self.thread_id), ctypes.py_object(_ThreadCancelled)
                )
        if not self.started:
            self.finish(*_cancelled_frames(self.call_id))


def _cancelled_frames(call_id: int) -> tuple[int, list[Any]]:
    return Status.CANCELLED, final_error(call_id, Status.CANCELLED, "the call was cancelled")[1:]


class Worker:
    """A worker process's state and loop. ``await worker.serve()`` runs it until stopped."""

    def __init__(
        self,
        broker: str,
        name: str = "default",
        *,
        group: str | None = None,
        threads: int = 64,
        parent_pid: int | None = None,
        curve: dict[str, bytes] | None = None,
        node: str | None = None,
        handle_signals: bool = True,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.broker = broker
        self.name = name
        self.node = node or socket.gethostname()
        self.handle_signals = handle_signals
        self.on_shutdown = on_shutdown  # the broker's SHUTDOWN (sent to node agents only)
        self.registered = asyncio.Event()  # set once the broker answered us
        self._registered = False  # the same, a plain bool: looked at for every message
        self.group = group or name
        self.parent_pid = parent_pid
        self.curve = curve
        self.objects: dict[bytes, Entry] = {}
        self.calls: dict[bytes, Call] = {}
        self.max_threads = threads
        self.limits = Limits.from_env()
        self.threads: CallThreads
        self._stopped = asyncio.Event()
        self._last_heard = time.monotonic()
        self.loop: asyncio.AbstractEventLoop
        self.pump: Pump
        self._loop_thread = 0
        # Keys of calls with output waiting for the output tick (appended by any thread, cut from
        # the front by the loop, like a Call's queue), and whether the tick is running (loop only).
        self._tick_calls: list[bytes] = []
        self._ticking = False

    # -- plumbing ---------------------------------------------------------------------------

    def call_soon_any_thread(self, fn: Callable[[], None]) -> None:
        if threading.get_ident() == self._loop_thread:
            self.loop.call_soon(fn)
        else:
            self.threads.post(fn)

    def output_pending(self, call: Call) -> None:
        """From any thread: ``call`` has output queued; it leaves at the next output tick.

        The tick runs on the loop only while calls have output waiting; starting it is the only
        time output wakes the loop from a call's thread, once per burst of output rather than
        per call or line, and not at all when a wake-up is pending anyway (a FINAL's). No lock:
        ``_tick_calls`` is handled like a call's queue, and ``_ticking`` is written by the loop
        only, so a call thread stopped half-way here (a cancelled call gets an exception at any
        bytecode) leaves no state that stops the tick for good: the next output starts it.
        """
        # Its key, not the call: a call that ended meanwhile (most of them) is then let go at
        # once, not kept alive until the tick, and the tick skips it with a dict lookup.
        self._tick_calls.append(call.key)
        if not self._ticking:
            self.call_soon_any_thread(self._start_output_tick)

    def _start_output_tick(self) -> None:
        if not self._ticking:  # several threads may have asked for it
            self._ticking = True
            # Its own empty context: the tick is the worker's, not the call's that started it.
            self.loop.call_later(OUTPUT_INTERVAL, self._output_tick, context=contextvars.Context())

    def _output_tick(self) -> None:
        tick_calls = self._tick_calls
        # Cleared before looking: a producer that still saw it set appended before this look.
        self._ticking = False
        n = len(tick_calls)
        if not n:
            return  # no output waiting: the tick stops until the next output starts it
        self._ticking = True
        keys = tick_calls[:n]
        del tick_calls[:n]
        running = self.calls.get
        try:
            for key in keys:
                call = running(key)
                if call is not None:
                    try:
                        call.flush()
                    except Exception:  # one call's bad output must not stop the others'
                        log.exception("could not send the output of a call")
        finally:
            # Re-armed whatever happened: a tick that died left every call's output waiting
            # for its FINAL.
            self.loop.call_later(OUTPUT_INTERVAL, self._output_tick, context=contextvars.Context())

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        SERVING_LOOPS.add(self.loop)  # user code blocking it on a call would wait for itself
        self._loop_thread = threading.get_ident()
        self.threads = CallThreads(self.loop, self.max_threads)
        sock = dealer(self.curve, immediate=True)
        sock.connect(self.broker)
        self.pump = Pump(sock, self._on_message)
        self._ready()
        if self.handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.loop.add_signal_handler(sig, self._stopped.set)
        try:
            async with asyncio.TaskGroup() as tg:
                heartbeats = tg.create_task(self._heartbeat_loop())
                await self._stopped.wait()
                heartbeats.cancel()
        finally:
            for call in list(self.calls.values()):
                call.cancel()
            self.pump.send([pack_header(Cmd.DISCONNECT)])
            self.pump.close()  # flushes the DISCONNECT
            self.threads.shutdown()

    def stop(self) -> None:
        self._stopped.set()

    @property
    def last_heard(self) -> float:
        """``time.monotonic()`` of the last message from the broker."""
        return self._last_heard

    def _ready(self) -> None:
        meta: ReadyMeta = {
            "name": self.name,
            "group": self.group,
            "pid": os.getpid(),
            "node": self.node,
            "capacity": self.max_threads,
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "objects": [n.decode() for n in self.objects],
        }
        self.pump.send([pack_header(Cmd.READY, 0, 0, self.name.encode()), b"", pack_meta(meta)])

    async def _heartbeat_loop(self) -> None:
        header = pack_header(Cmd.HEARTBEAT)
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                log.warning("parent process %d is gone; worker exits", self.parent_pid)
                self.stop()
                return
            self.pump.send([header, pack_meta(_usage())])
            if time.monotonic() - self._last_heard > HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS:
                # Broker silent: it may have restarted. Registering again is idempotent.
                self._ready()

    # -- messages from the broker --------------------------------------------------------------

    def _on_message(self, frames: list[bytes]) -> None:
        self._last_heard = time.monotonic()
        if not self._registered:
            self._registered = True
            self.registered.set()
        header = frames[0]
        problem = check_header(header)
        if problem:
            log.warning("ignored a malformed message from the broker: %s", problem)
            return
        # The target stays bytes: objects are keyed by it, so no decode/encode per call.
        cmd, call_id, target = header[COMMAND], read_call_id(header), header[TARGET]
        if cmd == _CALL:
            self._on_call(header, call_id, target, frames)
        elif cmd == _CANCEL:
            call = self.calls.get(frames[1] + header[CALL_ID]) if len(frames) > 1 else None
            if call is not None:
                call.cancel()
        elif cmd == _CREDIT:
            call = self.calls.get(frames[1] + header[CALL_ID]) if len(frames) > 1 else None
            if call is not None and call.credit is not None:
                call.credit.grant(header[FLAGS])
        elif cmd == Cmd.PUT:
            self._on_put(header, call_id, target, frames)
        elif cmd == Cmd.DELETE:
            entry = self.objects.pop(target, None)
            log.info("deleted %r", target.decode(errors="replace"))
            if len(frames) > 1 and frames[1]:
                status = Status.OK if entry is not None else Status.NOT_FOUND
                body = (
                    _NONE
                    if entry is not None
                    else final_error(
                        call_id, Status.NOT_FOUND, f"no object {target.decode(errors='replace')!r}"
                    )[1:]
                )
                self.pump.send([pack_header(Cmd.FINAL, call_id, status), frames[1], *body])
        elif cmd == Cmd.RENAME:
            # From the broker, which checked the names and moved its directory first.
            new = bytes(frames[2]) if len(frames) > 2 else b""
            text = new.decode(errors="replace")
            problem = name_problem(text, "new object name")
            if problem or "\ufffd" in text:
                log.warning("ignored a RENAME from the broker: %s", problem or "not UTF-8")
                return
            entry = self.objects.pop(target, None)
            if entry is not None:
                self.objects[new] = entry
                log.info("renamed %r to %r", target.decode(errors="replace"), text)
        elif cmd == Cmd.DISCONNECT:
            self._ready()
        elif cmd == Cmd.SHUTDOWN:
            # Meant for node agents (the cluster stops); an ordinary worker is stopped by its
            # supervisor, so it ignores one (the worker-port fuzzer sends them).
            if self.on_shutdown is not None:
                log.info("the cluster is shutting down")
                self.stop()
                self.on_shutdown()
        # HEARTBEAT: nothing to do beyond _last_heard

    def _new_call(
        self, header: bytes, call_id: int, frames: list[bytes], stream_logs: bool
    ) -> Call | None:
        if len(frames) < 3:
            log.warning("ignored a CALL/PUT without client id and meta frames")
            return None
        call = Call(self, frames[1], call_id, header[CALL_ID], stream_logs)
        self.calls[call.key] = call
        return call

    def _on_call(self, header: bytes, call_id: int, target: bytes, frames: list[bytes]) -> None:
        try:
            meta = _call_meta(frames[2])
        except Exception:
            meta = {}
        call = self._new_call(header, call_id, frames, bool(meta.get("s", True)))
        if call is None:
            return
        if meta.get("c"):
            call.credit = Credit(int(meta["c"]))
        call.fold = meta.get("o") is True
        entry = self.objects.get(target)
        if entry is None:
            body = final_error(
                call_id,
                Status.NOT_FOUND,
                f"no object named {target.decode()!r} in worker {self.name!r}",
            )
            return call.finish(Status.NOT_FOUND, body[1:])
        method = str(meta.get("m", ""))
        try:
            fn, kind = self._resolve(entry, method)
            args, kwargs = loads(frames[3:]) if len(frames) > 3 else ((), {})
        except BaseException as exc:
            return call.finish(*error_payload(exc))
        call.entry = entry
        if entry.max_concurrency is None:
            entry.running += 1
            self._start(call, fn, kind, args, kwargs)
        else:
            self._admit(entry, lambda: self._start(call, fn, kind, args, kwargs))

    def _on_put(self, header: bytes, call_id: int, target: bytes, frames: list[bytes]) -> None:
        call = self._new_call(header, call_id, frames, True)
        if call is None:
            return
        if target not in self.objects and len(self.objects) >= self.limits.max_objects:
            message = (
                f"worker {self.name!r} already holds {len(self.objects):,} objects, its limit; "
                "delete some (cluster.delete) or raise RHZMQ_MAX_OBJECTS on the daemon"
            )
            return call.finish(Status.LIMIT, final_error(call_id, Status.LIMIT, message)[1:])
        try:
            meta = unpack_meta(frames[2])
            spec = loads(frames[3:])
        except BaseException as exc:
            return call.finish(*error_payload(exc))

        def build() -> DescribeInfo:
            obj = _specs.build(spec)
            self.objects[target] = Entry(obj, meta.get("max_concurrency"))
            log.info("holding %r (%s)", target.decode(), type(obj).__qualname__)
            return describe(obj)

        self._start(call, build, "sync", (), {})

    def _resolve(self, entry: Entry, method: str) -> tuple[Callable[..., Any], str]:
        obj = entry.obj
        if not method.startswith(RH_PREFIX):
            kind = entry.kinds.get(method)
            fn = getattr(obj, method) if method else obj
            if kind is None:
                if not callable(fn):
                    raise TypeError(
                        f"{type(obj).__qualname__}.{method} is not callable, it is a {type(fn).__name__}"
                    )
                kind = entry.kinds[method] = call_kind(
                    fn if inspect.isroutine(fn) else type(fn).__call__
                )
            return fn, kind
        if method == RH_GETATTR:
            return (lambda attr: getattr(obj, attr)), "sync"
        if method == RH_SETATTR:
            return (lambda attr, value: setattr(obj, attr, value)), "sync"
        if method == RH_DESCRIBE:
            return (lambda: describe(obj)), "sync"
        if method == RH_VALUE:
            return (lambda: obj), "sync"
        raise AttributeError(f"unknown reserved method {method!r}")

    # -- running calls ------------------------------------------------------------------------

    def _admit(self, entry: Entry, start: Callable[[], None]) -> None:
        """Start now, or queue when the object is at its ``max_concurrency``."""
        if entry.max_concurrency is not None and entry.running >= entry.max_concurrency:
            entry.waiting.append(start)
        else:
            entry.running += 1
            start()

    def call_done(self, call: Call) -> None:
        self.calls.pop(call.key, None)
        entry = call.entry
        if entry is not None and call.started:
            entry.running -= 1
            if entry.waiting:
                entry.running += 1
                entry.waiting.popleft()()

    def _start(self, call: Call, fn: Callable[..., Any], kind: str, args: Any, kwargs: Any) -> None:
        if call.done:
            return  # cancelled while it waited for a slot
        call.started = True
        if kind == "async" or kind == "agen":
            ctx = contextvars.copy_context()
            ctx.run(current_call.set, call)
            # Owned by the Call: cancelling the call cancels it, and it always ends with FINAL.
            call.task = self.loop.create_task(
                self._run_async(call, fn, kind, args, kwargs), context=ctx
            )
        else:
            self.threads.submit(self._run_sync, call, fn, args, kwargs)

    def _result(self, value: Any) -> list[Any]:
        frames = dumps(value)
        if len(frames) > 1 or len(frames[0]) > OOB_THRESHOLD:  # only big results pay for the sum
            check_size(frames, self.limits.max_message_bytes, "the result")
        return frames

    def _run_sync(self, call: Call, fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
        token = current_call.set(call)
        status: int = Status.OK
        frames: list[Any] = _NONE
        try:
            try:
                with _THREAD_ID_LOCK:
                    if call.cancelled:
                        raise _ThreadCancelled
                    call.thread_id = threading.get_ident()
                result = fn(*args, **kwargs)
                if isinstance(result, _COROUTINE):
                    # A plain function returning a coroutine (a wrapper around an async one):
                    # its caller wants the value, so it is awaited here, on the worker's loop.
                    result = asyncio.run_coroutine_threadsafe(result, self.loop).result()
                if isinstance(result, _GENERATOR):
                    credit = call.credit
                    if credit is None:
                        # Called without streaming (cluster.call, a plain CALL): its items are
                        # the result, as a list (they were once dropped and None returned).
                        result = list(result)
                    else:
                        for item in result:
                            credit.take()
                            call.item(item)
                        result = None
                frames = self._result(result)
            finally:
                with _THREAD_ID_LOCK:
                    call.thread_id = None
        except _ThreadCancelled:
            status, frames = _cancelled_frames(call.call_id)
        except BaseException as exc:
            status, frames = error_payload(exc)
        finally:
            current_call.reset(token)
        self.threads.post(call.finish, status, frames)

    async def _run_async(
        self, call: Call, fn: Callable[..., Any], kind: str, args: Any, kwargs: Any
    ) -> None:
        try:
            if kind == "agen":
                credit = call.credit
                if credit is None:  # not streamed: the items are the result (see _run_sync)
                    result = [item async for item in fn(*args, **kwargs)]
                else:
                    async for item in fn(*args, **kwargs):
                        await credit.atake()
                        call.item(item)
                    result = None
            else:
                result = await fn(*args, **kwargs)
                while asyncio.iscoroutine(result):  # B6: an async method returning a coroutine
                    result = await result
            status: int = Status.OK
            frames: list[Any] = self._result(result)
        except asyncio.CancelledError:
            # This task is the call itself: reporting the cancellation is how it ends.
            status, frames = _cancelled_frames(call.call_id)
        except BaseException as exc:
            status, frames = error_payload(exc)
        call.finish(status, frames)


def _usage() -> dict[str, Any]:
    """CPU seconds and resident memory of this process, for ``cluster.processes()``."""
    t = os.times()
    usage: dict[str, Any] = {"cpu": round(t.user + t.system, 3)}
    try:
        with open("/proc/self/statm") as f:
            usage["rss"] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass  # not Linux: CPU time only
    return usage


def run(
    broker: str,
    name: str,
    parent_pid: int | None = None,
    curve: dict[str, bytes] | None = None,
    group: str | None = None,
    node: str | None = None,
    ready_fd: int | None = None,
) -> None:
    """Entry point of a worker process (``python -m worker``). With ``ready_fd``, the worker says
    READY there (:mod:`rhzmq.wire.handshake`) once the broker has registered it: its supervisor
    learns that the worker serves without asking the broker."""
    install(Partial.STDOUT, Partial.STDERR)
    os.environ["RHZMQ_WORKER"] = name  # user code can tell it runs on a cluster
    os.environ["RHZMQ_ENV"] = group or name  # ...and in which env (rh.module(C)().env)
    worker = Worker(broker, name, parent_pid=parent_pid, curve=curve, group=group, node=node)
    log.info(
        "worker %r (pid %d, rhzmq %s) connecting to %s", name, os.getpid(), __version__, broker
    )

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(worker.serve())
            if ready_fd is not None:
                await worker.registered.wait()
                Announcer(ready_fd).ready(name)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    # Threads stuck in user code must not keep a stopped worker alive.
    os._exit(0)
