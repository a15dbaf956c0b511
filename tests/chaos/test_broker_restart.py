"""Broker restart under a call: the caller gets a clear connection error (no hang, no silent
retry that could run the call twice); the worker re-registers with its objects; calls work again
within 5 s of the new broker starting."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import remote_objects as ro
from helpers import wait_pid_gone

import rhzmq as rh
from rhzmq.wire.client import Client, call_meta
from rhzmq.wire.code import object_spec
from rhzmq.wire.protocol import Cmd, pack_meta
from rhzmq.wire.serialization import dumps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(endpoint: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "--address", endpoint],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith(b"READY")  # bound: the handshake
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    assert wait_pid_gone(proc.pid)


@pytest.fixture
def endpoint() -> Iterator[str]:
    yield f"tcp://127.0.0.1:{free_port()}"


def test_broker_restart(endpoint: str) -> None:
    broker = start_broker(endpoint)
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker", "--broker", endpoint], stderr=subprocess.DEVNULL
    )
    brokers = [broker]
    try:

        async def scenario() -> float:
            client = Client(endpoint)
            while not (await client.control(Cmd.STATUS))["workers"]:  # noqa: ASYNC110 - remote state
                await asyncio.sleep(0.05)
            await client.control(Cmd.PUT, "add", [pack_meta({}), *dumps(object_spec(ro.add))])
            await client.control(Cmd.PUT, "sleeps", [pack_meta({}), *dumps(object_spec(ro.sleeps))])
            assert await client.call(b"add", call_meta("", False), (1, 2)) == 3
            pending = asyncio.ensure_future(client.call(b"sleeps", call_meta(""), (30,)))
            await asyncio.sleep(0.3)
            broker.send_signal(signal.SIGKILL)
            t = time.monotonic()
            with pytest.raises(rh.ClusterNotRunning, match="lost the connection"):
                await pending
            assert time.monotonic() - t < 5
            brokers.append(start_broker(endpoint))
            restarted = time.monotonic()
            while True:  # the worker registers again, with the objects it still holds
                try:
                    assert await client.call(b"add", call_meta("", False), (2, 2), timeout=1) == 4
                    break
                except (rh.ObjectNotFound, rh.CallTimeout, rh.ClusterNotRunning):
                    assert time.monotonic() - restarted < 5, "objects not back within 5 s"
                    await asyncio.sleep(0.1)
            client.close()
            return time.monotonic() - restarted

        back_after = asyncio.run(scenario())
        assert back_after < 5
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(10)
        for b in brokers:
            stop(b)
