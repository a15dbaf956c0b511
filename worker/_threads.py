"""Threads for sync calls: woken only when needed, with completions handed back to the loop in batches.

Three costs shaped this module, all measured with no-op sync functions:

* ``concurrent.futures.ThreadPoolExecutor`` plus one ``loop.call_soon_threadsafe`` per result cost
  about half the worker's throughput: a Future per call, and a self-pipe write plus a loop wake-up
  per completion. Here a call is a plain tuple on a deque, and threads post results (and generator
  items) to another deque; the loop is woken only if no wake-up is already pending, then runs
  every posted callback in one go.
* A woken thread that preempts the loop waking it: the loop holds the GIL until it goes back to
  ``epoll``, so the thread only blocks again at once. Call threads run under ``SCHED_BATCH``
  (see :func:`batch_policy`), which does not preempt on wake-up.
* A thread per call, and no more: a thread that finishes a call takes the next queued one
  itself, and a submit wakes (or starts) a thread only when no thread is running calls, so a
  burst of short calls runs on one thread, back to back, with a deque operation per call. (The
  pool before claimed an idle thread per submit with a counter that went negative in a burst:
  a burst also ran on one thread, but for good, so 8 calls that each sleep 0.3 s, arriving
  together, took 2.4 s; now 0.3 s. The test of blocked calls below holds it.)

What keeps concurrency: while calls wait in the queue, a check on the loop every
:data:`STALL_CHECK` seconds looks whether a call queued before its last look still waits. If one
does, the running threads do not keep up (they sleep, wait on I/O or on another call, or hold the
GIL in a long computation) and as many threads again are woken, up to one per waiting call: the
running threads double with each look. So a burst of calls that each block for a moment (a 0.5 ms
query) still runs side by side, not one after another (8 blocked calls all run after three looks,
64 after six); a sync call that arrives while others block starts 1-2 ms later (at the next look)
rather than at once; a call that arrives while no call runs starts at once.

Why doubling and not a thread per waiting call at once, as before: under load a queue of short
calls also waits a look's time whenever the loop holds the GIL (it drains a batch of 512
messages before a call thread can run), and a thread per waiting call woke all 64 threads, which
then queued for the GIL one after another. 8 client processes at 64 calls in flight each: 81,845
→ 85,809 calls/s (87,264 → 90,549 in a second set; medians of 18 rounds each, alternated); one
client at 64 in flight unchanged.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("rhzmq.worker")

#: Seconds between two looks at a queue that is not moving (see the module docstring).
STALL_CHECK = 0.001

#: RHZMQ_CALL_THREAD_POLICY values: ``batch`` (the default), or one of these to turn it off.
OFF = frozenset({"default", "off", "none", "no", "false", "0"})


def call_thread_policy() -> str:
    """``batch`` or ``default``, as RHZMQ_CALL_THREAD_POLICY asks (``batch`` if unset or not
    understood, with a warning naming the values it takes)."""
    asked = os.environ.get("RHZMQ_CALL_THREAD_POLICY", "batch").strip().lower() or "batch"
    if asked in OFF:
        return "default"
    if asked != "batch":
        log.warning(
            "RHZMQ_CALL_THREAD_POLICY=%r is not understood; using 'batch' (turn it off with "
            "'default')",
            asked,
        )
    return "batch"


def batch_policy() -> bool:
    """Move the calling thread from the default scheduling policy to Linux's ``SCHED_BATCH``:
    the same CPU share, but a woken ``SCHED_BATCH`` thread never preempts a running one (it runs
    when a CPU is free or at the next time slice). False, and nothing changed, where that does
    not exist, is refused, or the thread runs under another policy (an operator's ``chrt``:
    real-time or idle stays as it is).

    Why call threads use it: a call thread is woken by the worker's loop, which holds the GIL
    until it goes back to ``epoll``. Under the default policy the woken thread preempts the loop
    on its CPU only to block on the GIL at once. Measured per sequential no-op call: 2.1
    involuntary switches of the loop thread and 2 blocks of the call thread, against 0.02 and 1
    with ``SCHED_BATCH``; the worker's CPU per call 30 µs less, acall p50 21-43 µs lower in
    paired runs, 64 calls in flight 5 % more calls/s (on an otherwise idle machine; on a busy
    one, a sync call woken from I/O may wait for a time slice where it would have preempted).
    Switching to the default policy around each call's own code lost all of it (the switch
    itself lets the loop preempt). So what a sync call starts (threads, processes, a library's
    pool created lazily on a call thread) inherits ``SCHED_BATCH``, and a call that sets its
    thread's policy sets it for the later calls that thread runs.
    RHZMQ_CALL_THREAD_POLICY=default turns all this off.
    """
    try:
        current = os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
        if current != os.SCHED_OTHER:
            return False
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError) as exc:  # not Linux, or refused (a sandbox)
        log.debug("call threads keep the default scheduling policy: %s", exc)
        return False
    return True


class CallThreads:
    """Up to ``max_threads`` daemon threads running submitted callables FIFO; ``stall_check``:
    seconds between looks at a queue that is not moving."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        max_threads: int = 64,
        name: str = "rhzmq-call",
        stall_check: float = STALL_CHECK,
    ) -> None:
        self.loop = loop
        self.max_threads = max_threads
        self.name = name
        self.stall_check = stall_check
        self.batch = call_thread_policy() == "batch"
        self._queue: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        # One True per wake-up of an idle thread; False asks a thread to exit.
        self._wakeups: queue.SimpleQueue[bool] = queue.SimpleQueue()
        # Guards _idle, _running and _check_armed, and orders a submit against a thread that
        # finds the queue empty: see _run.
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a wake-up, none sent to them yet
        self._running = 0  # threads woken or started and not idle again yet
        self._submitted = 0  # calls submitted so far (the loop's count): see _check_stall
        self._check_armed = False
        self._done: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._post_lock = threading.Lock()
        self._wake_pending = False

    # -- the loop's side ------------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a call thread: at once if none is running calls, else after
        them (or after one stall check, if they are blocked)."""
        self._queue.append((fn, args))  # before the lock: see _run
        self._submitted += 1
        with self._lock:
            if not self._running:
                self._wake(1)
                return
            if self._check_armed:
                return
            self._check_armed = True
        self.loop.call_later(self.stall_check, self._check_stall, self._submitted)

    def _wake(self, n: int) -> None:
        """Wake idle threads (or start new ones) for ``n`` queued calls; holds ``_lock``."""
        for _ in range(n):
            if self._idle:
                self._idle -= 1
                self._wakeups.put(True)
            elif len(self._threads) < self.max_threads:
                t = threading.Thread(
                    target=self._run, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(t)
                t.start()
            else:
                return  # every thread is running calls: they take the rest when free
            self._running += 1

    def _check_stall(self, mark: int) -> None:
        """``mark``: calls submitted by the last look. More calls waiting than were submitted
        since means one from before the last look still waits, a whole interval or more."""
        with self._lock:
            waiting = len(self._queue)
            if not waiting:
                self._check_armed = False
                return
            if waiting > self._submitted - mark:
                self._wake(min(waiting, max(1, self._running)))  # double (module docstring)
        self.loop.call_later(self.stall_check, self._check_stall, self._submitted)

    # -- a call thread's side -------------------------------------------------------------------

    def _run(self) -> None:
        if self.batch:
            batch_policy()
        calls = self._queue
        wait = self._wakeups.get
        while True:
            while True:
                try:
                    fn, args = calls.popleft()
                except IndexError:
                    # Empty: under the lock, look again before going idle. A submit appends
                    # before taking the lock, so either we see its call here, or it sees us
                    # idle (no threads running) and wakes one.
                    with self._lock:
                        if calls:
                            continue
                        self._running -= 1
                        self._idle += 1
                    break
                try:
                    fn(*args)
                except BaseException:  # _run_sync reports its own errors; keep the thread
                    log.exception("error in a call thread")
            if not wait():
                return

    def post(self, callback: Callable[..., Any], *args: Any) -> None:
        """From a call thread: run ``callback(*args)`` on the loop, in posting order."""
        self._done.append((callback, args))
        with self._post_lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        # In an empty context, not the posting call's: the batch runs other calls' completions,
        # and anything they log must not be routed to this call's caller (worker/_capture.py).
        self.loop.call_soon_threadsafe(self._drain, context=contextvars.Context())

    def _drain(self) -> None:
        with self._post_lock:
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
            self._wakeups.put(False)
