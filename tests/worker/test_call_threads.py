"""The worker's call threads (worker/_threads.py): few wake-ups for short calls, concurrency for
blocked ones, no lost wake-up. Real threads on a real event loop."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from typing import Any

from worker._threads import CallThreads, call_thread_policy


async def _run_all(threads: CallThreads, fns: list[object], timeout: float = 20.0) -> list[object]:
    """Submit ``fns`` (callables) at once; their results, in order, through post()."""
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in fns]

    def run(i: int, fn: object) -> None:
        value = fn()  # type: ignore[operator]
        threads.post(futures[i].set_result, value)

    for i, fn in enumerate(fns):
        threads.submit(run, i, fn)
    return list(await asyncio.wait_for(asyncio.gather(*futures), timeout))


def test_a_burst_of_short_calls_runs_on_one_thread() -> None:
    async def main() -> tuple[set[str], int]:
        # A stall check far away: the thread woken for the first call takes the other 199 as
        # it finishes each one; none waits for a check, and no other thread is woken.
        threads = CallThreads(asyncio.get_running_loop(), 64, stall_check=30.0)
        names = await _run_all(threads, [lambda: threading.current_thread().name] * 200)
        threads.shutdown()
        return set(names), threads.size  # type: ignore[arg-type]

    names, size = asyncio.run(main())
    assert size == 1 and len(names) == 1


def test_blocked_calls_get_threads_of_their_own() -> None:
    started = threading.Semaphore(0)
    release = threading.Event()

    def blocks() -> str:
        started.release()
        release.wait(20)
        return threading.current_thread().name

    async def main() -> tuple[list[object], float]:
        threads = CallThreads(asyncio.get_running_loop(), 64, stall_check=0.005)
        t = time.monotonic()
        run = asyncio.ensure_future(_run_all(threads, [blocks] * 8))
        # All 8 must be running at once: each waits until the test releases them.
        for _ in range(8):
            while not started.acquire(blocking=False):
                await asyncio.sleep(0.001)
                assert time.monotonic() - t < 10, "blocked calls did not get threads"
        took = time.monotonic() - t
        release.set()
        names = await run
        threads.shutdown()
        return names, took

    names, took = asyncio.run(main())
    # One thread each. The pool before ran a burst on one thread for good: 8 x 0.3 s took 2.4 s.
    assert len(set(names)) == 8
    assert took < 5  # a few stall checks of 5 ms, not a wait for the first call to end


def test_waiting_calls_double_the_running_threads_at_each_look() -> None:
    # A thread per waiting call at once woke all 64 threads under load (a batch of short calls
    # waits a look's time while the loop holds the GIL), and they queued for the GIL one after
    # another. Now each look that finds calls stuck doubles the running threads: 32 calls that
    # block start 1, 2, 4, ... at a time, and all of them still get a thread.
    started = threading.Semaphore(0)
    release = threading.Event()

    def blocks() -> None:
        started.release()
        release.wait(20)

    async def main() -> tuple[int, int]:
        threads = CallThreads(asyncio.get_running_loop(), 64, stall_check=0.2)
        run = asyncio.ensure_future(_run_all(threads, [blocks] * 32))
        await asyncio.sleep(0.3)  # one look (at 0.2 s): 1 running, 1 more woken
        after_one_look = 0
        while started.acquire(blocking=False):
            after_one_look += 1
        total = after_one_look
        t = time.monotonic()
        while total < 32 and time.monotonic() - t < 10:  # 2, 4, 8, 16 more: four more looks
            await asyncio.sleep(0.01)
            while started.acquire(blocking=False):
                total += 1
        release.set()
        await run
        threads.shutdown()
        return after_one_look, total

    after_one_look, total = asyncio.run(main())
    assert after_one_look <= 2  # was 32: a thread for every waiting call at the first look
    assert total == 32


def test_max_threads_bounds_the_threads_and_the_rest_wait() -> None:
    release = threading.Event()
    running = []

    def blocks() -> None:
        running.append(1)
        release.wait(20)

    async def main() -> tuple[int, int]:
        threads = CallThreads(asyncio.get_running_loop(), 3, stall_check=0.002)
        run = asyncio.ensure_future(_run_all(threads, [blocks] * 6))
        await asyncio.sleep(0.3)
        at_most = len(running)
        release.set()
        await run
        threads.shutdown()
        return at_most, threads.size

    at_most, size = asyncio.run(main())
    assert at_most == 3 and size == 3


def test_no_call_is_lost_when_submits_race_threads_going_idle() -> None:
    # Submits land while threads finish and go idle; a lost wake-up would leave a call queued
    # until a stall check, here 30 s away: the timeout turns that into a failure.
    async def main() -> int:
        threads = CallThreads(asyncio.get_running_loop(), 8, stall_check=30.0)
        rng = random.Random(1)
        total = 0
        for _ in range(300):
            n = rng.randint(1, 6)
            results = await _run_all(threads, [lambda: 1] * n, timeout=10)
            total += sum(results)  # type: ignore[arg-type]
            if rng.random() < 0.3:
                await asyncio.sleep(rng.random() / 1000)
        threads.shutdown()
        return total

    assert asyncio.run(main()) > 300


def test_an_exception_escaping_a_call_keeps_the_thread() -> None:
    def escapes() -> None:
        raise RuntimeError("boom")  # _run_sync catches everything; this guards the pool itself

    async def main() -> list[object]:
        threads = CallThreads(asyncio.get_running_loop(), 1, stall_check=30.0)
        threads.submit(escapes)
        names = await _run_all(threads, [lambda: "after"] * 3)
        threads.shutdown()
        return names

    assert asyncio.run(main()) == ["after"] * 3


def test_calls_that_each_block_a_moment_still_run_side_by_side() -> None:
    # 40 calls of 2 ms each (a quick query): the first thread takes one every 2 ms, so the
    # queue moves, but a call from before the last look still waits at the next one: threads
    # are woken for all of them. (Waking only when nothing moved ran them one after another.)
    def quick_io() -> str:
        time.sleep(0.002)
        return threading.current_thread().name

    async def main() -> list[object]:
        threads = CallThreads(asyncio.get_running_loop(), 64, stall_check=0.005)
        names = await _run_all(threads, [quick_io] * 40)
        threads.shutdown()
        return names

    assert len(set(asyncio.run(main()))) >= 8


def test_call_threads_run_under_sched_batch_unless_told_not_to(monkeypatch: Any) -> None:
    # SCHED_BATCH: a woken call thread does not preempt the loop that woke it (and holds the
    # GIL); see worker._threads.batch_policy. RHZMQ_CALL_THREAD_POLICY=default turns it off, a
    # value it does not know keeps the default of this module (batch) and says so.
    def policies() -> list[object]:
        async def main() -> list[object]:
            threads = CallThreads(asyncio.get_running_loop(), 4)
            got = await _run_all(threads, [lambda: os.sched_getscheduler(0)] * 3)
            threads.shutdown()
            return got

        return asyncio.run(main())

    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the test's own thread: untouched
    assert policies() == [os.SCHED_BATCH] * 3
    monkeypatch.setenv("RHZMQ_CALL_THREAD_POLICY", "default")
    assert policies() == [os.SCHED_OTHER] * 3
    monkeypatch.setenv("RHZMQ_CALL_THREAD_POLICY", "off")
    assert call_thread_policy() == "default"
    monkeypatch.setenv("RHZMQ_CALL_THREAD_POLICY", "fast")
    assert call_thread_policy() == "batch"
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def test_a_policy_an_operator_chose_is_kept() -> None:
    # A worker started under another policy (chrt --idle, a real-time one) keeps it on its call
    # threads: only the default policy is moved to SCHED_BATCH.
    def policy_seen() -> int:
        async def main() -> object:
            threads = CallThreads(asyncio.get_running_loop(), 2)
            got = await _run_all(threads, [lambda: os.sched_getscheduler(0)])
            threads.shutdown()
            return got[0]

        return asyncio.run(main())  # type: ignore[return-value]

    result: list[int] = []

    def under_idle() -> None:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        result.append(policy_seen())  # threads started from here inherit SCHED_IDLE

    t = threading.Thread(target=under_idle)
    t.start()
    t.join()
    assert result == [os.SCHED_IDLE]
