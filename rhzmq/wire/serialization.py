"""Values on the wire: msgpack for plain data, cloudpickle for the rest, big buffers as own frames.

A serialized value is a list of frames. Frame 0 is msgpack; frames 1.. are raw buffers that the
msgpack body refers to by index. Extension types (numbers never change):

====  ==========  ====================================================================
ext   name        data
====  ==========  ====================================================================
1     PICKLE      msgpack ``[pickle bytes, [frame index, ...]]``: cloudpickle protocol 5,
                  its large out-of-band buffers (NumPy data...) as separate frames
2     TUPLE       msgpack of the items (msgpack has no tuple; ``strict_types`` sends
                  tuples here so they come back as tuples)
3     BUFFER      ``[kind, frame index]``: a large bytes/bytearray/memoryview sent as its
                  own frame, zero-copy on the way out; or ``[kind, data]`` for a small
                  bytearray/memoryview, so it does not come back as bytes
====  ==========  ====================================================================

Large buffers (>= ``OOB_THRESHOLD``) travel as frames, and bytearray/memoryview keep their type,
only at the top two levels of a value (the
value itself, the items of a call's argument list and keyword dict): that is where bulk data sits
in practice, and it keeps the scan of small calls to a handful of ``isinstance`` checks. NumPy
arrays anywhere go out-of-band through pickle protocol 5.

Deserializing calls ``pickle.loads``; only peers that passed the cluster's authentication (loopback,
SSH tunnel, CURVE) ever reach a worker or a client, and the broker never deserializes at all.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

import cloudpickle
import msgpack

from .exceptions import SerializationError
from .types import Frame

OOB_THRESHOLD = 64 * 1024

EXT_PICKLE = 1
EXT_TUPLE = 2
EXT_BUFFER = 3

_BYTES, _BYTEARRAY, _MEMORYVIEW = 0, 1, 2
_BUFFER_KINDS: dict[type, int] = {bytes: _BYTES, bytearray: _BYTEARRAY, memoryview: _MEMORYVIEW}


class _Oob:
    """Marks a buffer that travels as its own frame (``index``) or inline (``index`` is the data)."""

    __slots__ = ("index", "kind")

    def __init__(self, kind: int, index: int | bytes) -> None:
        self.kind = kind
        self.index = index


class _Encoder:
    """One encoding pass: collects the out-of-band frames as msgpack walks the value."""

    __slots__ = ("frames",)

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def lift(self, value: Any) -> Any:
        """Replace a large top-level buffer by a frame reference."""
        kind = _BUFFER_KINDS.get(type(value))
        if kind is None:
            return value
        if (value.nbytes if kind == _MEMORYVIEW else len(value)) >= OOB_THRESHOLD:
            self.frames.append(value)
            return _Oob(kind, len(self.frames))
        return value if kind == _BYTES else _Oob(kind, bytes(value))

    def default(self, obj: Any) -> Any:
        if type(obj) is tuple:
            return msgpack.ExtType(EXT_TUPLE, self.pack(list(obj)))
        if type(obj) is _Oob:
            return msgpack.ExtType(EXT_BUFFER, msgpack.packb([obj.kind, obj.index]))
        return msgpack.ExtType(EXT_PICKLE, self.pickle(obj))

    def pickle(self, obj: Any) -> bytes:
        first = len(self.frames) + 1
        frames = self.frames

        def keep_out_of_band(buf: pickle.PickleBuffer) -> bool:
            if buf.raw().nbytes >= OOB_THRESHOLD:
                frames.append(buf.raw())
                return False
            return True

        data = cloudpickle.dumps(obj, protocol=5, buffer_callback=keep_out_of_band)
        return bytes(msgpack.packb([data, list(range(first, len(frames) + 1))]))

    def pack(self, obj: Any) -> bytes:
        return bytes(msgpack.packb(obj, default=self.default, strict_types=True))


#: Types msgpack packs exactly as the full encoder does (exact types: ``strict_types`` sends
#: subclasses to ``default``); a value of one of them skips the encoder object, the common case
#: of a result or an argument list. Anything msgpack refuses (an int past 64 bits, a lone
#: surrogate) takes the full path, which says what is wrong.
_SCALARS = frozenset({int, float, str, bool, type(None)})
_packb = msgpack.packb


def dumps(value: Any) -> list[Frame]:
    """Serialize one value (a result, a generator item) into frames."""
    if type(value) in _SCALARS:
        try:
            return [_packb(value)]
        except Exception:
            pass
    enc = _Encoder()
    value = enc.lift(value)
    if type(value) is list:
        value = [enc.lift(v) for v in value]
    try:
        body = enc.pack(value)
    except Exception as exc:
        raise SerializationError(_describe_failure("the value", value, exc)) from exc
    return [body, *enc.frames]


def dumps_call(args: Sequence[Any], kwargs: dict[str, Any]) -> list[Frame]:
    """Serialize a call's arguments as ``[args, kwargs]``; errors name the bad argument."""
    if not kwargs:
        for arg in args:
            if type(arg) not in _SCALARS:
                break
        else:
            try:
                return [_packb([list(args), {}])]
            except Exception:
                pass
    enc = _Encoder()
    body_args = [enc.lift(a) for a in args]
    body_kwargs = {k: enc.lift(v) for k, v in kwargs.items()} if kwargs else {}
    try:
        body = enc.pack([body_args, body_kwargs])
    except Exception as exc:
        raise _argument_error(args, kwargs, exc) from exc
    return [body, *enc.frames]


class _ExtHook:
    """msgpack's ``ext_hook`` for one payload. An object, not a closure: a nested function that
    calls itself for nested tuples refers to itself through its own closure cell, a reference
    cycle holding the payload's frames until the cyclic GC ran (measured: back-to-back 4 MiB
    calls piled up ~3 MiB each in the client and the worker, 392 MiB after 128 calls)."""

    __slots__ = ("frames",)

    def __init__(self, frames: Sequence[Frame]) -> None:
        self.frames = frames

    def __call__(self, code: int, data: bytes) -> Any:
        frames = self.frames
        if code == EXT_TUPLE:
            return tuple(msgpack.unpackb(data, ext_hook=self, strict_map_key=False))
        if code == EXT_BUFFER:
            kind, index = msgpack.unpackb(data)
            buf = frames[index] if type(index) is int else index
            if kind == _MEMORYVIEW:
                return memoryview(buf)
            return bytearray(buf) if kind == _BYTEARRAY else bytes(buf)
        if code == EXT_PICKLE:
            data, indexes = msgpack.unpackb(data)
            # bytearray copies make the arrays writable, as the caller's original was.
            buffers = [bytearray(frames[i]) for i in indexes]
            return pickle.loads(data, buffers=buffers)
        raise SerializationError(f"unknown msgpack extension type {code} in a payload")


_ONE_FRAME = _ExtHook(())


def loads(frames: Sequence[Frame]) -> Any:
    """Inverse of :func:`dumps` (and of :func:`dumps_call`, giving ``[args, kwargs]``)."""
    # One frame (no out-of-band buffers: the usual small call): the shared hook, no object.
    ext_hook = _ExtHook(frames) if len(frames) > 1 else _ONE_FRAME
    try:
        return msgpack.unpackb(frames[0], ext_hook=ext_hook, strict_map_key=False)
    except SerializationError:
        raise
    except (ImportError, AttributeError) as exc:
        raise SerializationError(
            f"cannot rebuild a value here: {exc}. The sending side used a module or class that "
            "this process cannot import; install it here too, or define it in the calling script "
            "so it travels by value."
        ) from exc
    except Exception as exc:
        raise SerializationError(
            f"cannot deserialize a payload: {type(exc).__name__}: {exc}"
        ) from exc


def pickle_value(obj: Any) -> bytes:
    """cloudpickle ``obj`` by value or reference, with a SerializationError that names its type."""
    try:
        return bytes(cloudpickle.dumps(obj, protocol=5))
    except Exception as exc:
        raise SerializationError(_describe_failure("the value", obj, exc)) from exc


def _describe_failure(what: str, value: Any, exc: BaseException) -> str:
    return (
        f"{what} ({_type_name(value)}) cannot be serialized: {type(exc).__name__}: {exc}. "
        "Send plain data, or make the object picklable (define __getstate__/__reduce__)."
    )


def _argument_error(args: Sequence[Any], kwargs: dict[str, Any], exc: BaseException) -> Exception:
    for i, arg in enumerate(args):
        try:
            dumps(arg)
        except SerializationError as inner:
            return SerializationError(
                _describe_failure(f"argument {i}", arg, inner.__cause__ or exc)
            )
    for key, arg in kwargs.items():
        try:
            dumps(arg)
        except SerializationError as inner:
            return SerializationError(
                _describe_failure(f"argument {key!r}", arg, inner.__cause__ or exc)
            )
    return SerializationError(f"the call's arguments cannot be serialized: {exc}")


def _type_name(value: Any) -> str:
    cls = type(value)
    return (
        f"a {cls.__module__}.{cls.__qualname__}"
        if cls.__module__ != "builtins"
        else f"a {cls.__qualname__}"
    )
