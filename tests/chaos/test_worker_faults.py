"""Worker faults: a hung worker (SIGSTOP), os._exit in a method, MemoryError. The affected calls
fail with the right typed error within seconds; the worker is back for the next call."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import remote_objects as ro
from helpers import worker_pid

import rhzmq as rh


def wait_rebuilt(fn: rh.Function, *args: object) -> object:
    deadline = time.monotonic() + 15
    while True:
        try:
            return fn(*args)
        except (rh.ObjectNotFound, rh.WorkerDiedError):
            assert time.monotonic() < deadline, "the worker did not come back"
            time.sleep(0.1)


def test_hung_worker_is_declared_dead_and_replaced(cluster: rh.Cluster) -> None:
    e = rh.env(name="hangs")
    sleeps = rh.function(ro.sleeps).to(cluster, env=e)
    pid = worker_pid(cluster, "hangs")

    async def call_then_freeze() -> float:
        task = asyncio.ensure_future(sleeps.acall(30))
        await asyncio.sleep(0.3)
        os.kill(pid, signal.SIGSTOP)  # stuck: no heartbeats, no answers, process still there
        t = time.monotonic()
        with pytest.raises(rh.WorkerDiedError, match="no heartbeat"):
            await task
        return time.monotonic() - t

    assert asyncio.run(call_then_freeze()) < 6.0
    assert wait_rebuilt(sleeps, 0.01) == "slept"
    assert worker_pid(cluster, "hangs") != pid
    cluster.delete("hangs")


def test_os_exit_in_a_method(cluster: rh.Cluster) -> None:
    e = rh.env(name="exits")
    exit_now = rh.function(ro.exit_now).to(cluster, env=e)
    echo = rh.function(ro.echo).to(cluster, env=e, name="exits_echo")
    t = time.monotonic()
    with pytest.raises(rh.WorkerDiedError, match="exited with code 3"):
        exit_now(3)
    assert time.monotonic() - t < 3.0
    assert wait_rebuilt(echo, "back") == "back"
    cluster.delete("exits")


def test_memory_error_is_an_ordinary_remote_exception(cluster: rh.Cluster) -> None:
    oom = rh.function(ro.out_of_memory).to(cluster)
    with pytest.raises(MemoryError, match="pretend"):
        oom()
    assert rh.function(ro.add).to(cluster)(1, 2) == 3  # the worker is still up
