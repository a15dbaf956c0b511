"""Turning HTTP bodies into call arguments and results into HTTP bodies — without ever unpickling.

Requests: JSON or msgpack ``{"args": [...], "kwargs": {...}}``. msgpack extension types are
refused: a pickle smuggled in an extension would be unpickled by the worker, and HTTP callers are
never trusted with that. Arguments are re-encoded with rhzmq's serializer, which for plain data
is plain msgpack.

Results: the worker's frames are decoded with an extension hook that maps tuples to lists and
buffers to bytes, and refuses pickled values (:class:`NotPlainData`): the gateway answers 406 for
those, saying that only plain data crosses HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgpack

from rhzmq.wire.serialization import EXT_BUFFER, EXT_PICKLE, EXT_TUPLE

JSON = "application/json"
MSGPACK = "application/msgpack"
NDJSON = "application/x-ndjson"
_MSGPACK_TYPES = (MSGPACK, "application/x-msgpack", "application/vnd.msgpack")


class BadRequest(ValueError):
    """The request body or query cannot be turned into arguments (HTTP 400)."""


class NotPlainData(ValueError):
    """A result holds a Python object that only a Python client could rebuild (HTTP 406)."""


def is_msgpack(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in _MSGPACK_TYPES


def is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == JSON or (kind.startswith("application/") and kind.endswith("+json"))


#: Deepest nesting a request body may have: deeper JSON made the parser recurse until Python's
#: limit (a 500 before), and no call's arguments need it.
MAX_DEPTH = 64


def _check_depth(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadRequest(f"the body is nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def parse_body(body: bytes, content_type: str) -> tuple[list[Any], dict[str, Any]]:
    """``(args, kwargs)`` from a JSON or msgpack body; an empty body means no arguments."""
    if not body.strip():
        return [], {}
    if is_msgpack(content_type):
        try:
            data = msgpack.unpackb(body, ext_hook=_refuse_ext, strict_map_key=True)
        except BadRequest:
            raise
        except Exception as exc:
            raise BadRequest(f"the body is not valid msgpack: {exc}") from None
    else:
        try:
            data = json.loads(body)
        except RecursionError:
            raise BadRequest(f"the body is nested deeper than {MAX_DEPTH} levels") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if len(body) > MAX_DEPTH:  # each level of nesting takes a byte at least: short bodies pass
        _check_depth(data)
    if not isinstance(data, dict):
        raise BadRequest(
            f'the body must be an object like {{"args": [...], "kwargs": {{...}}}}, got {type(data).__name__}'
        )
    if "data" in data:
        # Runhouse's body: {"data": {"args": [...], "kwargs": {...}}, "serialization": "json"}
        extra = set(data) - {"data", "serialization", "stream_logs", "run_name"}
        if extra or data.get("serialization") not in (None, "json"):
            raise BadRequest(
                "a Runhouse-style body takes 'data' (and 'serialization': 'json'); got "
                f"{sorted(extra) or repr(data.get('serialization'))}"
            )
        data = data["data"] if data["data"] is not None else {}
        if isinstance(data, str) and data and data.lstrip()[:1] == "{":
            # Runhouse's "serialization": "json" sends the arguments as JSON text.
            try:
                data = json.loads(data)
            except (ValueError, RecursionError) as exc:
                raise BadRequest(f"'data' is not valid JSON text: {exc}") from None
            _check_depth(data)
        if not isinstance(data, dict):
            raise BadRequest(
                f"'data' must be an object with 'args' and 'kwargs', got {type(data).__name__}"
            )
    unknown = set(data) - {"args", "kwargs"}
    if unknown:
        raise BadRequest(
            f"unknown body keys {sorted(unknown)}: only 'args' and 'kwargs' are accepted"
        )
    args = data.get("args", [])
    kwargs = data.get("kwargs", {})
    if not isinstance(args, list):
        raise BadRequest(f"'args' must be a list, got {type(args).__name__}")
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise BadRequest("'kwargs' must be an object with string keys")
    return args, kwargs


def _refuse_ext(code: int, data: bytes) -> Any:
    raise BadRequest(
        f"msgpack extension types are not accepted over HTTP (got type {code}); send plain data"
    )


def _result_ext(code: int, data: bytes) -> Any:
    if code == EXT_TUPLE:
        return msgpack.unpackb(data, ext_hook=_result_ext, strict_map_key=False)
    if code == EXT_PICKLE:
        raise NotPlainData("the result is a Python object that only a Python client can rebuild")
    if code == EXT_BUFFER:
        return _BufferRef(msgpack.unpackb(data))
    raise NotPlainData(f"unknown extension type {code}")


class _BufferRef:
    __slots__ = ("ref",)

    def __init__(self, ref: list[Any]) -> None:
        self.ref = ref


def decode_plain(frames: Sequence[bytes]) -> Any:
    """Decode a serialized value into plain data (see module docstring)."""
    value = msgpack.unpackb(frames[0], ext_hook=_result_ext, strict_map_key=False)
    return _resolve_buffers(value, frames)


def _resolve_buffers(value: Any, frames: Sequence[bytes]) -> Any:
    if isinstance(value, _BufferRef):
        _kind, index = value.ref
        return bytes(frames[index]) if isinstance(index, int) else bytes(index)
    if isinstance(value, list):
        return [_resolve_buffers(v, frames) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_buffers(v, frames) for k, v in value.items()}
    return value


def to_json(value: Any) -> bytes:
    """JSON bytes; NotPlainData for what JSON cannot carry (bytes, NaN, non-string keys)."""
    try:
        return _ENCODER.encode(value).encode()
    except (TypeError, ValueError) as exc:
        raise NotPlainData(str(exc)) from None


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        raise TypeError("the result holds bytes, which JSON cannot carry")
    raise TypeError(f"the result holds a {type(value).__name__}, which JSON cannot carry")


# One encoder for every result: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_json_default
)
