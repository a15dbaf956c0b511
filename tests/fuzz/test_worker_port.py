"""A real worker process fed random and truncated messages by a stand-in broker socket (this
test binds the ROUTER the worker connects to): it survives, and a valid call still works."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
from collections.abc import Iterator

import msgpack
import pytest
import remote_objects as ro
import zmq
from helpers import wait_pid_gone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rhzmq.wire.client import call_meta
from rhzmq.wire.code import object_spec
from rhzmq.wire.protocol import Cmd, pack_header, pack_meta, unpack_header
from rhzmq.wire.pump import BATCH_HEADER, split_batch
from rhzmq.wire.serialization import dumps, dumps_call, loads

CALL_IDS = itertools.count(10_000)


class FakeBroker:
    def __init__(self) -> None:
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, 10_000)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.wid = b""

    def messages(self) -> Iterator[list[bytes]]:
        frames = self.sock.recv_multipart()
        self.wid = frames[0]
        if frames[1] == BATCH_HEADER:
            yield from split_batch(frames[2])
        else:
            yield frames[1:]

    def until(self, cmd: int, call_id: int | None = None) -> list[bytes]:
        while True:
            for msg in self.messages():
                got, cid, _, _ = unpack_header(msg[0])
                if got == cmd and (call_id is None or cid == call_id):
                    return msg

    def send(self, frames: list[bytes]) -> None:
        self.sock.send_multipart([self.wid, *frames])


@pytest.fixture(scope="module")
def worker() -> Iterator[FakeBroker]:
    broker = FakeBroker()
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "--broker", broker.endpoint], stderr=subprocess.DEVNULL
    )
    broker.until(Cmd.READY)  # handshake: the worker registered with us
    broker.send(
        [pack_header(Cmd.PUT, 1, 0, b"add"), b"client", pack_meta({}), *dumps(object_spec(ro.add))]
    )
    final = broker.until(Cmd.FINAL, 1)
    assert final[0][12] == 0, final
    yield broker
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    assert wait_pid_gone(proc.pid)
    broker.sock.close()


def _header(cmd: int, call_id: int, target: bytes, cut: int) -> bytes:
    if cmd in (Cmd.DELETE, Cmd.PUT, Cmd.RENAME) and target == b"add":
        target = b"nope"  # a broker may rightly delete, replace or rename objects: keep the probe
    return pack_header(cmd, call_id, 0, target)[:cut]


frames = st.one_of(
    st.binary(max_size=48),
    st.builds(
        _header,
        st.integers(0, 20),
        st.integers(0, 2**64 - 1),
        st.sampled_from([b"add", b"", b"nope"]),
        st.integers(0, 30),
    ),
    st.just(BATCH_HEADER),
    st.binary(max_size=16).map(lambda b: msgpack.packb([[b]])),
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(frames, min_size=1, max_size=5), min_size=1, max_size=6))
def test_worker_survives_random_messages(worker: FakeBroker, messages: list[list[bytes]]) -> None:
    for msg in messages:
        worker.send(msg)
    call_id = next(CALL_IDS)  # unique per example: a stale FINAL can never match
    worker.send(
        [
            pack_header(Cmd.CALL, call_id, 0, b"add"),
            b"client",
            call_meta("", False),
            *dumps_call([2, 3], {}),
        ]
    )
    final = worker.until(Cmd.FINAL, call_id)
    assert final[0][12] == 0 and loads(final[2:]) == 5
