"""``rh.blob``: one Python object, stored as a file with the project's serialization.

::

    b = rh.blob(data={"weights": arr}, path="my-bucket/models/w1", system="s3").write()
    b.fetch()            # the object back (a copy)
    b.to(gpu).fetch()    # copied to a cluster's disk, then read from there

The bytes are the frames :func:`rhzmq.wire.serialization.dumps` makes of the object (msgpack for
plain data, cloudpickle for the rest, large buffers out of band), packed as one msgpack array:
what a call would send, so whatever a cluster can receive a blob can hold. Without a path a blob
lives in ``$RHZMQ_HOME/blobs/<name>`` on this machine.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgpack

from .._store import Resource
from ..wire import config as _config
from ..wire.serialization import dumps, loads
from .folder import File, _load, _rebuild


def encode(value: Any) -> bytes:
    return bytes(msgpack.packb([bytes(f) for f in dumps(value)]))


def decode(data: bytes) -> Any:
    return loads(msgpack.unpackb(data))


class Blob(Resource):
    """An object stored at ``path`` on ``system``; see the module docstring."""

    resource_type = "blob"

    def __init__(
        self,
        data: Any = None,
        path: str | None = None,
        system: Any = "file",
        name: str | None = None,
    ) -> None:
        self.name = name or f"blob-{uuid.uuid4().hex[:12]}"
        if path is None:
            if system not in ("file", None):
                raise ValueError("a blob on an object store or a cluster needs a path")
            path = str(_config.home() / "blobs" / self.name)
        self.file = File(path, system)
        self.data = data

    @property
    def path(self) -> str:
        return self.file.path

    @property
    def system(self) -> Any:
        return self.file.system

    def config(self) -> dict[str, Any]:
        return {**self.file.config(), "type": self.resource_type, "name": self.name}

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Blob:
        return cls(None, config["path"], config.get("system", "file"), config.get("name"))

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return _rebuild, (self.config(),)

    def __repr__(self) -> str:
        return f"<Blob {self.name!r} at {self.path!r}>"

    def write(self, data: Any = None) -> Blob:
        """Store ``data`` (or the blob's own) at its path; returns self."""
        if data is not None:
            self.data = data
        self.file.write(encode(self.data))
        return self

    def fetch(self) -> Any:
        """The stored object (read each time: it may have been rewritten elsewhere)."""
        self.data = decode(self.file.read())
        return self.data

    def exists(self) -> bool:
        return self.file.exists()

    def rm(self) -> None:
        self.file.rm()

    def to(self, system: Any, path: str | None = None) -> Blob:
        """A copy on ``system`` (at ``path``, by default the same place there)."""
        copied = self.file.to(system, path)
        blob = Blob(None, copied.path, copied.system, self.name)
        blob.data = self.data
        return blob


def blob(
    data: Any = None, path: str | None = None, system: Any = "file", name: str | None = None
) -> Blob:
    """A blob (see :class:`Blob`); ``rh.blob(name="x")`` alone loads the one saved as ``x``."""
    if data is None and path is None and name is not None:
        return _load(name, "blob")  # type: ignore[no-any-return]
    return Blob(data, path, system, name)
