"""Data resources: ``rh.folder``, ``rh.file``, ``rh.blob`` and ``rh.table`` on this machine's
disk, an object store (``"s3"``, ``"gs"``, ``"azure"``, or ``rh.object_store(...)`` for a
custom endpoint) or a cluster.

Modules: :mod:`.folder` (folders and files, and where each operation runs), :mod:`.blob`,
:mod:`.table` (Parquet through pyarrow), :mod:`.stores` (object stores via apache-libcloud,
credentials), :mod:`.storage` (a disk directory and a bucket prefix behind one interface),
:mod:`.sync` (incremental, resumable copies), :mod:`.systems` (resolving ``system=``, running on
a cluster) and :mod:`._agent` (what a cluster runs for it).
"""

from __future__ import annotations

from .blob import Blob, blob
from .folder import File, Folder, file, folder
from .stores import ObjectStore
from .sync import CopyReport
from .table import Table, table


def object_store(
    provider: str = "s3",
    endpoint_url: str | None = None,
    region: str | None = None,
    *,
    key: str | None = None,
    secret: str | None = None,
    token: str | None = None,
    project: str | None = None,
) -> ObjectStore:
    """An object store to use as ``system=``: ``rh.object_store("s3",
    endpoint_url="http://minio:9000")``. Credentials given here stay in this process (a saved
    resource never holds them); without them the provider's standard places are used
    (:mod:`rhzmq.data.stores`)."""
    return ObjectStore(provider, endpoint_url, region, key, secret, token, project)


__all__ = [
    "Blob",
    "CopyReport",
    "File",
    "Folder",
    "ObjectStore",
    "Table",
    "blob",
    "file",
    "folder",
    "object_store",
    "table",
]
