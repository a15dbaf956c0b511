"""Values on the wire: msgpack for plain data, pickles as an extension, big buffers as frames."""

from __future__ import annotations

import collections
import threading

import pytest

from rhzmq import SerializationError
from rhzmq.wire.serialization import OOB_THRESHOLD, _Encoder, dumps, dumps_call, loads


@pytest.mark.parametrize(
    "value",
    [
        None,
        1,
        -(2**63),
        2**70,
        1.5,
        "text",
        b"bytes",
        [1, [2]],
        (1, (2, 3)),
        {"a": (1,)},
        {1: "int key"},
        {1, 2},
        collections.OrderedDict(a=1),
        complex(1, 2),
        bytearray(b"xy"),
    ],
)
def test_round_trip_keeps_types(value: object) -> None:
    back = loads(dumps(value))
    assert back == value and type(back) is type(value)


def test_plain_data_is_one_msgpack_frame() -> None:
    frames = dumps({"a": [1, 2, "x"]})
    assert len(frames) == 1


def test_large_buffers_travel_as_their_own_frames() -> None:
    blob = b"x" * OOB_THRESHOLD
    frames = dumps_call([blob, 1], {"k": bytearray(blob)})
    assert len(frames) == 3 and frames[1] is blob  # zero-copy: the very same object
    args, kwargs = loads(frames)
    assert args == [blob, 1] and kwargs == {"k": bytearray(blob)} and type(kwargs["k"]) is bytearray
    mv = loads(dumps(memoryview(blob)))
    assert isinstance(mv, memoryview) and bytes(mv) == blob


def test_numpy_arrays_go_out_of_band() -> None:
    np = pytest.importorskip("numpy")
    arr = np.arange(100_000, dtype=np.int64)
    frames = dumps({"arr": arr})
    assert len(frames) == 2 and memoryview(frames[1]).nbytes == arr.nbytes
    back = loads(frames)["arr"]
    assert (back == arr).all() and back.flags.writeable


def test_unserializable_argument_is_named() -> None:
    with pytest.raises(SerializationError, match=r"argument 'lock' \(a _thread\.lock\)"):
        dumps_call([1], {"lock": threading.Lock()})
    with pytest.raises(SerializationError, match=r"argument 1 \(a _thread\.lock\)"):
        dumps_call([1, threading.Lock()], {})


def test_garbage_payload_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError):
        loads([b"\xc1"])
    with pytest.raises(SerializationError, match="unknown msgpack extension"):
        import msgpack

        loads([msgpack.packb(msgpack.ExtType(42, b""))])


def test_loads_leaves_no_reference_cycle() -> None:
    """Issue 20: ``loads`` once decoded with a closure that referred to itself, a reference cycle
    that kept each payload's frames alive until the cyclic GC ran: back-to-back 4 MiB calls
    piled up ~3 MiB each in the client and the worker. Nothing may be left for the GC."""
    import gc

    frames = dumps(((1, (2, 3)), b"x" * (1 << 20), bytearray(b"y" * 100_000)))
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            assert loads(frames)[0] == (1, (2, 3))
        assert gc.collect() == 0
    finally:
        gc.enable()


@pytest.mark.parametrize(
    "value", [0, -1, 2**63, 2**64 - 1, 1.5, float("inf"), "", "é", "x" * 300, True, False, None]
)
def test_scalars_take_a_short_cut_with_the_same_bytes(value: object) -> None:
    # dumps/dumps_call skip the encoder object for plain scalars: the bytes must be the ones
    # the full encoder writes (a peer of another version reads them), and come back as sent.
    enc = _Encoder()
    assert dumps(value) == [enc.pack(value)]
    assert loads(dumps(value)) == value and type(loads(dumps(value))) is type(value)
    args = (value, 1, "a", None)
    assert dumps_call(args, {}) == [_Encoder().pack([list(args), {}])]
    assert loads(dumps_call(args, {})) == [list(args), {}]


def test_what_msgpack_refuses_still_takes_the_full_path() -> None:
    huge = 2**70  # past msgpack's 64 bits: pickled by the full encoder
    assert loads(dumps(huge)) == huge
    assert loads(dumps_call((huge,), {})) == [[huge], {}]
    with pytest.raises(SerializationError, match="surrogates not allowed"):
        dumps("\ud800")
    with pytest.raises(SerializationError, match="argument 0"):
        dumps_call(("\ud800",), {})
