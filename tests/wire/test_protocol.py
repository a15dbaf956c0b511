"""The wire protocol's header codec and the broker's handling of hostile or broken messages."""

from __future__ import annotations

import struct
import time

import msgpack
import pytest
import remote_objects as ro
import zmq

import rhzmq as rh
from rhzmq.wire.client import decode_final
from rhzmq.wire.protocol import (
    HEADER_SIZE,
    MAGIC,
    Cmd,
    Status,
    check_header,
    final_error,
    pack_header,
    pack_meta,
    unpack_header,
)
from rhzmq.wire.pump import BATCH_HEADER, split_batch
from rhzmq.wire.version import PROTOCOL_VERSION


def test_header_round_trip() -> None:
    h = pack_header(Cmd.CALL, 2**40 + 5, 3, "näme".encode())
    assert (
        h[:2] == MAGIC and h[2] == PROTOCOL_VERSION and len(h) == HEADER_SIZE + len("näme".encode())
    )
    assert check_header(h) is None
    assert unpack_header(h) == (Cmd.CALL, 2**40 + 5, 3, "näme")


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (b"", "shorter than the 15-byte minimum"),
        (b"XX" + bytes(13), "not rhzmq"),
        (MAGIC + bytes([PROTOCOL_VERSION + 1]) + bytes(12), "speaks rhzmq protocol v2"),
        (MAGIC + bytes([PROTOCOL_VERSION, 99]) + bytes(11), "unknown command 99"),
        (
            MAGIC + bytes([PROTOCOL_VERSION, 1]) + bytes(9) + struct.pack("!H", 5) + b"ab",
            "target is 5 bytes",
        ),
    ],
)
def test_bad_headers_are_named(frame: bytes, problem: str) -> None:
    assert problem in (check_header(frame) or "")


def test_version_mismatch_message_names_both_versions() -> None:
    frame = MAGIC + bytes([7]) + bytes(12)
    message = check_header(frame) or ""
    assert "v7" in message and f"v{PROTOCOL_VERSION}" in message and rh.__version__ in message


def test_error_frames_map_to_exception_types() -> None:
    for status, cls in [
        (Status.NOT_FOUND, rh.ObjectNotFound),
        (Status.WORKER_DIED, rh.WorkerDiedError),
        (Status.TIMEOUT, rh.CallTimeout),
        (Status.CANCELLED, rh.CallCancelled),
        (Status.PROTOCOL, rh.ProtocolError),
        (Status.VERSION, rh.VersionMismatch),
    ]:
        frames = final_error(1, status, "why")
        with pytest.raises(cls, match="why"):
            decode_final(status, frames[1:])


def test_split_batch_rejects_inconsistent_bodies() -> None:
    assert split_batch(msgpack.packb([[b"a", b"b"], [b"c"]])) == [[b"a", b"b"], [b"c"]]
    for bad in (msgpack.packb([b"a"]), msgpack.packb([[]]), msgpack.packb({"a": 1})):
        with pytest.raises(ValueError):
            split_batch(bad)


def _raw_socket(endpoint: str) -> zmq.Socket[bytes]:
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 5000)
    s.connect(endpoint)
    return s


def test_malformed_messages_neither_kill_broker_nor_disturb_callers(cluster: rh.Cluster) -> None:
    add = rh.function(ro.add).to(cluster)
    raw = _raw_socket(cluster.broker_endpoint)
    junk: list[list[bytes]] = [
        [b"hello"],
        [b""],
        [b"RZ"],
        [pack_header(Cmd.CALL, 1, 0, b"add")[:-1]],  # target cut short
        [MAGIC + bytes([PROTOCOL_VERSION, 200]) + bytes(11)],  # unknown command
        [pack_header(Cmd.PUT, 3, 0, b"x"), b"\xc1not msgpack"],
        [pack_header(Cmd.FINAL, 4, 0)],  # a client pretending to be a worker, without client id
        [pack_header(Cmd.READY, 0, 0, b"evil"), b"", b"garbage"],
        [BATCH_HEADER, b"\x93garbage"],
        [BATCH_HEADER, msgpack.packb([[b"x"]])],
        [b"\x00" * 100_000],
    ]
    for msg in junk:
        raw.send_multipart(msg)
        assert add(1, 2) == 3  # other callers undisturbed, after every bad message
    # Messages that carry a call id get a specific error back.
    replies = []
    raw.setsockopt(zmq.RCVTIMEO, 500)
    try:
        while True:
            replies.append(raw.recv_multipart())
    except zmq.Again:
        pass
    # Errors the broker sent in the same turn come as one BATCH (rhzmq.wire.pump).
    messages = [m for r in replies for m in (split_batch(r[1]) if r[0] == BATCH_HEADER else [r])]
    errors = [
        msgpack.unpackb(m[1])["message"] for m in messages if len(m) > 1 and m[0][:2] == MAGIC
    ]
    assert errors, "no error replies for the malformed messages"
    assert any("rejected a message" in e for e in errors)
    raw.close()
    assert cluster.status()["workers"], "the broker lost its worker"


def test_wrong_protocol_version_gets_version_error(cluster: rh.Cluster) -> None:
    raw = _raw_socket(cluster.broker_endpoint)
    header = bytearray(pack_header(Cmd.CALL, 77, 0, b"add"))
    header[2] = PROTOCOL_VERSION + 1
    raw.send_multipart([bytes(header), pack_meta({"m": ""})])
    reply = raw.recv_multipart()
    raw.close()
    cmd, call_id, status, _ = unpack_header(reply[0])
    assert (cmd, call_id, status) == (Cmd.FINAL, 77, Status.VERSION)
    with pytest.raises(rh.VersionMismatch, match=f"v{PROTOCOL_VERSION + 1}"):
        decode_final(status, reply[1:])


def test_forged_cancel_for_foreign_call_is_ignored(cluster: rh.Cluster) -> None:
    sleeps = rh.function(ro.sleeps).to(cluster)
    import asyncio

    async def run() -> str:
        task = asyncio.ensure_future(sleeps.acall(0.5))
        await asyncio.sleep(0.1)
        raw = _raw_socket(cluster.broker_endpoint)
        for call_id in range(1, 50):  # guess ids: they are per-connection, so nothing matches
            raw.send_multipart([pack_header(Cmd.CANCEL, call_id)])
        raw.close()
        return await task

    t = time.monotonic()
    assert asyncio.run(run()) == "slept"
    assert time.monotonic() - t >= 0.45
