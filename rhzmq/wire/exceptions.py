"""rhzmq's exceptions: one tree, so ``except rh.RhzmqError`` catches everything we raise.

::

    RhzmqError
    ├── ClusterError                  a cluster cannot be used as asked
    │   ├── ClusterNotRunning         no daemon answers at the cluster's address
    │   ├── AuthenticationError       the broker refused this client's CURVE handshake (says why)
    │   └── EnvError                  an environment could not be built (carries pip's output)
    ├── ProtocolError                 a message broke the wire protocol
    │   └── VersionMismatch           two peers speak different protocol versions
    ├── SerializationError            a value cannot cross the wire (names the argument and type)
    ├── ObjectNotFound                no object of that name (lists close matches); also a KeyError
    ├── LimitExceeded                 a configured limit (message size, calls in flight, objects)
    ├── PermissionDenied              the broker refused a command this peer's key has no role for
    ├── RegistryError                 the resource registry (Den) refused a request (HTTP status, type)
    │   ├── RegistryUnavailable       no registry answers at its URL, or its database does not
    │   ├── InvalidToken              401: no token, or an unknown or revoked one
    │   ├── AccessDenied              403: the token's user may not do this; also a PermissionDenied
    │   ├── ResourceNotFound          404: no such resource (or none you may read); also a KeyError
    │   ├── Conflict                  409: the name holds another type, or is taken
    │   └── StaleWrite                412/428: saved by someone since you loaded it; has the ETag
    ├── CallError                     a call did not produce a result
    │   ├── RemoteError               the remote code raised; carries the remote traceback
    │   ├── WorkerDiedError           the worker holding the object died mid-call
    │   ├── CallTimeout               ``timeout=`` elapsed; also a TimeoutError
    │   └── CallCancelled             the call was cancelled
    ├── RunError                      a run (rhzmq._runs) cannot start, is unknown or was lost
    ├── SecretError                   a secret cannot be read or delivered (says where it looked)
    ├── DataError                     a data resource (folder, file, blob, table) cannot be used
    │   ├── DataNotFound              no such path, object or bucket; also a FileNotFoundError
    │   ├── NoCredentials             an object store needs credentials none of the places held
    │   └── DataPermissionError       the store refused the credentials; also a PermissionError
    └── SyncCallInEventLoop           a blocking stub was called from inside a running event loop

Every ``FINAL`` error frame on the wire names one of these kinds (see :mod:`rhzmq.wire.protocol`), so the
client raises the specific type, not a generic one. Remote exceptions whose type can be imported
locally are re-raised as that type instead of :class:`RemoteError`, with the remote traceback as
their ``__cause__`` (a :class:`RemoteTraceback`).
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches

__all__ = [
    "AccessDenied",
    "AuthenticationError",
    "CallCancelled",
    "CallError",
    "CallTimeout",
    "ClusterError",
    "ClusterNotRunning",
    "Conflict",
    "DataError",
    "DataNotFound",
    "DataPermissionError",
    "EnvError",
    "InvalidToken",
    "LimitExceeded",
    "NoCredentials",
    "ObjectNotFound",
    "PermissionDenied",
    "ProtocolError",
    "RegistryError",
    "RegistryUnavailable",
    "RemoteError",
    "RemoteTraceback",
    "ResourceNotFound",
    "RhzmqError",
    "RunError",
    "SecretError",
    "SerializationError",
    "StaleWrite",
    "SyncCallInEventLoop",
    "VersionMismatch",
    "WorkerDiedError",
]


class RhzmqError(Exception):
    """Root of every error rhzmq raises."""


class ClusterError(RhzmqError):
    """A cluster cannot be used as asked (bad configuration, failed start)."""


class ClusterNotRunning(ClusterError):
    """No daemon answers at the cluster's address."""


class AuthenticationError(ClusterError):
    """The broker refused this client's CURVE handshake; the message names the cause and the fix."""


class EnvError(ClusterError):
    """An environment could not be built or started; the message carries pip's own output."""


class ProtocolError(RhzmqError):
    """A message broke the wire protocol (bad header, unknown command, missing frames)."""


class VersionMismatch(ProtocolError):
    """Two peers speak different protocol versions; the message names both."""


class SerializationError(RhzmqError):
    """A value cannot be serialized or deserialized; the message names the argument and its type."""


class LimitExceeded(RhzmqError):
    """A configured limit was exceeded; the message names the limit and how to raise it."""


class PermissionDenied(RhzmqError, PermissionError):
    """The broker refused a command: the sender's key has a role that may not send it (a node's
    key calling objects, the gateway's reaching ``__node__.*``); the message names the role."""


class RegistryError(RhzmqError):
    """The resource registry (Den) refused a request, or could not be reached.

    ``status`` is the HTTP status (0 when no answer came), ``type`` the registry's name for the
    error (``"Invalid"``, ``"PayloadTooLarge"``...), and the message the registry's own words.
    """

    def __init__(self, message: str, status: int = 0, type: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.type = type

    def __str__(self) -> str:  # KeyError subclasses would repr() the message
        return str(self.args[0]) if self.args else ""


class RegistryUnavailable(RegistryError):
    """No registry answers at the URL (refused, timed out), or its database does not (503)."""


class InvalidToken(RegistryError):
    """The registry does not know the token, or it was revoked (401): make a new one."""


class AccessDenied(RegistryError, PermissionDenied):
    """The token's user may not do this (403): a read share saving, a member deleting, a
    non-admin making users. The message names the access they have and the access it needs."""


class ResourceNotFound(RegistryError, KeyError):
    """No such resource, version, user or group, or none this user may read (404): the registry
    does not tell those apart, so a private resource's name is not confirmed to strangers."""


class Conflict(RegistryError):
    """The request contradicts what is stored (409): a name holding a resource of another type,
    a user or group name already taken."""


class StaleWrite(RegistryError):
    """The resource was saved since you loaded it (412), or you saved over it without saying
    which version you changed (428). ``etag`` is its latest ETag: load it again, redo the
    change, and save with that."""

    def __init__(self, message: str, status: int = 412, type: str = "", etag: str = "") -> None:
        super().__init__(message, status, type)
        self.etag = etag


class ObjectNotFound(RhzmqError, KeyError):
    """No object of that name on the cluster."""

    def __init__(self, message: str, name: str = "", matches: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.name = name
        self.matches = list(matches)

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""

    @classmethod
    def for_name(cls, name: str, known: Iterable[str]) -> ObjectNotFound:
        known = list(known)
        matches = get_close_matches(name, known, n=3, cutoff=0.5)
        if matches:
            hint = "Did you mean " + " or ".join(repr(m) for m in matches) + "?"
        elif known:
            hint = f"Known names: {', '.join(sorted(known)[:10])}."
        else:
            hint = "The cluster holds no objects yet; send one with rh.function(f).to(cluster)."
        return cls(f"No object named {name!r} on the cluster. {hint}", name, matches)


class CallError(RhzmqError):
    """A call did not produce a result."""


class RemoteError(CallError):
    """The remote code raised an exception whose type cannot be re-created locally.

    ``remote_type`` is the remote exception's qualified type name and ``remote_traceback`` the
    formatted remote traceback.
    """

    def __init__(self, message: str, remote_type: str = "", remote_traceback: str = "") -> None:
        super().__init__(message)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        text = f"{self.remote_type}: {self.args[0]}" if self.remote_type else str(self.args[0])
        if self.remote_traceback:
            text += "\n\nRemote traceback:\n" + self.remote_traceback.rstrip()
        return text


class RemoteTraceback(Exception):
    """Attached as ``__cause__`` of a re-raised remote exception, so tracebacks show both sides."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return "\n\nRemote traceback (most recent call last):\n" + self.tb.rstrip()


class WorkerDiedError(CallError):
    """The worker process holding the object died (killed, crashed, exited) during the call."""


class CallTimeout(CallError, TimeoutError):
    """The call's ``timeout=`` elapsed; the remote call was cancelled."""


class CallCancelled(CallError):
    """The call was cancelled (by its caller, or because the object was deleted)."""


class RunError(RhzmqError):
    """A run cannot be started (its name is taken by one still running), is not known where it
    was looked for, or ended without an answer (cancelled, or lost with its keeper)."""


class SecretError(RhzmqError, ValueError):
    """A secret cannot be read (says where it looked and what to set) or delivered."""


class DataError(RhzmqError):
    """A data resource (``rh.folder``, ``rh.file``, ``rh.blob``, ``rh.table``) cannot be read,
    written or copied as asked; the message names the system, the path and what to do."""

    def __str__(self) -> str:  # the subclasses that are also OSErrors would show errno fields
        return str(self.args[0]) if self.args else ""


class DataNotFound(DataError, FileNotFoundError):
    """No such path on disk, object or prefix in a bucket, or no such bucket."""


class NoCredentials(DataError):
    """An object store was used without credentials: the message lists every place looked in
    (arguments, the provider's environment variables, its credentials file)."""


class DataPermissionError(DataError, PermissionError):
    """The disk or the object store refused the operation for these credentials (a read-only
    key writing, a file owned by someone else, a bucket of another account)."""


class SyncCallInEventLoop(RhzmqError, RuntimeError):
    """A blocking call was made from inside a running event loop, which it would freeze."""
