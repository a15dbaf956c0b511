"""``rh.table``: a table stored as Parquet files (Apache Arrow), optionally partitioned.

::

    t = rh.table(df, path="~/data/events", partition_cols=["day"]).write()
    t.num_rows, t.schema                        # from the files' footers: no data read
    t.fetch(columns=["user", "n"], filter=[("day", "=", "2024-05-01"), ("n", ">", 3)])
    for batch in t.stream(batch_size=65_536):   # bounded memory, whatever the table's size
        ...
    t.to("s3", path="my-bucket/events")        # the Parquet files, incrementally

Anything ``pyarrow.table()`` takes goes in (a pyarrow Table or RecordBatch, a pandas DataFrame,
a dict of columns). Partitions are Hive-style directories (``day=2024-05-01/``), so filters on
partition columns skip whole directories and filters on other columns skip row groups by their
statistics (pushdown); ``columns`` reads only those columns' pages.

Where the files are: this machine's disk, a cluster's disk (every operation then runs on the
cluster, and ``fetch``/``stream`` bring back only the rows asked for), or S3 (through pyarrow's
own S3 filesystem, with the credentials and endpoint of :mod:`.stores`, so reads are ranged and
pushdown works there too), or Azure Blob Storage (pyarrow's Azure filesystem, likewise). Tables on
``gs`` are not supported yet (untested: see :mod:`.stores`): copy them to disk with
``rh.folder(...).to("file")`` first.

pyarrow is an optional dependency (``pip install 'rhzmq[data]'``); folders, files and blobs do
not need it. A cluster holding tables needs it too (``rh.env(reqs=["pyarrow"])``, or installed
where the cluster's Python finds it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

from .._store import Resource
from ..wire import config as _config
from ..wire.exceptions import DataError, DataNotFound
from . import systems
from .folder import Folder, _load, _rebuild
from .stores import ObjectStore


def _pa() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise DataError(
            "rh.table needs pyarrow: pip install 'rhzmq[data]' (or pyarrow) here, and on a "
            "cluster holding the table"
        ) from None
    return pyarrow


def as_arrow(data: Any) -> Any:
    """``data`` as a pyarrow Table (pandas without its index)."""
    pa = _pa()
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if type(data).__module__.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False)
    return pa.table(data)


def as_expression(filter: Any) -> Any:
    """A filter as a pyarrow expression: one already, or DNF tuples ``[("col", "=", v), ...]``
    (a list of such lists means OR)."""
    if filter is None:
        return None
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if isinstance(filter, pc.Expression):
        return filter
    return pq.filters_to_expression(filter)


class Table(Resource):
    """A Parquet dataset at ``path`` on ``system``; see the module docstring."""

    resource_type = "table"

    def __init__(
        self,
        data: Any = None,
        path: str | None = None,
        system: Any = "file",
        name: str | None = None,
        partition_cols: list[str] | None = None,
    ) -> None:
        self.name = name or f"table-{uuid.uuid4().hex[:12]}"
        if path is None:
            if system not in ("file", None):
                raise ValueError("a table on an object store or a cluster needs a path")
            path = str(_config.home() / "tables" / self.name)
        self.folder = Folder(path, system, self.name)
        self.partition_cols = list(partition_cols or [])
        self.data = data

    @property
    def path(self) -> str:
        return self.folder.path

    @property
    def system(self) -> Any:
        return self.folder.system

    def config(self) -> dict[str, Any]:
        return {
            **self.folder.config(),
            "type": self.resource_type,
            "name": self.name,
            "partition_cols": self.partition_cols,
        }

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Table:
        return cls(
            None,
            config["path"],
            config.get("system", "file"),
            config.get("name"),
            config.get("partition_cols"),
        )

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return _rebuild, (self.config(),)

    def __repr__(self) -> str:
        return f"<Table {self.name!r} at {self.path!r} on {systems.system_name(self.system)}>"

    # -- where the files are -----------------------------------------------------------------

    @property
    def _cluster(self) -> Any:
        return self.folder._cluster

    def _on_cluster(self, method: str, *args: Any) -> Any:
        return systems.call(self._cluster, self.config(), method, *args)

    def _filesystem(self) -> tuple[Any, str]:
        """A pyarrow filesystem and the dataset's path in it."""
        system = self.system
        if system is None:
            return None, self.path
        if isinstance(system, ObjectStore) and system.provider == "s3":
            from pyarrow import fs

            creds = system.credentials()
            kwargs: dict[str, Any] = {"region": system.region}
            if system.endpoint_url:
                scheme, _, rest = system.endpoint_url.partition("://")
                kwargs.update(endpoint_override=rest.rstrip("/"), scheme=scheme)
            s3 = fs.S3FileSystem(
                access_key=creds["key"],
                secret_key=creds["secret"],
                session_token=creds.get("token"),
                **kwargs,
            )
            return s3, self.path
        if isinstance(system, ObjectStore) and system.provider == "azure":
            from pyarrow import fs

            creds = system.credentials()
            az: dict[str, Any] = {}
            if system.endpoint_url:  # Azurite, Azure Stack: the account is then in the path
                scheme, _, rest = system.endpoint_url.partition("://")
                authority = rest.rstrip("/")
                # the Data Lake endpoint too: pyarrow asks it whether the account has a
                # hierarchical namespace (Azurite answers no at the same address)
                az.update(
                    blob_storage_authority=authority,
                    blob_storage_scheme=scheme,
                    dfs_storage_authority=authority,
                    dfs_storage_scheme=scheme,
                )
            return fs.AzureFileSystem(creds["key"], account_key=creds["secret"], **az), self.path
        if systems.is_local_cluster(system):
            return None, self.path
        raise DataError(
            f"tables on {systems.system_name(system)} are not supported yet: copy the files to "
            "this disk first (rh.folder(path, system).to('file', path=...))"
        )

    def _dataset(self) -> Any:
        _pa()
        import pyarrow.dataset as ds

        filesystem, path = self._filesystem()
        try:
            return ds.dataset(path, format="parquet", partitioning="hive", filesystem=filesystem)
        except FileNotFoundError:
            raise DataNotFound(
                f"no table at {path} on {systems.system_name(self.system)}: write() it first"
            ) from None
        except OSError as exc:
            self._raise_store_error(exc, "opening the table")
            raise

    def _raise_store_error(self, exc: OSError, what: str) -> None:
        text = str(exc)
        if isinstance(self.system, ObjectStore):
            bucket = self.path.split("/", 1)[0]
            if "NoSuchBucket" in text or "does not exist" in text:
                raise DataNotFound(
                    f"bucket {bucket!r} does not exist on {self.system.describe()} ({what})"
                ) from None
            if "ACCESS_DENIED" in text or "AccessDenied" in text or "403" in text:
                from ..wire.exceptions import DataPermissionError

                raise DataPermissionError(
                    f"{self.system.describe()} refused {what} in bucket {bucket!r}: {text[:300]}"
                ) from None

    # -- writing -----------------------------------------------------------------------------

    def write(
        self, data: Any = None, *, partition_cols: list[str] | None = None, append: bool = False
    ) -> Table:
        """Write ``data`` (or the table's own) as Parquet files, replacing what was there
        (``append=True`` adds files instead); returns self."""
        if data is not None:
            self.data = data
        if self.data is None:
            raise ValueError("nothing to write: rh.table(data, ...) or table.write(data)")
        if partition_cols is not None:
            self.partition_cols = list(partition_cols)
        table = as_arrow(self.data)
        if self._cluster is not None and not systems.is_local_cluster(self._cluster):
            self._on_cluster("_write_here", table, append)
        else:
            self._write_here(table, append)
        return self

    def _write_here(self, table: Any, append: bool) -> None:
        import pyarrow.dataset as ds

        filesystem, path = self._filesystem()
        if isinstance(self.system, ObjectStore):
            self.folder._storage().mkdir()  # the bucket, as a folder's mkdir() makes it
            if not append and self.folder.exists():
                self.folder.rm()
        elif not append and self.folder.exists():
            self.folder.rm()
        try:
            ds.write_dataset(
                table,
                path,
                format="parquet",
                filesystem=filesystem,
                partitioning=self.partition_cols or None,
                partitioning_flavor="hive" if self.partition_cols else None,
                basename_template=f"part-{uuid.uuid4().hex[:8]}-{{i}}.parquet",
                existing_data_behavior="overwrite_or_ignore",
                max_rows_per_group=1 << 16,  # row groups of ~2 MiB: what stream() holds
                max_rows_per_file=1 << 22,
            )
        except OSError as exc:
            self._raise_store_error(exc, "writing the table")
            raise

    # -- reading -----------------------------------------------------------------------------

    def fetch(
        self, columns: list[str] | None = None, filter: Any = None, format: str = "arrow"
    ) -> Any:
        """The table's rows (only ``columns``, only rows matching ``filter``: see the module
        docstring) as a pyarrow Table, or a pandas DataFrame with ``format="pandas"``."""
        if self._cluster is not None and not systems.is_local_cluster(self._cluster):
            result = self._on_cluster("fetch", columns, filter)
        else:
            result = self._dataset().to_table(columns=columns, filter=as_expression(filter))
        return result.to_pandas() if format == "pandas" else result

    def stream(
        self, batch_size: int = 65_536, columns: list[str] | None = None, filter: Any = None
    ) -> Iterator[Any]:
        """RecordBatches of at most ``batch_size`` rows, read as they are consumed: memory stays
        bounded by a few row groups whatever the table's size."""
        if self._cluster is not None and not systems.is_local_cluster(self._cluster):
            yield from systems.stream(
                self._cluster, self.config(), "stream", batch_size, columns, filter
            )
            return
        pool = _pa().default_memory_pool()
        for batch in self._dataset().to_batches(
            batch_size=batch_size,
            columns=columns,
            filter=as_expression(filter),
            batch_readahead=1,
            fragment_readahead=1,
            use_threads=False,  # one row group decoded at a time
        ):
            yield batch
            # The allocator keeps freed pages for reuse: streaming 4M rows peaked 56 MiB
            # above the start with them kept, 31 MiB returning them (one eighth: 18 MiB).
            pool.release_unused()

    def count_rows(self, filter: Any = None) -> int:
        """Rows (matching ``filter``); without a filter from the files' metadata alone."""
        if self._cluster is not None and not systems.is_local_cluster(self._cluster):
            return int(self._on_cluster("count_rows", filter))
        return int(self._dataset().count_rows(filter=as_expression(filter)))

    @property
    def num_rows(self) -> int:
        return self.count_rows()

    @property
    def schema(self) -> Any:
        """The columns and their types (partition columns included), from metadata only."""
        if self._cluster is not None and not systems.is_local_cluster(self._cluster):
            return self._on_cluster("_schema")
        return self._dataset().schema

    def _schema(self) -> Any:
        return self.schema

    def files(self) -> list[str]:
        """The Parquet files, relative to the table's path."""
        return [f for f in self.folder.ls(recursive=True) if f.endswith(".parquet")]

    def exists(self) -> bool:
        return self.folder.exists()

    def rm(self) -> None:
        self.folder.rm()

    def to(self, system: Any, path: str | None = None, *, progress: bool | None = None) -> Table:
        """A copy of the table's files on ``system`` (incremental, like a folder's)."""
        copied = self.folder.to(system, path, progress=progress)
        table = Table(None, copied.path, copied.system, self.name, self.partition_cols)
        table.folder.last_copy = copied.last_copy
        return table


def table(
    data: Any = None,
    path: str | None = None,
    system: Any = "file",
    name: str | None = None,
    partition_cols: list[str] | None = None,
) -> Table:
    """A table (see :class:`Table`); ``rh.table(name="x")`` alone loads the one saved as ``x``."""
    if data is None and path is None and name is not None:
        return _load(name, "table")  # type: ignore[no-any-return]
    return Table(data, path, system, name, partition_cols)
