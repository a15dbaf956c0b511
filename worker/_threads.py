"""Threads for sync calls, with completions handed back to the event loop in batches.

``concurrent.futures.ThreadPoolExecutor`` plus one ``loop.call_soon_threadsafe`` per result cost
about half the worker's throughput for a no-op sync function in profiles: a Future per call, and
a self-pipe write plus a loop wake-up per completion. Here a call is a plain tuple on a
``SimpleQueue``, and threads post results (and generator items) to a deque; the loop is woken
only if no wake-up is already pending, then runs every posted callback in one go.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("rhzmq.worker")


class CallThreads:
    """Up to ``max_threads`` daemon threads running submitted callables FIFO."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, max_threads: int = 64, name: str = "rhzmq-call"
    ) -> None:
        self.loop = loop
        self.max_threads = max_threads
        self.name = name
        self._work: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._done: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._wake_pending = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a call thread (starting one if none is idle)."""
        with self._lock:
            if self._idle == 0 and len(self._threads) < self.max_threads:
                t = threading.Thread(
                    target=self._run, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(t)
                t.start()
            self._idle -= 1  # claimed now, so a burst of submits starts enough threads
        self._work.put((fn, args))

    def _run(self) -> None:
        get = self._work.get
        while True:
            with self._lock:
                self._idle += 1
            item = get()
            if item is None:
                return
            fn, args = item
            fn(*args)

    def post(self, callback: Callable[..., Any], *args: Any) -> None:
        """From a call thread: run ``callback(*args)`` on the loop, in posting order."""
        self._done.append((callback, args))
        with self._lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        # In an empty context, not the posting call's: the batch runs other calls' completions,
        # and anything they log must not be routed to this call's caller (worker/_capture.py).
        self.loop.call_soon_threadsafe(self._drain, context=contextvars.Context())

    def _drain(self) -> None:
        with self._lock:
            self._wake_pending = False
        done = self._done
        while done:
            callback, args = done.popleft()
            try:
                callback(*args)
            except Exception:  # the rest of the batch (other calls' FINALs) still runs
                log.exception("error in a completion posted by a call thread")

    @property
    def size(self) -> int:
        return len(self._threads)

    def shutdown(self) -> None:
        """Ask idle threads to exit (busy ones are daemon threads: they do not block exit)."""
        for _ in self._threads:
            self._work.put(None)
