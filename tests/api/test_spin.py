"""Spin-waiting (rhzmq/wire/spin.py): a waiting client may keep its thread running for a moment
instead of sleeping. What must hold: it gives up after its budget (a long call costs no more
CPU than a sleeping wait, plus one budget), it stops when waits run longer than the budget and
comes back when they are short again, one waiter spins at a time, it is off with one CPU, when
``RHZMQ_SPIN_US=0``, and in the cluster's own processes. How much it saves is measured in
perf/ (docs/performance.md), not here."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import remote_objects as ro
import zmq

import rhzmq as rh
from rhzmq.wire.blocking import BlockingClient
from rhzmq.wire.client import NO_ARGS, Client, call_meta
from rhzmq.wire.protocol import Cmd, Partial, Status, pack_header, read_call_id
from rhzmq.wire.serialization import dumps, loads
from rhzmq.wire.spin import (
    CAP,
    DEFAULT_SPIN_US,
    MAX_SPIN_US,
    SPIN,
    WEIGHT,
    Spin,
    cpus,
    spin_budget,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def budget_5ms() -> Iterator[None]:
    """The process's spin budget at 5 ms and its history cleared: long enough that a call to a
    no-op on a busy test machine is short of it, short enough that a 50 ms call is far over."""
    saved = SPIN.budget, SPIN.mean_wait
    SPIN.budget, SPIN.mean_wait, SPIN._taken_until = 0.005, 0.0, 0.0
    try:
        yield
    finally:
        SPIN.budget, SPIN.mean_wait, SPIN._taken_until = *saved, 0.0


def test_one_waiter_spins_at_a_time_and_a_forgotten_spin_expires() -> None:
    spin = Spin(0.02)
    until = spin.begin()
    assert until > time.monotonic()
    assert spin.begin() == 0.0  # taken: a second waiter sleeps
    spin.end(until)
    assert spin.begin() > 0.0  # free again
    # A spinner that never says end (its loop stopped) holds the slot only for its budget.
    time.sleep(0.03)
    late = spin.begin()
    assert late > 0.0
    # ...and when it does say end, late, it leaves the slot of the waiter that took it alone.
    spin.end(until)
    assert spin.begin() == 0.0
    spin.end(late)
    assert spin.begin() > 0.0


def test_waits_longer_than_the_budget_stop_spinning_and_short_ones_bring_it_back() -> None:
    spin = Spin(0.001)
    spin.waited(30.0)  # one stall of 30 s counts as CAP budgets, not as 30,000 of them
    assert spin.mean_wait == pytest.approx(CAP * 0.001 * WEIGHT)
    spin.end(spin.begin())
    for _ in range(16):  # calls that take twice the budget
        spin.waited(0.002)
    assert spin.mean_wait >= spin.budget and spin.begin() == 0.0
    for _ in range(32):  # answers within a tenth of it again
        spin.waited(0.0001)
    until = spin.begin()
    assert until > 0.0
    spin.end(until)
    spin.off()
    assert spin.begin() == 0.0


def test_the_budget_comes_from_rhzmq_spin_us(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RHZMQ_SPIN_US", "250")
    assert spin_budget() == pytest.approx(250e-6)
    for off in ("0", "-5", "nan"):
        monkeypatch.setenv("RHZMQ_SPIN_US", off)
        assert spin_budget() == 0.0
    with caplog.at_level(logging.WARNING, logger="rhzmq.spin"):
        monkeypatch.setenv("RHZMQ_SPIN_US", "fast")
        assert spin_budget() == pytest.approx(DEFAULT_SPIN_US / 1e6)
        monkeypatch.setenv("RHZMQ_SPIN_US", "1e9")
        assert spin_budget() == pytest.approx(MAX_SPIN_US / 1e6)
    assert "'fast' is not a number of microseconds" in caplog.text
    assert "is over 100000" in caplog.text


def _python(code: str, *prefix: str) -> str:
    """The last line ``code`` prints, run by a fresh interpreter (``prefix``: e.g. taskset),
    with RHZMQ_SPIN_US unset."""
    out = subprocess.run(
        [*prefix, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "RHZMQ_SPIN_US": ""},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


_BUDGET = "from rhzmq.wire.spin import SPIN; print(SPIN.budget)"


def test_no_spinning_on_one_cpu() -> None:
    # The spinner would hold the only CPU its answer needs.
    expected = DEFAULT_SPIN_US / 1e6 if cpus() > 1 else 0.0
    assert float(_python(_BUDGET)) == pytest.approx(expected)
    assert float(_python(_BUDGET, "taskset", "-c", "0")) == 0.0


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("worker.__main__", ["--help"]),
        ("gateway.__main__", ["--help"]),
        ("rhzmqd.daemon", ["--help"]),
    ],
)
def test_the_clusters_own_processes_never_spin(module: str, argv: list[str]) -> None:
    # Their CPU is for calls: each entry point turns spinning off before anything else.
    code = (
        f"import {module} as m\n"
        "from rhzmq.wire.spin import SPIN\n"
        "assert SPIN.budget > 0\n"
        "try:\n"
        f"    m.main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(SPIN.budget)\n"
    )
    assert _python(code) == "0.0"


def test_a_long_blocking_call_waits_asleep_after_its_budget(cluster: rh.Cluster) -> None:
    sleeps = rh.function(ro.sleeps).to(cluster, name="spin_sleeps")
    sleeps(0.0)
    client = cluster.connected_client()
    assert client is not None and client.spin  # a local daemon: waits may spin
    SPIN.mean_wait = 0.0  # as after short calls: this wait may spin
    cpu = time.thread_time()
    assert sleeps(0.5) == "slept"
    used = time.thread_time() - cpu
    # Spinning the whole call would take ~0.5 s of CPU; the budget is 0.5 ms.
    assert used < 0.1, f"the waiting thread used {used:.3f} s of CPU in a 0.5 s call"


@pytest.mark.anyio
async def test_a_long_async_call_waits_asleep_after_its_budget(cluster: rh.Cluster) -> None:
    sleeps = await rh.function(ro.asleeps).ato(cluster, name="spin_asleeps")
    await sleeps.acall(0.0)
    SPIN.mean_wait = 0.0
    ticks = 0

    async def other_work() -> None:  # the loop keeps serving other tasks while a call waits
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(other_work())
    cpu = time.process_time()
    assert await sleeps.acall(0.5) == "slept"
    used = time.process_time() - cpu
    task.cancel()
    assert used < 0.15, f"the client used {used:.3f} s of CPU in a 0.5 s call"
    assert ticks >= 20, f"a task on the same loop ran {ticks} times in 0.5 s"


def test_spinning_stops_for_long_calls_and_resumes_for_short_ones(
    cluster: rh.Cluster, budget_5ms: None
) -> None:
    sleeps = rh.function(ro.sleeps).to(cluster, name="spin_sleeps")
    echo = rh.function(ro.echo).to(cluster, name="spin_echo")
    until = SPIN.begin()
    assert until > 0.0
    SPIN.end(until)
    for _ in range(8):  # 50 ms calls: ten budgets each
        sleeps(0.05)
    assert SPIN.mean_wait >= SPIN.budget and SPIN.begin() == 0.0
    for i in range(200):  # no-op calls answer well within 5 ms
        assert echo(i) == i
    until = SPIN.begin()
    assert SPIN.mean_wait < SPIN.budget and until > 0.0
    SPIN.end(until)


def test_a_peer_streaming_messages_cannot_keep_a_blocking_caller_spinning(tmp_path: Path) -> None:
    # A broker (or a worker behind it) that keeps a call open and sends something every 300 µs
    # (items, stray answers) kept restarting the caller's spin for the whole call: a full core
    # for as long as the peer liked. A call spins once, before its first message.
    endpoint = f"ipc://{tmp_path}/broker.sock"
    router: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
    router.bind(endpoint)

    async def connect() -> Client:
        return Client(endpoint, spin=True)

    parent = asyncio.run(connect())
    blocking = BlockingClient(parent)

    def hostile_broker() -> None:
        got: list[list[bytes]] = []
        while len(got) < 2:  # the hello (PING), then the CALL
            got.append(router.recv_multipart())
        peer, header = got[1][0], got[1][1]
        call_id = read_call_id(header)
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            router.send_multipart([peer, pack_header(Cmd.PARTIAL, call_id, Partial.ITEM), b"x"])
            time.sleep(0.0003)
        router.send_multipart([peer, pack_header(Cmd.FINAL, call_id, Status.OK), *dumps(7)])

    saved = SPIN.budget, SPIN.mean_wait
    SPIN.budget, SPIN.mean_wait, SPIN._taken_until = 0.0005, 0.0, 0.0
    peer = threading.Thread(target=hostile_broker)
    peer.start()
    try:
        cpu = time.thread_time()
        status, frames = blocking.call(b"f", call_meta(""), NO_ARGS, "f", 10.0)
        used = time.thread_time() - cpu
    finally:
        peer.join(10)
        SPIN.budget, SPIN.mean_wait, SPIN._taken_until = *saved, 0.0
        blocking.close()
        parent.close()
        router.close(0)
    assert status == Status.OK and loads(frames) == 7
    assert used < 0.1, f"the caller used {used:.3f} s of CPU waiting 0.5 s"


@pytest.mark.anyio
async def test_spinning_clients_lose_no_answer_in_bursts_of_few_calls(cluster: rh.Cluster) -> None:
    # A spinning loop must leave the socket's edge-triggered descriptor to the pump: a look at
    # EVENTS from the spin took the edge of an arriving answer once, and calls 1 to 4 in flight
    # then waited for the next heartbeat, or for ever.
    echo = await rh.function(ro.echo).ato(cluster, name="spin_burst_echo")
    SPIN.mean_wait = 0.0

    async def chain(k: int) -> None:
        for i in range(500):
            assert await echo.acall((k, i)) == (k, i)

    for width in (1, 2, 3, 4):
        await asyncio.wait_for(asyncio.gather(*(chain(k) for k in range(width))), 60)
