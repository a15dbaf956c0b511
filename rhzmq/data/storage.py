"""Where a folder's bytes are, seen from the process doing the work: a directory on this disk
(:class:`Disk`) or a prefix in a bucket (:class:`Bucket`). One small interface, so the copy
(:mod:`.sync`) and the folder's verbs are written once.

A path inside a folder (*rel*) is always ``/``-separated and relative to the folder's root.
Writes are atomic per file: a disk file is written under a temporary name and renamed (with the
source's mtime), an object is one PUT. An interrupted copy leaves whole files or nothing, which
is what makes copies resumable.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..wire.exceptions import DataError, DataNotFound, DataPermissionError
from .stores import ObjectStore, mapped

CHUNK = 1 << 20
PART = ".rhzmq-part"


@dataclass(frozen=True)
class Entry:
    """A file's size, and what tells two copies apart cheaply: an mtime (disks) or an MD5
    (objects uploaded whole: their ETag)."""

    size: int
    mtime: int | None = None
    md5: str | None = None


def check_rel(rel: str) -> str:
    """A name inside a folder: relative, no ``..``, ``/``-separated."""
    parts = rel.replace(os.sep, "/").strip("/").split("/")
    if not rel or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"a name inside a folder is a relative path without '..', got {rel!r}")
    return "/".join(parts)


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Disk:
    """A directory on the disk of the process doing the work."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(os.path.expanduser(str(root)))

    def describe(self) -> str:
        return str(self.root)

    def local(self, rel: str) -> Path:
        return self.root / check_rel(rel)

    def exists(self, rel: str | None = None) -> bool:
        return (self.local(rel) if rel else self.root).exists()

    def entries(self) -> dict[str, Entry]:
        """Every file under the root (recursively); DataNotFound if the root is missing."""
        if not self.root.is_dir():
            raise DataNotFound(f"no folder {self.root}" + self._hint())
        out: dict[str, Entry] = {}
        with _oserrors(str(self.root), "listing"):
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames.sort()
                rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
                for name in filenames:
                    if name.endswith(PART):
                        continue  # a copy cut short: not a file of the folder
                    full = os.path.join(dirpath, name)
                    st = os.stat(full)
                    rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                    out[rel] = Entry(st.st_size, int(st.st_mtime))
        return out

    def _hint(self) -> str:
        parent = self.root.parent
        return "" if parent.exists() else f" (nor its parent {parent})"

    def ls(self) -> list[str]:
        if not self.root.is_dir():
            raise DataNotFound(f"no folder {self.root}" + self._hint())
        return sorted(
            p.name + ("/" if p.is_dir() else "")
            for p in self.root.iterdir()
            if not p.name.endswith(PART)
        )

    def mkdir(self) -> None:
        with _oserrors(str(self.root), "making"):
            self.root.mkdir(parents=True, exist_ok=True)

    def read(self, rel: str) -> bytes:
        path = self.local(rel)
        with _oserrors(str(path), "reading"):
            return path.read_bytes()

    def open(self, rel: str, mode: str = "rb") -> IO[Any]:
        path = self.local(rel)
        with _oserrors(str(path), "opening"):
            if any(m in mode for m in "wax"):
                path.parent.mkdir(parents=True, exist_ok=True)
            return open(path, mode)

    def write(self, rel: str, data: bytes, mtime: int | None = None) -> None:
        self.write_from(rel, lambda f: f.write(data), mtime)

    def write_from(
        self, rel: str, fill: Callable[[IO[bytes]], Any], mtime: int | None = None
    ) -> None:
        """Write a file atomically: ``fill`` writes into a temporary file that is renamed."""
        path = self.local(rel)
        with _oserrors(str(path), "writing"):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:80]}.", suffix=PART, dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    fill(f)
                os.chmod(tmp, 0o666 & ~_umask())
                if mtime is not None:
                    os.utime(tmp, (mtime, mtime))
                os.replace(tmp, path)
            except BaseException:
                with _quiet():
                    os.unlink(tmp)
                raise

    def rm(self, rel: str | None = None) -> None:
        path = self.local(rel) if rel else self.root
        if not path.exists():
            raise DataNotFound(f"no file or folder {path} to remove")
        with _oserrors(str(path), "removing"):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def mv(self, dest: Disk) -> None:
        with _oserrors(str(self.root), f"moving to {dest.root}"):
            dest.root.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(self.root), str(dest.root))

    def md5(self, rel: str) -> str:
        return md5_of(self.local(rel))


class Bucket:
    """A prefix in a bucket of an object store; its driver is made on first use."""

    def __init__(self, store: ObjectStore, bucket: str, prefix: str) -> None:
        self.store = store
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def describe(self) -> str:
        return f"{self.store.provider}://{self.bucket}/{self.prefix}"

    def _name(self, rel: str) -> str:
        rel = check_rel(rel)
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _container(self, what: str) -> Any:
        with mapped(self.store, self.bucket, what):
            return self.store.driver().get_container(self.bucket)

    def exists(self, rel: str | None = None) -> bool:
        from libcloud.storage.types import ContainerDoesNotExistError, ObjectDoesNotExistError

        driver = self.store.driver()
        with mapped(self.store, self.bucket, "checking"):
            try:
                if rel:
                    driver.get_object(self.bucket, self._name(rel))
                    return True
                container = driver.get_container(self.bucket)
            except (ContainerDoesNotExistError, ObjectDoesNotExistError):
                return False
            if not self.prefix:
                return True
            return next(iter(self._iterate(container)), None) is not None

    def _iterate(self, container: Any) -> Iterator[Any]:
        prefix = f"{self.prefix}/" if self.prefix else None
        yield from self.store.driver().iterate_container_objects(container, prefix=prefix)

    def entries(self) -> dict[str, Entry]:
        container = self._container("listing")
        out: dict[str, Entry] = {}
        skip = len(self.prefix) + 1 if self.prefix else 0
        with mapped(self.store, self.bucket, "listing"):
            for obj in self._iterate(container):
                if obj.name.endswith("/"):
                    continue  # a "directory" marker (pyarrow's S3 filesystem makes them)
                out[obj.name[skip:]] = Entry(int(obj.size), None, self._md5(obj))
        return out

    def _md5(self, obj: Any) -> str | None:
        """An object's MD5 (hex), where the store says it. S3 and GCS: the ETag of an object
        PUT whole (a multipart one's has a ``-``); Azure: Content-MD5 (libcloud sets it on
        upload, also for blobs sent in blocks), its ETag is no hash."""
        if self.store.provider == "azure":
            md5 = (obj.extra or {}).get("md5_hash")
            return str(md5) if md5 else None
        etag = (obj.hash or "").strip('"')
        return etag if etag and "-" not in etag else None

    def ls(self) -> list[str]:
        names = {rel.split("/", 1)[0] + ("/" if "/" in rel else "") for rel in self.entries()}
        return sorted(names)

    def mkdir(self) -> None:
        """Create the bucket if it does not exist (prefixes need no making)."""
        from libcloud.storage.types import ContainerDoesNotExistError

        driver = self.store.driver()
        with mapped(self.store, self.bucket, "making the bucket"):
            try:
                driver.get_container(self.bucket)
            except ContainerDoesNotExistError:
                driver.create_container(self.bucket)

    def _object(self, rel: str) -> Any:
        with mapped(self.store, self.bucket, f"reading {rel}"):
            return self.store.driver().get_object(self.bucket, self._name(rel))

    def read(self, rel: str) -> bytes:
        obj = self._object(rel)
        with mapped(self.store, self.bucket, f"reading {rel}"):
            return b"".join(self.store.driver().download_object_as_stream(obj, CHUNK))

    def download(self, rel: str, f: IO[bytes]) -> int:
        obj = self._object(rel)
        n = 0
        with mapped(self.store, self.bucket, f"reading {rel}"):
            for chunk in self.store.driver().download_object_as_stream(obj, CHUNK):
                f.write(chunk)
                n += len(chunk)
        return n

    def write(self, rel: str, data: bytes, mtime: int | None = None) -> None:
        with tempfile.NamedTemporaryFile(suffix=PART) as tmp:
            tmp.write(data)
            tmp.flush()
            self.upload(rel, Path(tmp.name))

    def upload(self, rel: str, path: Path) -> None:
        """One whole-object PUT from a file (its ETag is then its MD5: what later copies
        compare with)."""
        container = self._container(f"writing {rel}")
        with mapped(self.store, self.bucket, f"writing {rel}"):
            self.store.driver().upload_object(str(path), container, self._name(rel))

    def rm(self, rel: str | None = None) -> None:
        driver = self.store.driver()
        if rel is not None:
            names = [self._name(rel)]
            found = self.entries()
            inner = check_rel(rel)
            names += [self._name(r) for r in found if r.startswith(inner + "/")]
            if inner not in found and len(names) == 1:
                raise DataNotFound(f"nothing named {rel!r} in {self.describe()}")
            if inner not in found:
                names = names[1:]
        else:
            names = [self._name(r) for r in self.entries()]
        container = self._container("removing")
        with mapped(self.store, self.bucket, "removing"):
            for name in names:
                obj = driver.get_object(container.name, name)
                driver.delete_object(obj)

    def md5(self, rel: str) -> str | None:
        return self.entries().get(check_rel(rel), Entry(0)).md5


Storage = Disk | Bucket


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)  # type: ignore[arg-type]


class _oserrors:
    """OSErrors of a disk operation as DataErrors naming the path."""

    def __init__(self, path: str, what: str) -> None:
        self.path = path
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is None or not isinstance(exc, OSError) or isinstance(exc, DataError):
            return
        if isinstance(exc, FileNotFoundError):
            raise DataNotFound(f"{self.what} {self.path}: no such file or folder") from None
        if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
            raise DataPermissionError(
                f"{self.what} {self.path}: permission denied ({exc.strerror}); this user "
                "may not do that there"
            ) from None
        raise DataError(f"{self.what} {self.path} failed: {exc}") from None
