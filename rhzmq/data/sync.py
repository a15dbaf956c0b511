"""Incremental, resumable copies between two storages (:mod:`.storage`), done by the process
that can reach both (the client, or a cluster's worker).

What counts as changed, like rsync's quick check: a file missing at the destination, or of
another size, or — disk to disk — of another mtime (copies keep the source's mtime), or —
between a disk and a bucket — of another MD5 (an object's ETag; the disk side's MD5 is computed
only for files whose sizes match). Only those travel, each written whole (a temporary file
renamed, or one PUT), so a copy that was interrupted is resumed by running it again: the files
already there are skipped. Files at the destination that the source lacks are left alone.

A progress bar (files, bytes, rate) is drawn on stderr for copies of more than a few MiB, or
when asked (``progress=True``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from .._progress import Progress
from .storage import CHUNK, PART, Bucket, Disk, Entry, Storage

SHOW_ABOVE = 8 << 20  # bytes: smaller copies draw no bar unless asked


@dataclass
class CopyReport:
    """What a copy did: files and bytes sent, files found already there."""

    files_sent: int = 0
    bytes_sent: int = 0
    files_skipped: int = 0
    seconds: float = 0.0
    sent: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _same(rel: str, theirs: Entry, ours: Entry | None, src: Storage, dst: Storage) -> bool:
    if ours is None or ours.size != theirs.size:
        return False
    if theirs.mtime is not None and ours.mtime is not None:
        return theirs.mtime == ours.mtime
    md5s = [e.md5 for e in (theirs, ours)]
    if all(md5s):
        return md5s[0] == md5s[1]
    known = theirs.md5 or ours.md5
    if known is None:
        return True  # neither side knows more than the size (multipart objects): trust it
    disk = src if isinstance(src, Disk) else dst
    return isinstance(disk, Disk) and disk.md5(rel) == known


def copy(
    src: Storage,
    dst: Storage,
    *,
    only: set[str] | None = None,
    progress: bool | None = None,
    label: str = "copy",
    every: float = 0.1,
) -> CopyReport:
    """Bring ``dst`` up to date with ``src`` (the files in ``only``, if given)."""
    import time

    start = time.monotonic()
    theirs = src.entries()
    if only is not None:
        theirs = {rel: e for rel, e in theirs.items() if rel in only}
    try:
        ours = dst.entries()
    except FileNotFoundError:  # DataNotFound: a folder not made yet (a missing bucket raises)
        if not isinstance(dst, Disk):
            raise
        ours = {}
    todo = [rel for rel, e in sorted(theirs.items()) if not _same(rel, e, ours.get(rel), src, dst)]
    total = sum(theirs[rel].size for rel in todo)
    show = progress if progress is not None else total >= SHOW_ABOVE
    bar = Progress(label, len(todo), total_bytes=total, every=every) if show and todo else None
    if isinstance(dst, Disk):
        dst.mkdir()
    for rel in todo:
        _copy_one(src, dst, rel, theirs[rel], bar)
        if bar is not None:
            bar.advance()
    if bar is not None:
        bar.close()
    return CopyReport(
        files_sent=len(todo),
        bytes_sent=total,
        files_skipped=len(theirs) - len(todo),
        seconds=time.monotonic() - start,
        sent=tuple(todo),
    )


def _copy_one(src: Storage, dst: Storage, rel: str, entry: Entry, bar: Progress | None) -> None:
    if isinstance(src, Disk) and isinstance(dst, Disk):
        with open(src.local(rel), "rb") as f:
            dst.write_from(rel, lambda out: _pipe(f, out, bar), entry.mtime)
    elif isinstance(src, Disk) and isinstance(dst, Bucket):
        dst.upload(rel, src.local(rel))
        if bar is not None:
            bar.add_bytes(entry.size)
    elif isinstance(src, Bucket) and isinstance(dst, Disk):
        dst.write_from(rel, lambda out: _download(src, rel, out, bar))
    else:  # bucket to bucket: through a temporary file here (a whole-object PUT, MD5 ETag)
        assert isinstance(src, Bucket) and isinstance(dst, Bucket)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / ("f" + PART)
            with open(path, "wb") as out:
                _download(src, rel, out, bar)
            dst.upload(rel, path)


def _pipe(f: IO[bytes], out: IO[bytes], bar: Progress | None) -> None:
    if bar is None:
        shutil.copyfileobj(f, out, CHUNK)
        return
    while chunk := f.read(CHUNK):
        out.write(chunk)
        bar.add_bytes(len(chunk))


def _download(src: Bucket, rel: str, out: IO[bytes], bar: Progress | None) -> None:
    n = src.download(rel, out)
    if bar is not None:
        bar.add_bytes(n)


def local_listing(root: str) -> dict[str, tuple[int, int]]:
    """``{rel: (size, mtime)}`` of a directory on this disk (what the SSH path compares)."""
    return {
        rel: (e.size, e.mtime or 0) for rel, e in Disk(os.path.expanduser(root)).entries().items()
    }
