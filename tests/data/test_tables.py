"""Tables: a few million rows written partitioned, fetched with column and filter pushdown,
streamed in bounded memory (peak RSS measured in fresh processes), counted and described from
metadata; on disk, on S3 and on the local cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from s3server import S3Server

import rhzmq as rh

ROWS = 4_000_000


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> rh.Table:
    rng = np.random.default_rng(7)
    data = pa.table(
        {
            "day": pa.array(np.arange(ROWS) % 8, pa.int32()),
            "user": pa.array(rng.integers(0, 1_000_000, ROWS)),
            "value": pa.array(rng.random(ROWS)),
            "n": pa.array(np.arange(ROWS)),
        }
    )
    path = tmp_path_factory.mktemp("tables") / "big"
    return rh.table(data, path=str(path), partition_cols=["day"], name="big").write()


def test_partitioned_write_filter_and_metadata(big: rh.Table) -> None:
    days = sorted(p.name for p in Path(big.path).iterdir())
    assert days == [f"day={d}" for d in range(8)]
    assert big.num_rows == ROWS
    assert big.schema.names == ["user", "value", "n", "day"]
    got = big.fetch(columns=["n", "value"], filter=[("day", "=", 3), ("n", "<", 1000)])
    assert got.column_names == ["n", "value"]
    assert sorted(got["n"].to_pylist()) == list(range(3, 1000, 8))
    assert big.count_rows(filter=pc.field("day") == 5) == ROWS // 8
    df = big.fetch(filter=[("n", "in", [10, 11])], format="pandas")
    assert isinstance(df, pd.DataFrame) and sorted(df["n"]) == [10, 11]


def _script(code: str) -> str:
    # VmHWM is the peak RSS of this process image (ru_maxrss would carry pytest's own peak,
    # which survives fork and exec)
    return (
        "import json, re, sys, rhzmq as rh\n"
        "def peak():\n"
        "    status = open('/proc/self/status').read()\n"
        "    return int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1)) / 1024\n"
        "t = rh.table(path=sys.argv[1], name='big')\n"
        "t.schema  # pyarrow imported and the files' footers read before the baseline\n"
        "before = peak()\n"
        f"{code}\n"
        "print(json.dumps({'grew': peak() - before, 'rows': rows}))\n"
    )


def _run(code: str, path: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _script(code), path], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_streaming_keeps_memory_bounded(big: rh.Table) -> None:
    size_mb = ROWS * (4 + 8 + 8 + 8) / 2**20  # ~107 MiB of column data
    streamed = _run(
        "rows = 0\nfor b in t.stream(batch_size=65536):\n    rows += b.num_rows", big.path
    )
    eighth = _run(
        "rows = 0\nfor b in t.stream(batch_size=65536, filter=[('day', '=', 0)]):\n"
        "    rows += b.num_rows",
        big.path,
    )
    whole = _run("rows = t.fetch().num_rows", big.path)
    assert streamed["rows"] == whole["rows"] == ROWS and eighth["rows"] == ROWS // 8
    # reading it whole costs its size; streaming costs a few row groups, whatever the size:
    # eight times the rows cost (almost) no more than one eighth of them
    assert whole["grew"] > 0.8 * size_mb, whole
    assert streamed["grew"] < 0.5 * size_mb, (streamed, eighth, whole)
    assert streamed["grew"] - eighth["grew"] < 24, (streamed, eighth)


def test_tables_on_s3_and_the_local_cluster(
    tmp_path: Path, s3: S3Server, bucket: str, cluster: rh.Cluster
) -> None:
    df = pd.DataFrame({"k": ["a", "b", "c", "a"], "v": [1, 2, 3, 4]})
    t = rh.table(df, path=f"{bucket}/t1", system=s3.store(), partition_cols=["k"]).write()
    assert t.num_rows == 4
    assert sorted(t.fetch(filter=[("k", "=", "a")])["v"].to_pylist()) == [1, 4]
    local = t.to("file", str(tmp_path / "t1"))
    assert sorted(local.fetch(columns=["v"])["v"].to_pylist()) == [1, 2, 3, 4]
    on = local.to(cluster, path=str(tmp_path / "t1-cluster"))
    assert on.count_rows(filter=[("v", ">", 1)]) == 3
    assert [b.num_rows for b in on.stream(batch_size=2)] != []
    back = rh.table(name="t1", path=t.path, system=s3.store()).save()
    assert rh.Resource.load("t1").fetch().num_rows == 4
    _ = back


def test_a_missing_table_and_bucket_are_data_not_found(tmp_path: Path, s3: S3Server) -> None:
    with pytest.raises(rh.DataNotFound, match="no table"):
        rh.table(path=str(tmp_path / "none")).fetch()
    with pytest.raises(rh.DataNotFound):
        rh.table({"a": [1]}, path="absent-bucket-x/t", system=s3.store()).fetch()
