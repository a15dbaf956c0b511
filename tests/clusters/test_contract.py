"""One contract, every kind of cluster: the same tests against the local daemon and the SSH
cluster (``any_cluster``), as distributed runs one suite against every transport. A kind of
cluster is done when it passes these."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import rhzmq as rh


def test_functions_return_print_and_raise(
    any_cluster: rh.Cluster, capfd: pytest.CaptureFixture[str]
) -> None:
    import jobs  # type: ignore[import-not-found]

    where = rh.function(jobs.where).to(any_cluster, name="contract_where")
    assert where(3)["x"] == 3
    assert "(contract_where) hello from" in capfd.readouterr().out
    fail = rh.function(jobs.fail).to(any_cluster, name="contract_fail")
    with pytest.raises(ValueError, match="bad input 4") as info:
        fail(4)
    assert isinstance(info.value.__cause__, rh.RemoteTraceback)


def test_generators_stream_and_objects_keep_state(any_cluster: rh.Cluster) -> None:
    import jobs

    count = rh.function(jobs.count).to(any_cluster, name="contract_count")
    assert list(count(4)) == [0, 1, 2, 3]
    counter = rh.module(jobs.Counter).to(any_cluster)(10, name="contract_counter")
    assert counter.add(1) == 11 and counter.add(2) == 13
    again = any_cluster.get("contract_counter", remote=True)
    assert again.add(1) == 14  # a second stub, the same object
    assert {"contract_count", "contract_counter"} <= set(any_cluster.keys())


def test_asyncio_callers_run_calls_concurrently(any_cluster: rh.Cluster) -> None:
    import jobs

    nap = rh.function(jobs.nap).to(any_cluster, name="contract_nap")

    async def main() -> tuple[list[float], float]:
        t = time.monotonic()
        results = await asyncio.gather(*(nap.acall(0.3) for _ in range(8)))
        return list(results), time.monotonic() - t

    results, took = asyncio.run(main())
    assert results == [0.3] * 8 and took < 2.4  # concurrent on the worker's threads


def test_delete_then_not_found_with_close_matches(any_cluster: rh.Cluster) -> None:
    import jobs

    rh.function(jobs.value).to(any_cluster, name="contract_value")
    any_cluster.delete("contract_value")
    assert "contract_value" not in any_cluster.keys()
    with pytest.raises(rh.ObjectNotFound) as info:
        any_cluster.call("contract_valu", "")
    assert "contract_value" not in info.value.matches  # deleted: not suggested either


def test_status_and_is_up(any_cluster: rh.Cluster, project: Path) -> None:
    assert any_cluster.is_up()
    status = any_cluster.status()
    assert status["workers"] and all("pid" in w for w in status["workers"])
    assert status["rebuilding"] == {} and status["restarting"] == []
