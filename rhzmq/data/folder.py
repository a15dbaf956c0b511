"""``rh.folder`` and ``rh.file``: files on this disk, in an object store, or on a cluster.

::

    f = rh.folder("~/data/run1")                           # this machine's disk
    f.put({"a.txt": "hello", "sub/b.bin": b"\\x00\\x01"})    # str, bytes, or any object (pickled)
    f.ls(), f.get("a.txt"), f.open("sub/b.bin").read()
    s3 = f.to("s3", path="my-bucket/run1")                  # only changed files travel
    on_gpu = f.to(gpu)                                      # over SSH to the cluster's head
    on_gpu.to("s3", path="my-bucket/run1")                  # the cluster uploads, not the laptop

Where the work happens: this process for the disk and object stores; the cluster itself for
data on a cluster (:mod:`.systems`), except copies between this machine and an SSH cluster,
which go over the cluster's SSH connection (incrementally, as one tar stream up; file by file
over SFTP down). A folder passed to a function running on its cluster arrives as a folder on that
machine's disk (``system="file"``), its path unchanged.

Copies are incremental and resumable (:mod:`.sync`); each ``to()`` returns the destination
folder, whose ``last_copy`` says what travelled (files and bytes sent, files skipped).
"""

from __future__ import annotations

import io
import os
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .._portal import run_sync
from .._store import Resource, load
from ..wire.exceptions import DataError
from ..wire.serialization import pickle_value
from . import sync, systems
from .storage import Bucket, Disk, Entry, Storage, check_rel
from .stores import ObjectStore, split_path
from .sync import CopyReport


class _OnSystem(Resource):
    """What a folder and a file share: a path on a system, saved as ``{type, name, path,
    system}``, and pickled as that config (a cluster's function gets one whose paths are its
    own)."""

    name: str
    path: str
    system: Any

    def config(self) -> dict[str, Any]:
        return {
            "type": self.resource_type,
            "name": self.name,
            "path": self.path,
            "system": systems.system_config(self.system),
        }

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Any:
        # Each subclass takes (path, system, name): Folder and File alike.
        return cls(config["path"], config.get("system", "file"), config.get("name"))  # type: ignore[call-arg]

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return _rebuild, (self.config(),)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r} on {systems.system_name(self.system)}>"


class Folder(_OnSystem):
    """A folder on a system (see the module docstring); make one with ``rh.folder``."""

    resource_type = "folder"

    def __init__(self, path: str, system: Any = "file", name: str | None = None) -> None:
        if not isinstance(path, str) or not path:
            raise ValueError(f"a folder needs a path, got {path!r}")
        scheme = None
        if "://" in path:
            scheme, bucket, prefix = split_path(path)
            path = f"{bucket}/{prefix}".rstrip("/")
            if system in (None, "file"):
                system = scheme
        self.system = systems.as_system(system)
        if isinstance(self.system, ObjectStore):
            _, bucket, prefix = split_path(path)
            path = f"{bucket}/{prefix}".rstrip("/")
        elif self.system is None or systems.is_local_cluster(self.system):
            path = os.path.abspath(os.path.expanduser(path))  # this machine's disk
        elif not path.startswith(("/", "~")):
            path = f"~/{path}"  # on an SSH cluster, relative to the login's home
        self.path = path
        self.name = name or (posixpath.basename(path.rstrip("/")) or "folder")
        self.last_copy: CopyReport | None = None

    # -- saved configs, and what a cluster's function receives -----------------------------------

    # -- where the work happens --------------------------------------------------------------

    @property
    def _cluster(self) -> Any:
        return self.system if systems.is_cluster(self.system) else None

    def _storage(self) -> Storage:
        if isinstance(self.system, ObjectStore):
            _, bucket, prefix = split_path(self.path)
            return Bucket(self.system, bucket, prefix)
        if self._cluster is not None and not systems.is_local_cluster(self._cluster):
            raise DataError(f"{self!r} is on a cluster: its disk is reached through the cluster")
        return Disk(self.path)

    def _on_cluster(self, method: str, *args: Any, stores: tuple[Any, ...] = ()) -> Any:
        return systems.call(self._cluster, self.config(), method, *args, stores=stores)

    # -- the verbs ---------------------------------------------------------------------------

    def ls(self, full_paths: bool = False, recursive: bool = False) -> list[str]:
        """Names in the folder (sub-folders end with ``/``); ``recursive``: every file's
        relative path; ``full_paths``: prefixed with the folder's path."""
        if self._cluster is not None:
            return list(self._on_cluster("ls", full_paths, recursive))
        storage = self._storage()
        names = sorted(storage.entries()) if recursive else storage.ls()
        return [f"{self.path}/{n}" for n in names] if full_paths else names

    def exists(self, name: str | None = None) -> bool:
        """Whether the folder (or the file ``name`` in it) exists."""
        if self._cluster is not None:
            return bool(self._on_cluster("exists", name))
        return self._storage().exists(name)

    def mkdir(self) -> Folder:
        """Make the folder (on an object store: its bucket, if missing)."""
        if self._cluster is not None:
            self._on_cluster("mkdir")
        else:
            self._storage().mkdir()
        return self

    def put(self, contents: dict[str, Any]) -> Folder:
        """Write files: ``{name: bytes | str | object}`` (str as UTF-8, other objects pickled);
        names may hold ``/`` (sub-folders are made)."""
        encoded = {check_rel(k): _encode(v) for k, v in contents.items()}
        if self._cluster is not None:
            self._on_cluster("put", encoded)
            return self
        storage = self._storage()
        for rel, data in encoded.items():
            storage.write(rel, data)
        return self

    def get(self, name: str, mode: str = "rb", encoding: str = "utf-8") -> Any:
        """The content of file ``name``: bytes (``mode="rb"``) or text (``"r"``)."""
        if self._cluster is not None:
            data = self._on_cluster("get", name, "rb")
        else:
            data = self._storage().read(name)
        return data.decode(encoding) if "b" not in mode else data

    def open(self, name: str, mode: str = "rb", encoding: str | None = None) -> IO[Any]:
        """A file object for ``name``. On the disk it is the file itself; elsewhere reads get
        the content in memory and writes are uploaded when the file is closed."""
        if self._cluster is None and isinstance(self._storage(), Disk):
            return self._storage().open(name, mode)  # type: ignore[union-attr]
        if any(m in mode for m in "wax"):
            return _UploadOnClose(self, check_rel(name), "b" not in mode, encoding or "utf-8")
        data = self.get(name)
        if "b" in mode:
            return io.BytesIO(data)
        return io.StringIO(data.decode(encoding or "utf-8"))

    def rm(self, names: str | list[str] | None = None) -> None:
        """Remove files or sub-folders of the folder by name, or the whole folder."""
        if self._cluster is not None:
            self._on_cluster("rm", names)
            return
        storage = self._storage()
        if names is None:
            storage.rm()
            return
        for name in [names] if isinstance(names, str) else names:
            storage.rm(name)

    def mv(self, path: str) -> Folder:
        """Move the folder to ``path`` on the same system; returns self, at its new path."""
        if self._cluster is not None:
            self._on_cluster("mv", path)
            self.path = path
            return self
        dest = type(self)(path, self.system, self.name)
        storage = self._storage()
        if isinstance(storage, Disk):
            storage.mv(Disk(dest.path))
        else:
            sync.copy(storage, dest._storage())
            storage.rm()
        self.path = dest.path
        return self

    def listing(self) -> dict[str, tuple[int, int | None]]:
        """``{relative path: (size, mtime)}`` of every file (mtime None on object stores)."""
        if self._cluster is not None:
            return {k: (v[0], v[1]) for k, v in self._on_cluster("listing").items()}
        return {rel: (e.size, e.mtime) for rel, e in self._storage().entries().items()}

    def to(self, system: Any, path: str | None = None, *, progress: bool | None = None) -> Folder:
        """A copy of the folder on ``system`` (at ``path``; by default the same path on this
        machine's disk and the local cluster, ``~/<name>`` on an SSH cluster). Only changed
        files travel; run it again after an interruption to finish. The copy's ``last_copy``
        says what was sent."""
        target = systems.as_system(system)
        dest = type(self)(self._dest_path(target, path), target, self.name)
        dest.last_copy = self._copy(dest, None, progress)
        return dest

    def _dest_path(self, target: Any, path: str | None) -> str:
        if path is not None:
            return path
        if isinstance(target, ObjectStore):
            raise ValueError(
                f"copying {self!r} to {target.provider} needs a path: to({target.provider!r}, "
                "path='bucket/prefix')"
            )
        if systems.is_cluster(target) and not systems.is_local_cluster(target):
            return f"~/{self.name}"
        if isinstance(self.system, ObjectStore):
            return os.path.abspath(self.name)
        return self.path

    # -- copies ------------------------------------------------------------------------------

    def _copy(self, dest: Folder, only: set[str] | None, progress: bool | None) -> CopyReport:
        src, dst = self.system, dest.system
        label = f"{self.name} -> {systems.system_name(dst)}"
        if systems.is_cluster(src):
            if systems.is_cluster(dst) and not systems.same_cluster(src, dst):
                raise DataError(
                    f"copying {self!r} straight to another cluster is not supported yet: copy it "
                    "to an object store (folder.to('s3', path=...)), then from there"
                )
            if dst is None and not systems.is_local_cluster(src):
                return run_sync(self._ssh_down, dest, only, progress, label, hint="folder.to()")
            return self._copy_on(src, dest, only, progress)
        if systems.is_cluster(dst):
            if systems.is_local_cluster(dst) or isinstance(src, ObjectStore):
                return self._copy_on(dst, dest, only, progress)  # the cluster fetches
            return run_sync(self._ssh_up, dest, only, progress, label, hint="folder.to()")
        return sync.copy(
            self._storage(), dest._storage(), only=only, progress=progress, label=label
        )

    def _copy_on(
        self, cluster: Any, dest: Folder, only: set[str] | None, progress: bool | None
    ) -> CopyReport:
        """The copy made by ``cluster``: the bytes go between its disk and the other side."""
        stores = tuple(s for s in (self.system, dest.system) if isinstance(s, ObjectStore))
        report = systems.call(
            cluster,
            self.config(),
            "_copy_here",
            systems.there(dest.config(), cluster),
            sorted(only) if only is not None else None,
            progress,
            stores=stores,
        )
        return CopyReport(**{**report, "sent": tuple(report["sent"])})

    def _copy_here(
        self, dest_config: dict[str, Any], only: list[str] | None, progress: bool | None
    ) -> dict[str, Any]:
        """On the cluster (the agent calls it): the copy, between storages reachable here."""
        dest = Resource.from_config(dest_config)
        label = f"{self.name} -> {systems.system_name(dest.system)}"
        report = sync.copy(
            self._storage(),
            dest._storage(),
            only=set(only) if only is not None else None,
            progress=progress,
            label=label,
            every=1.0,
        )
        return report.as_dict()

    async def _ssh_up(
        self, dest: Folder, only: set[str] | None, progress: bool | None, label: str
    ) -> CopyReport:
        import time

        from .._progress import Progress
        from ..clusters.ssh import code_sync, transport

        start = time.monotonic()
        files = sync.local_listing(self.path)
        if only is not None:
            files = {k: v for k, v in files.items() if k in only}
        bar: list[Progress] = []

        def on_bytes(sent: int, total: int) -> None:
            show = progress if progress is not None else total >= sync.SHOW_ABOVE
            if not show:
                return
            if not bar:
                bar.append(Progress(label, 1, total_bytes=total))
            bar[0].add_bytes(sent - bar[0].bytes)

        cluster = dest.system

        async def run() -> int:
            conn = await cluster._conn(0)
            return await code_sync.sync_host(
                conn,
                Path(self.path),
                files,
                lambda _: None,
                dest=dest.path,
                delete=False,
                progress=on_bytes,
            )

        sent = await transport.on_portal(run())
        if bar:
            bar[0].advance()
            bar[0].close()
        return CopyReport(
            files_sent=sent,
            bytes_sent=bar[0].bytes if bar else 0,
            files_skipped=len(files) - sent,
            seconds=time.monotonic() - start,
        )

    async def _ssh_down(
        self, dest: Folder, only: set[str] | None, progress: bool | None, label: str
    ) -> CopyReport:
        import time

        from .._progress import Progress
        from ..clusters.ssh import transport

        start = time.monotonic()
        remote = await self._aon_cluster("listing")
        if only is not None:
            remote = {k: v for k, v in remote.items() if k in only}
        disk = Disk(dest.path)
        try:
            ours = disk.entries()
        except FileNotFoundError:
            ours = {}
        todo = [
            rel
            for rel, (size, mtime) in sorted(remote.items())
            if ours.get(rel) != Entry(size, mtime)
        ]
        total = sum(remote[rel][0] for rel in todo)
        show = progress if progress is not None else total >= sync.SHOW_ABOVE
        bar = Progress(label, len(todo), total_bytes=total) if show and todo else None
        cluster = self.system

        async def run() -> None:
            conn = await cluster._conn(0)
            root = await transport.absolute(conn, self.path)
            async with conn.start_sftp_client() as sftp:
                for rel in todo:
                    local = disk.local(rel)
                    local.parent.mkdir(parents=True, exist_ok=True)
                    part = local.with_name(f".{local.name[:80]}.{os.getpid()}.rhzmq-part")
                    await sftp.get(f"{root}/{rel}", str(part), preserve=True)
                    os.replace(part, local)
                    if bar is not None:
                        bar.add_bytes(remote[rel][0])
                        bar.advance()

        await transport.on_portal(run())
        if bar is not None:
            bar.close()
        return CopyReport(
            len(todo), total, len(remote) - len(todo), time.monotonic() - start, tuple(todo)
        )

    async def _aon_cluster(self, method: str, *args: Any) -> Any:
        return await systems.acall(self._cluster, self.config(), method, *args)


class File(_OnSystem):
    """One file on a system; ``rh.file(path, system)``."""

    resource_type = "file"

    def __init__(self, path: str, system: Any = "file", name: str | None = None) -> None:
        parent, base = posixpath.split(path.rstrip("/"))
        if not base:
            raise ValueError(f"a file path names a file, got {path!r}")
        self.folder = Folder(parent or ".", system)
        self.system = self.folder.system
        self.path = f"{self.folder.path}/{base}"
        self.basename = base
        self.name = name or base
        self.last_copy: CopyReport | None = None

    def exists(self) -> bool:
        return self.folder.exists(self.basename)

    def write(self, data: bytes | str | Any) -> File:
        self.folder.put({self.basename: data})
        return self

    def read(self, mode: str = "rb", encoding: str = "utf-8") -> Any:
        return self.folder.get(self.basename, mode, encoding)

    def fetch(self, mode: str = "rb") -> Any:
        return self.read(mode)

    def open(self, mode: str = "rb", encoding: str | None = None) -> IO[Any]:
        return self.folder.open(self.basename, mode, encoding)

    def rm(self) -> None:
        self.folder.rm(self.basename)

    def to(self, system: Any, path: str | None = None, *, progress: bool | None = None) -> File:
        """A copy of the file on ``system`` (``path``: the copy's full path)."""
        target = systems.as_system(system)
        if path is None:
            folder_path = self.folder._dest_path(target, None)
            if isinstance(target, ObjectStore):
                raise ValueError("copying a file to an object store needs path='bucket/key'")
            path = f"{folder_path}/{self.basename}"
        dest = type(self)(path, target, self.name)
        if dest.basename == self.basename:
            dest.last_copy = self.folder._copy(dest.folder, {self.basename}, progress)
        else:  # renamed on the way: through this process
            dest.write(self.read())
        return dest


class _UploadOnClose(io.BytesIO):
    """A writable file whose content is put into the folder when closed."""

    def __init__(self, folder: Folder, name: str, text: bool, encoding: str) -> None:
        super().__init__()
        self._folder, self._name, self._text, self._encoding = folder, name, text, encoding

    def write(self, data: Any) -> int:
        if self._text and isinstance(data, str):
            data = data.encode(self._encoding)
        return super().write(data)

    def close(self) -> None:
        if not self.closed:
            self._folder.put({self._name: self.getvalue()})
        super().close()


def _encode(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return pickle_value(value)


def _rebuild(config: dict[str, Any]) -> Any:
    """Unpickling a data resource: on its own cluster's head, its data is on the local disk."""
    system = config.get("system")
    if isinstance(system, dict) and system.get("type") == "cluster":
        cluster = systems.as_system(system)
        if systems.here_on(cluster):
            config = {**config, "system": "file"}
    return Resource.from_config(config)


def folder(path: str | None = None, system: Any = "file", name: str | None = None) -> Folder:
    """A folder (see :class:`Folder`); ``rh.folder(name="x")`` loads the one saved as ``x``."""
    if path is None:
        if name is None:
            raise TypeError("rh.folder() needs a path (or the name of a saved folder)")
        return _load(name, "folder")  # type: ignore[no-any-return]
    return Folder(path, system, name)


def file(path: str | None = None, system: Any = "file", name: str | None = None) -> File:
    """A file (see :class:`File`); ``rh.file(name="x")`` loads the one saved as ``x``."""
    if path is None:
        if name is None:
            raise TypeError("rh.file() needs a path (or the name of a saved file)")
        return _load(name, "file")  # type: ignore[no-any-return]
    return File(path, system, name)


def _load(name: str, kind: str) -> Any:
    config, meta = load(name, kind)
    found = Resource.from_config(config)
    vars(found)["_rh_saved"] = meta
    return found
