"""The sync facade: blocking calls that need the event loop run the async code on one loop thread.

There is one implementation of every operation, the ``async`` one; ``run_sync`` and ``iter_sync``
drive it from plain code on a single process-wide event loop (uvloop) running in a daemon thread,
the way starlette's TestClient drives an ASGI app through a portal.

Why not anyio's ``BlockingPortal``: it measured 80 µs per round trip here against 33 µs for
``asyncio.run_coroutine_threadsafe`` on the same uvloop thread (task group, cancel scope and
portal bookkeeping per call), and sync stubs pay it on every call. The loop is ours alone, so
we need none of that machinery: submit a coroutine, wait on its future, cancel it on Ctrl-C.

Not every blocking call comes here: a blocking *stub call* on a connected cluster skips the
thread hand-off altogether: the calling thread makes the round trip on a pooled socket
(:mod:`rhzmq.wire.blocking`); what comes here is what needs the loop (connecting, SSH, streams).

Blocking calls from inside a running event loop. The call runs on the portal's loop, not the
caller's, so blocking the caller's loop cannot deadlock it, and blocking calls work everywhere,
as in Runhouse: in ``async def`` code (the caller's loop waits, as for any blocking library
call) and in Jupyter, whose kernel runs every cell inside its own event loop. In a plain asyncio
program the first such call warns once (a ``RuntimeWarning`` naming the ``await`` form); in
IPython/Jupyter nothing is said. The two loops where blocking *would* deadlock raise
:class:`SyncCallInEventLoop`: the portal's own, and a worker's serving loop (an ``async def``
method calling a sync stub of an object in its own worker would wait for itself). Hints are
built only when shown: a hint that ``repr()``-ed 1 MiB of arguments cost 10 ms per call.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from .wire.client import SERVING_LOOPS
from .wire.exceptions import SyncCallInEventLoop

T = TypeVar("T")
#: How to call it from async code, or a function making that text (built only when shown).
Hint = str | Callable[[], str]

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_warned = False
_running_loop = asyncio._get_running_loop  # None outside a loop: no exception per call


def portal() -> asyncio.AbstractEventLoop:
    """The loop thread's event loop, started on first use and stopped at exit."""
    global _loop
    if _loop is None:
        with _lock:
            if _loop is None:
                try:
                    import uvloop

                    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
                except ImportError:
                    loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="rhzmq-loop", daemon=True)
                thread.start()
                _loop = loop
                atexit.register(_shutdown)
    return _loop


def started() -> asyncio.AbstractEventLoop | None:
    """The loop thread's loop if it runs (never starts it)."""
    return _loop


def _shutdown() -> None:
    global _loop
    loop, _loop = _loop, None
    if loop is not None and loop.is_running():
        loop.call_soon_threadsafe(loop.stop)


def _in_ipython() -> bool:
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get is not None and get() is not None


def check_loop(hint: Hint) -> None:
    """Called by every blocking entry point; see the module docstring."""
    loop = _running_loop()
    if loop is None:
        return
    text = hint() if callable(hint) else hint
    if loop is _loop or loop in SERVING_LOOPS:
        raise SyncCallInEventLoop(
            "this blocking call was made on the event loop that would have to serve it, so it "
            f"would wait for itself. Use the awaitable form instead: {text}"
        )
    global _warned
    if _warned or _in_ipython():
        return
    _warned = True
    warnings.warn(
        "a blocking rhzmq call inside a running event loop blocks that loop until it returns "
        f"(said once). In async code, prefer the awaitable form: {text}",
        RuntimeWarning,
        stacklevel=3,
    )


def run_sync(
    fn: Callable[..., Awaitable[T]], *args: Any, hint: Hint = "await ...", **kwargs: Any
) -> T:
    """Run ``await fn(*args, **kwargs)`` on the loop thread and return its result."""
    if _running_loop() is not None:
        check_loop(hint)
    coro = _as_coroutine(functools.partial(fn, **kwargs) if kwargs else fn, *args)
    future = asyncio.run_coroutine_threadsafe(coro, portal())
    try:
        return future.result()
    except BaseException:
        future.cancel()  # Ctrl-C in a script cancels the remote call too
        raise


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _as_coroutine(fn: Callable[..., Awaitable[T]], *args: Any) -> Coroutine[Any, Any, T]:
    result = fn(*args)
    return result if asyncio.iscoroutine(result) else _await(result)


def iter_sync(agen: AsyncIterator[T], hint: Hint = "async for ...") -> Iterator[T]:
    """Iterate an async iterator from plain code, item by item, on the loop thread."""
    if _running_loop() is not None:
        check_loop(hint)
    try:
        while True:
            try:
                yield run_sync(agen.__anext__, hint=hint)
            except StopAsyncIteration:
                return
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            run_sync(aclose, hint=hint)
