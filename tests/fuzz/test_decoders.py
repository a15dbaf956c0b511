"""Property-based fuzzing of every decoder that sees bytes from the network."""

from __future__ import annotations

import json

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway._codec import BadRequest, parse_body
from rhzmq import SerializationError
from rhzmq.wire.protocol import HEADER_SIZE, MAGIC, check_header, unpack_header
from rhzmq.wire.pump import split_batch
from rhzmq.wire.serialization import loads
from rhzmq.wire.version import PROTOCOL_VERSION


@given(st.binary(max_size=64))
def test_check_header_never_raises(frame: bytes) -> None:
    problem = check_header(frame)
    if problem is None:  # accepted: then it must unpack to something consistent
        _, _, _, target = unpack_header(frame)
        assert frame[:3] == MAGIC + bytes([PROTOCOL_VERSION]) and len(frame) == HEADER_SIZE + len(
            target.encode()
        )


@given(st.binary(max_size=256))
def test_split_batch_accepts_only_lists_of_frames(blob: bytes) -> None:
    try:
        msgs = split_batch(blob)
    except (ValueError, msgpack.UnpackException, msgpack.ExtraData, TypeError, RecursionError):
        return
    assert all(isinstance(m, list) and m for m in msgs)


@given(st.lists(st.binary(max_size=128), min_size=1, max_size=4))
def test_loads_raises_only_serialization_error(frames: list[bytes]) -> None:
    try:
        loads(frames)
    except SerializationError:
        pass


@settings(max_examples=300)
@given(st.binary(max_size=256), st.sampled_from(["application/json", "application/msgpack", ""]))
def test_gateway_body_parser_raises_only_bad_request(body: bytes, content_type: str) -> None:
    try:
        args, kwargs = parse_body(body, content_type)
    except BadRequest:
        return
    assert isinstance(args, list) and isinstance(kwargs, dict)


def test_gateway_refuses_pickles_hidden_in_msgpack() -> None:
    body = msgpack.packb({"args": [{"x": msgpack.ExtType(1, b"\x80\x05N.")}]})
    with pytest.raises(BadRequest, match="extension types"):
        parse_body(body, "application/msgpack")


@pytest.mark.parametrize("content_type", ["application/json", "application/msgpack"])
def test_gateway_body_depth_limit_holds_at_its_edge(content_type: str) -> None:
    """Bodies up to MAX_DEPTH bytes skip the depth walk (a level of nesting takes a byte at
    least); the shallowest too-deep bodies are longer, so they are still refused."""
    from gateway._codec import MAX_DEPTH

    def body(depth: int) -> bytes:  # {"args": [ ... nested lists ... ]}: depth counts the dict
        inner: object = []
        for _ in range(depth - 2):
            inner = [inner]
        data = {"args": inner}
        return json.dumps(data).encode() if "json" in content_type else msgpack.packb(data)

    assert parse_body(body(MAX_DEPTH), content_type)[0] is not None
    too_deep = body(MAX_DEPTH + 1)
    assert len(too_deep) > MAX_DEPTH
    with pytest.raises(BadRequest, match="nested deeper"):
        parse_body(too_deep, content_type)


def test_msgpack_nesting_one_byte_a_level_is_still_refused_past_the_limit() -> None:
    # The tightest case for the short-body skip: a one-byte array header per level, and the
    # scalar inside counts as a level too. 64 levels in 64 bytes pass; 65 in 65 are refused.
    from gateway._codec import MAX_DEPTH

    with pytest.raises(BadRequest, match="nested deeper"):
        parse_body(b"\x91" * MAX_DEPTH + b"\x01", "application/msgpack")
    with pytest.raises(BadRequest, match="must be an object"):  # deep enough, not too deep
        parse_body(b"\x91" * (MAX_DEPTH - 1) + b"\x01", "application/msgpack")
