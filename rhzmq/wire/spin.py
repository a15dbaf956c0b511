"""Spin-waiting: a client that expects its answer within a moment keeps its thread running
instead of going to sleep until the answer wakes it.

Why: on the 2-vCPU development machine a sequential call's time is mostly wake-ups, not work.
With every process pinned to one CPU a no-op ``acall`` took 170 µs instead of 241 (the
``zmq.proxy`` chain 94 instead of 175): waking a thread on an idle CPU costs more than what the
thread then does (the guest halts an idle vCPU at once, and leaving that state is dear). A
waiter that spins needs no wake-up when its answer arrives, and the CPU it holds never idles.

Each look at the socket is followed by ``sched_yield()``: a thread woken on the spinner's CPU
(the client's own ZeroMQ I/O thread, the daemon's) then runs at once instead of queueing behind
the spinner. Without it the gain came and went: 161-164 µs in one run, and 393-398 µs (against
250 without spinning) in the rounds of ``python -m perf``'s core scenario that followed calls in
flight, where a thread the answer needed had landed behind the spinner. With it, every round
of that scenario: ``acall`` p50 184-203 µs against 242-261 without spinning, the blocking stub
152-190 against 235-255, one call in flight 5,114 calls/s against 3,766
(``docs/performance.md``).

The price is CPU: a spinning waiter keeps one core busy (yielding it to any other thread that
wants it) until its answer arrives or its budget runs out (``RHZMQ_SPIN_US``, 500 µs by
default; 0 turns spinning off). What keeps it cheap:

* It adapts: each process keeps a running mean of how long its waits lasted until the first
  answer arrived, spinning or not. Waits spin only while that is under the budget, so a
  cluster across a network, or calls longer than the budget, cost no spinning at all, and a
  hiccup lifts the mean only until the next few answers. (A rule that stopped spinning after
  spins that missed was tried first: a burst of misses switched spinning off, and a client
  that no longer spins while the threads answering it had moved to the other CPU was slower
  than one that never spun, 300 against 225 µs. The waits' own length has no such trap.)
* Only for a few calls at a time (:data:`MAX_IN_FLIGHT`): a client with more in flight has
  answers arriving all the time and its loop busy with them anyway; spinning there only takes
  CPU from the processes that answer (8 client processes at 64 calls in flight each lost 4-5 %
  of their calls/s with it).
* One spinner per process: a spinning thread holds the GIL between its looks at the socket
  (``sched_yield`` releases it, without promising it to another thread), and one is enough to
  keep a CPU awake.
* Only to a broker reached without this process's help: a local cluster's daemon, not an
  SSH cluster, whose tunnel forwards the answer on the portal's thread in this very process
  (a spinning thread holds the GIL it would need). For the same reason other Python threads
  of a process wait up to one budget for the GIL while a waiter spins.
* Never with one usable CPU (the spinner would hold the only CPU the answer needs), and never in
  the cluster's own processes (workers, the gateway, daemons: their CPU is for calls), which turn
  it off at start (:meth:`Spin.off`).

Waits spin, never sends: a call leaves at once either way.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

log = logging.getLogger("rhzmq.spin")

DEFAULT_SPIN_US = 500.0
MAX_SPIN_US = 100_000.0  # a larger budget is a mistake, not a wish: capped (with a warning)
#: An async client spins only while at most this many of its calls are in flight.
MAX_IN_FLIGHT = 4
#: Weight of the newest wait in the running mean: about the last 16 count.
WEIGHT = 1 / 16
#: One wait counts for at most this many budgets (a stall of seconds is not 1,000 waits' worth).
CAP = 4


def cpus() -> int:
    """CPUs this process may use: those it may run on, fewer under a cgroup CPU quota (a
    container limited to one CPU of a large host)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota to read: the affinity says it
    return n


def spin_budget() -> float:
    """Seconds a waiter may spin, from ``RHZMQ_SPIN_US`` (0 with one usable CPU)."""
    raw = os.environ.get("RHZMQ_SPIN_US", "").strip()
    try:
        us = float(raw) if raw else DEFAULT_SPIN_US
    except ValueError:
        log.warning(
            "RHZMQ_SPIN_US=%r is not a number of microseconds; using %d (0 turns spinning off)",
            raw,
            DEFAULT_SPIN_US,
        )
        us = DEFAULT_SPIN_US
    if not us > 0:  # 0, negative or NaN: off
        return 0.0
    if us > MAX_SPIN_US:
        log.warning("RHZMQ_SPIN_US=%s is over %d; using %d", raw, MAX_SPIN_US, MAX_SPIN_US)
        us = MAX_SPIN_US
    return us / 1e6 if cpus() > 1 else 0.0


class Spin:
    """Whether a wait may spin now, and how long waits have been lasting; one per process
    (:data:`SPIN`), shared by the async clients and blocking calls of every thread."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.mean_wait = 0.0  # running mean of waits until the first answer (seconds)
        self._taken_until = 0.0  # a waiter spins until then (monotonic)

    def begin(self) -> float:
        """When the caller must stop spinning (``time.monotonic()``), or 0: do not spin. A
        caller that spins calls :meth:`end` when it stops."""
        if not self.budget or self.mean_wait >= self.budget:
            return 0.0
        now = time.monotonic()
        if now < self._taken_until:
            return 0.0  # another waiter spins (a spinner that never said end expires)
        self._taken_until = now + self.budget  # a race between threads only lets both spin
        return self._taken_until

    def end(self, until: float) -> None:
        """The spin :meth:`begin` answered ``until`` to is over (a late call for a spin whose
        slot expired and went to another waiter leaves that one's slot alone)."""
        if self._taken_until == until:
            self._taken_until = 0.0

    def waited(self, seconds: float) -> None:
        """A waiter heard its first answer ``seconds`` after it began to wait."""
        seconds = min(seconds, CAP * self.budget)
        self.mean_wait += (seconds - self.mean_wait) * WEIGHT

    def off(self) -> None:
        """No spinning in this process from now on (the cluster's own processes)."""
        self.budget = 0.0


SPIN = Spin(spin_budget())
