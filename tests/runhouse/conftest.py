"""Fixtures of the Runhouse ports (Runhouse's tests/conftest.py, test_servers/conftest.py).

* ``cluster``: the project's session cluster from tests/conftest.py (a real local daemon, its
  broker, gateway and workers, in a temporary ``RHZMQ_HOME``), used as it is. Runhouse's cluster
  fixtures (docker, static, on-demand, local daemon) all become this one.
* No ``ssh_cluster``: tests/clusters/conftest.py builds its SSH cluster from seven sshd "hosts"
  and a three-host bootstrap, and only for tests/clusters/ (its fixtures are not visible here);
  not cheap enough for this suite's ~60 s budget.
* ``http_client`` / ``async_http_client``: httpx clients on ``cluster.endpoint()`` (the HTTP
  gateway), as in Runhouse; the tests pass ``cluster.gateway_headers()`` where Runhouse passed
  ``rns_client.request_headers(...)``.
* ``remote_func`` / ``remote_log_streaming_func``: as in test_servers/conftest.py.
* Each test's objects and envs are deleted after it (not in Runhouse, whose fixture clusters are
  fresh containers): the session cluster is shared with the rest of the suite, and every env
  left running is a worker process on a two-core machine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from rh_helpers import do_printing_and_logging, summer

import rhzmq as rh


@pytest.fixture(autouse=True)
def _delete_what_the_test_left(cluster: rh.Cluster) -> Iterator[None]:
    keys = set(cluster.keys())
    envs = {p["env"] for p in cluster.processes()}
    yield
    left = [k for k in cluster.keys() if k not in keys]
    left += sorted({p["env"] for p in cluster.processes()} - envs - {"default"})
    for name in left:
        try:
            cluster.delete(name)
        except Exception:  # already gone with its env
            pass


@pytest.fixture
def http_client(cluster: rh.Cluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cluster.endpoint(), timeout=None, verify=False) as client:
        yield client


@pytest.fixture
async def async_http_client(cluster: rh.Cluster) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cluster.endpoint(), timeout=None, verify=False) as client:
        yield client


@pytest.fixture
def remote_func(cluster: rh.Cluster) -> rh.Function:
    return rh.function(summer).to(cluster)


@pytest.fixture
def remote_log_streaming_func(cluster: rh.Cluster) -> rh.Function:
    return rh.function(do_printing_and_logging).to(cluster)
