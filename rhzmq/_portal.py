"""The sync facade: every blocking call runs the async code on one loop thread (anyio's portal).

There is one implementation of every operation, the ``async`` one; ``run_sync`` and ``iter_sync``
drive it from plain code through a single process-wide :class:`anyio.from_thread.BlockingPortal`
(a uvloop loop in a daemon thread), the way starlette's TestClient drives an ASGI app.

A blocking call from inside a running event loop would freeze that loop (and deadlock if the loop
is the one serving the call), so it raises :class:`SyncCallInEventLoop` with the ``await`` form.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._exceptions import SyncCallInEventLoop

T = TypeVar("T")

_lock = threading.Lock()
_portal: BlockingPortal | None = None
_portal_cm: AbstractContextManager[BlockingPortal] | None = None


def portal() -> BlockingPortal:
    global _portal, _portal_cm
    if _portal is None:
        with _lock:
            if _portal is None:
                try:
                    import uvloop  # noqa: F401

                    options = {"use_uvloop": True}
                except ImportError:
                    options = {}
                _portal_cm = start_blocking_portal("asyncio", options)
                _portal = _portal_cm.__enter__()
                atexit.register(_shutdown)
    return _portal


def _shutdown() -> None:
    global _portal, _portal_cm
    if _portal_cm is not None:
        cm, _portal, _portal_cm = _portal_cm, None, None
        try:
            cm.__exit__(None, None, None)
        except Exception:
            pass  # interpreter exit: nothing useful to do with a failure here


def check_not_in_loop(hint: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise SyncCallInEventLoop(
        "this blocking call was made from inside a running event loop, which it would block. "
        f"In async code, use the awaitable form instead: {hint}"
    )


def run_sync(
    fn: Callable[..., Awaitable[T]], *args: Any, hint: str = "await ...", **kwargs: Any
) -> T:
    """Run ``await fn(*args, **kwargs)`` on the portal loop and return its result."""
    check_not_in_loop(hint)
    future = portal().start_task_soon(functools.partial(fn, **kwargs) if kwargs else fn, *args)
    try:
        return future.result()
    except BaseException:
        future.cancel()  # Ctrl-C in a script cancels the remote call too
        raise


def iter_sync(agen: AsyncIterator[T], hint: str = "async for ...") -> Iterator[T]:
    """Iterate an async iterator from plain code, item by item, on the portal loop."""
    check_not_in_loop(hint)
    p = portal()
    try:
        while True:
            try:
                yield run_sync(agen.__anext__, hint=hint)
            except StopAsyncIteration:
                return
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            p.call(aclose)
