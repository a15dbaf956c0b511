"""The rhzmq wire protocol (protocol version 1), frame by frame.

rhzmq borrows its shape from ZeroMQ's Majordomo (RFC 7/18) and Paranoid Pirate (RFC 6) patterns:
one ROUTER socket in the broker; clients and workers are DEALERs; every message starts with one
small binary **header frame** that carries everything the broker routes on, and the payload frames
after it are forwarded untouched. The broker never decodes a payload and never unpickles anything.

Header frame (15 bytes + target), network byte order::

    offset  size  field
    0       2     magic    b"RZ"                    never changes
    2       1     version  PROTOCOL_VERSION (1)      a mismatch is a VersionMismatch error
    3       1     command  see Cmd                   never renumbered
    4       8     call id  u64, chosen by the client; 0 when the message is about no call
    12      1     flags    PARTIAL: Partial kind; FINAL: Status; otherwise 0
    13      2     tlen     length of the target in bytes
    15      tlen  target   UTF-8 object name (or worker name for READY)

Messages, as each socket sees them (``id`` frames are added/removed by the ROUTER)::

    client -> broker   [header(CALL),   meta, *payload]      meta: CallMeta (msgpack): "m" method,
                                                              "s": False silences output, "c"
                                                              initial credit of a stream, "o":
                                                              take output inside the FINAL
                       [header(CANCEL)]
                       [header(CREDIT)]                       flags: items the stream may send on
                                                              (a CALL's meta "c": initial credit)
                       [header(PUT),    meta, *spec]          meta: {"worker": name,
                                                              "max_concurrency"?}
                       [header(DELETE)]  [header(KEYS)]  [header(STATUS)]
                       [header(PING), hello?]                 hello: {"pid", "machine"}: which
                                                              process pings (the broker keeps
                                                              the calls of a silent client whose
                                                              process lives on its machine)
                       [header(SHUTDOWN)]
                       [header(SPAWN), meta]                  meta: {"name", "reqs", "env_vars",
                                                              "working_dir", "setup_cmds",
                                                              "replicas"}; PARTIALs stream the
                                                              install, FINAL lists worker names
    broker -> worker   [header(CALL|PUT|DELETE), client id, meta, *payload]
                       [header(CANCEL|CREDIT), client id]
                       [header(HEARTBEAT)]                    target = broker instance id
                       [header(SHUTDOWN)]                     to node agents (group "__node__")
                                                              of other hosts: the cluster stops
    worker -> broker   [header(PARTIAL|FINAL), client id, *payload]
                       [header(READY), b"", meta]             meta: ReadyMeta
                       [header(HEARTBEAT), usage?]            usage: {"cpu", "rss"}
                       [header(DISCONNECT)]
    broker -> client   [header(PARTIAL), *payload]            any number, in order
                       [header(FINAL), *payload]              exactly one per call; flags with
                                                              FINAL_OUTPUT: [header, stdout,
                                                              *payload] (CallMeta "o" only)

Any peer may wrap several messages for the same destination into one ``BATCH`` message:
``[header(BATCH), body]`` where body is a msgpack array of messages, each an array of its frames
(the routing id stays outside, as the ROUTER adds or strips it); see :mod:`rhzmq.wire.pump`,
which batches and un-batches transparently. Only messages with no frame of 64 KiB or more are
batched; the rest travel alone, zero-copy.

A ``FINAL`` with ``Status.OK`` carries the serialized result (see :mod:`rhzmq.wire.serialization`);
any other status carries one msgpack frame, an :class:`ErrorBody`, whose ``exc`` may hold the
pickled exception (only for ``Status.REMOTE``, produced by the worker; read by Python clients
only, never by the broker or the gateway).

Liveness (Paranoid Pirate): broker and workers send HEARTBEAT every ``HEARTBEAT_INTERVAL``; any
message counts as a heartbeat. A peer silent for ``HEARTBEAT_LIVENESS`` intervals is dead: the
broker fails every call the dead worker held with ``Status.WORKER_DIED`` at once, and a worker that
loses its broker re-sends READY with its objects so a restarted broker rebuilds its directory.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from typing import Any, TypedDict

import msgpack

from .exceptions import (
    CallCancelled,
    CallTimeout,
    EnvError,
    LimitExceeded,
    ObjectNotFound,
    PermissionDenied,
    ProtocolError,
    RemoteError,
    RhzmqError,
    SerializationError,
    VersionMismatch,
    WorkerDiedError,
)
from .types import Frame
from .version import PROTOCOL_VERSION, __version__

MAGIC = b"RZ"
HEADER = struct.Struct("!2sBBQBH")
HEADER_SIZE = HEADER.size  # 15
MAX_TARGET = 1024

#: Reserved names. Methods named ``__rh_*__`` are answered by the worker itself, never looked up
#: on the user's object; the group ``__node__`` holds the node agents, one object
#: ``__node__.<index>`` per host of a cluster (see rhzmqd), and no environment may take it.
RH_PREFIX = "__rh_"
RH_DESCRIBE = "__rh_describe__"  # what a stub needs: kind, methods, signatures, docs
RH_VALUE = "__rh_value__"  # the object itself (a copy: cluster.get(name))
RH_GETATTR = "__rh_getattr__"  # read an attribute
RH_SETATTR = "__rh_setattr__"  # set an attribute
NODE_GROUP = "__node__"


def name_problem(name: object, what: str = "name") -> str | None:
    """What is wrong with an object or environment name, or None. Names travel in headers, become
    worker names on a command line and appear in logs and terminals: no control or escape
    characters (a NUL cut ``default\x00evil`` to ``default``), no ``/``, not reserved."""
    if not isinstance(name, str) or not name:
        return f"{what} must be a non-empty string, got {name!r}"
    if len(name.encode()) > MAX_TARGET:
        return f"{what} {name[:40]!r}... is longer than {MAX_TARGET} bytes"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        return f"{what} {name!r} holds control characters; use printable characters only"
    if "/" in name:
        return f"{what} {name!r} holds '/'; use another separator"
    if name.startswith("__"):
        return f"{what} {name!r} starts with '__', which rhzmq reserves for its own objects"
    if name in (".", ".."):
        return f"{what} {name!r} is a directory's name, not one rhzmq can use (names become paths)"
    return None


#: Objects rhzmq places on a cluster for its own commands (``rhzmq.run`` for ``cluster.run``,
#: ``rhzmq.runs`` the run keeper, ``rhzmq.data`` the data agent, ``rhzmq.deliver`` for
#: secrets), besides the node agents (``__node__.<i>``): the cluster's machinery. They run
#: shell commands, write files and forward pickles as the cluster's owner, so only the owner's
#: own keys reach them: never the HTTP gateway (rhzmq.wire.curve roles; the gateway refuses them
#: too).
BUILTIN_PREFIX = "rhzmq."


def is_internal(name: str | bytes) -> bool:
    """Whether ``name`` is the cluster's own machinery (node agents, reserved and built-in
    objects), which the HTTP gateway never calls."""
    if isinstance(name, bytes):
        return name[:2] == b"__" or name.startswith(BUILTIN_PREFIX.encode())
    return name.startswith(("__", BUILTIN_PREFIX))


def node_agent(index: int) -> str:
    """The object name of host ``index``'s node agent."""
    return f"{NODE_GROUP}.{index}"


class CallMeta(TypedDict, total=False):
    """The meta frame of a CALL (built once per stub method, see rhzmq.wire.client.call_meta)."""

    m: str  # the method; "" calls the object itself, RH_* names are answered by the worker
    s: bool  # False: do not stream the call's stdout/stderr/log records (default True)
    c: int  # a streamed call's initial credit: items the worker may send before more is granted
    o: bool  # the caller reads FINAL_OUTPUT: the call's last stdout may come inside its FINAL


class ReadyMeta(TypedDict, total=False):
    """The meta frame of a worker's READY."""

    name: str  # the worker's name (an env's workers: "env", "env.1", ...)
    group: str  # the env it belongs to
    pid: int
    node: str  # its host's name in the cluster
    capacity: int  # threads for sync calls
    version: str  # rhzmq version
    protocol: int  # PROTOCOL_VERSION; a mismatch is refused
    objects: list[str]  # objects it holds already (it re-registers after a broker restart)


class ErrorBody(TypedDict, total=False):
    """The one frame of an error FINAL."""

    type: str  # the exception's type: ours by name, a remote one as "module.Qualname"
    message: str
    traceback: str  # the remote traceback (REMOTE)
    exc: bytes  # the pickled remote exception (REMOTE; Python clients only)
    args_error: bool  # REMOTE: the arguments did not fit the signature (HTTP 422)
    name: str  # NOT_FOUND: the name asked for
    matches: list[str]  # NOT_FOUND: close names that exist


class DescribeInfo(TypedDict, total=False):
    """What ``RH_DESCRIBE`` answers (and a PUT's FINAL): all a stub or the gateway needs."""

    type: str  # "function" (a function or class) or "object" (an instance)
    call: str | None  # how calling it behaves: "sync", "async", "gen", "agen" (None: not callable)
    qualname: str
    module: str
    doc: str
    signature: str  # functions: str(inspect.signature)
    params: Any  # a function: [{"name", "kind", "required", "annotation"?}]; an object: per method
    methods: dict[str, str]  # objects: method name -> call kind
    signatures: dict[str, str]
    docs: dict[str, str]
    attributes: list[str]  # objects: public instance attributes


class Cmd(enum.IntEnum):
    """Command byte. Numbers never change; new commands get new numbers."""

    CALL = 1
    CANCEL = 2
    PARTIAL = 3
    FINAL = 4
    READY = 5
    HEARTBEAT = 6
    DISCONNECT = 7
    PUT = 8
    DELETE = 9
    KEYS = 10
    STATUS = 11
    PING = 12
    SHUTDOWN = 13
    BATCH = 14  # several messages in one; see rhzmq.wire.pump (split before any handler sees them)
    SPAWN = 15  # client -> broker: make sure an environment's workers run (meta: the env spec)
    CREDIT = 16  # client -> broker -> worker: the caller consumed items; flags = how many more
    PLACE = 17  # client -> broker: an environment's workers will run on node i (meta: group, node)
    RENAME = 18  # client -> broker -> workers: hold the target under another name (meta: {"to"})


class Partial(enum.IntEnum):
    """Kind of a PARTIAL message (the header's flags byte)."""

    STDOUT = 1
    STDERR = 2
    LOG = 3  # one msgpack frame: {"name", "levelno", "msg", "created"}
    ITEM = 4  # one generator item, serialized like a result
    PROGRESS = 5  # one msgpack frame, free-form


class Status(enum.IntEnum):
    """Outcome of a call (the FINAL header's flags byte)."""

    OK = 0
    NOT_FOUND = 1
    WORKER_DIED = 2
    TIMEOUT = 3
    CANCELLED = 4
    REMOTE = 5
    PROTOCOL = 6
    VERSION = 7
    SERIALIZATION = 8
    LIMIT = 9
    ENV = 10  # an environment could not be built or started
    DENIED = 11  # the sender's role may not send this command (rhzmq.wire.curve)


#: FINAL flags bit: the first payload frame is the call's last stdout (UTF-8), sent with the
#: result instead of as a PARTIAL just before it (which cost the broker and the client a message
#: each per printing call); the status is the flags without it. A worker sets it only for a caller
#: that announced it reads it (CallMeta "o"), so callers older than it never see it.
FINAL_OUTPUT = 0x80


#: The exception each error status raises (a FINAL names its kind, so clients raise the specific type).
STATUS_ERRORS: dict[int, type[RhzmqError]] = {
    Status.NOT_FOUND: ObjectNotFound,
    Status.WORKER_DIED: WorkerDiedError,
    Status.TIMEOUT: CallTimeout,
    Status.CANCELLED: CallCancelled,
    Status.REMOTE: RemoteError,
    Status.PROTOCOL: ProtocolError,
    Status.VERSION: VersionMismatch,
    Status.SERIALIZATION: SerializationError,
    Status.LIMIT: LimitExceeded,
    Status.ENV: EnvError,
    Status.DENIED: PermissionDenied,
}


# Where each field sits, for code that reads headers on the hot path: a named slice or index
# costs what the literal does (``header[CALL_ID]`` vs ``header[4:12]``), and the layout stays
# here. A *call key* is the caller's routing id followed by the 8 call id bytes: the broker and
# workers key their tables on it without converting anything.
PREFIX = MAGIC + bytes((PROTOCOL_VERSION,))  # what every header this side accepts starts with
MAGIC_BYTES = slice(0, 2)
PREFIX_BYTES = slice(0, 3)
VERSION_BYTE = 2
COMMAND = 3
CALL_ID = slice(4, 12)
FLAGS = 12
TARGET = slice(HEADER_SIZE, None)
KEY_PEER = slice(None, -8)  # of a call key: the caller's routing id


def read_call_id(header: bytes) -> int:
    """A header's call id as a number."""
    return int.from_bytes(header[CALL_ID], "big")


def key_call_id(key: bytes) -> int:
    """A call key's call id as a number."""
    return int.from_bytes(key[-8:], "big")


def pack_header(cmd: int, call_id: int = 0, flags: int = 0, target: bytes = b"") -> bytes:
    """Build a header frame. ``target`` is already UTF-8 encoded."""
    return HEADER.pack(MAGIC, PROTOCOL_VERSION, cmd, call_id, flags, len(target)) + target


def check_header(frame: bytes) -> str | None:
    """Return None if ``frame`` is a well-formed header, else what is wrong with it."""
    if len(frame) < HEADER_SIZE:
        return f"header frame is {len(frame)} bytes, shorter than the {HEADER_SIZE}-byte minimum"
    if frame[:2] != MAGIC:
        return f"header does not start with {MAGIC!r} (got {bytes(frame[:2])!r}): not rhzmq"
    if frame[2] != PROTOCOL_VERSION:
        return version_message(frame[2])
    tlen = int.from_bytes(frame[13:15], "big")
    if tlen > MAX_TARGET or HEADER_SIZE + tlen != len(frame):
        return f"header says the target is {tlen} bytes but the frame holds {len(frame) - 15}"
    if frame[3] not in _CMDS:
        return f"unknown command {frame[3]}"
    return None


_CMDS = frozenset(int(c) for c in Cmd)


def version_message(theirs: int) -> str:
    return (
        f"protocol version mismatch: the peer speaks rhzmq protocol v{theirs}, this side speaks "
        f"v{PROTOCOL_VERSION} (rhzmq {__version__}). Install the same rhzmq version on both "
        f"sides, or restart the cluster with `cluster.restart_server()`."
    )


def unpack_header(frame: bytes) -> tuple[int, int, int, str]:
    """Return ``(cmd, call_id, flags, target)`` of a checked header frame."""
    _, _, cmd, call_id, flags, tlen = HEADER.unpack_from(frame)
    return cmd, call_id, flags, bytes(frame[HEADER_SIZE : HEADER_SIZE + tlen]).decode()


def final_error(call_id: int, status: int, message: str, **extra: Any) -> list[Frame]:
    """A complete FINAL error message (without routing frames)."""
    body: ErrorBody = {"type": STATUS_ERRORS[status].__name__, "message": message, **extra}  # type: ignore[typeddict-item]
    return [pack_header(Cmd.FINAL, call_id, status), msgpack.packb(body)]


def error_from_frame(status: int, payload: bytes) -> RhzmqError:
    """Turn an error FINAL into the exception to raise (remote exceptions: see the client)."""
    try:
        body = msgpack.unpackb(payload)
        message = str(body.get("message", ""))
    except Exception:
        return ProtocolError(f"undecodable error payload for status {status}")
    cls = STATUS_ERRORS.get(status, RhzmqError)
    if cls is ObjectNotFound:
        return ObjectNotFound(message, str(body.get("name", "")), body.get("matches", ()))
    if cls is RemoteError:
        return RemoteError(message, str(body.get("type", "")), str(body.get("traceback", "")))
    return cls(message)


def pack_meta(meta: Mapping[str, Any]) -> bytes:
    return bytes(msgpack.packb(meta))


def unpack_meta(frame: bytes | memoryview) -> dict[str, Any]:
    meta = msgpack.unpackb(frame)
    if not isinstance(meta, dict):
        raise ProtocolError(f"meta frame must be a msgpack map, got {type(meta).__name__}")
    return meta
