"""Runhouse's tests/test_servers/test_http_server.py (192b5d0) and its conftest (415a10d), ported:
``import rhzmq as rh``, the ``cluster`` fixture, httpx clients on the cluster's HTTP gateway, and
``cluster.gateway_headers()`` in place of ``rns_client.request_headers(...)``.

rhzmq's gateway differs from Runhouse's HTTP server by design (docs/runhouse.md "HTTP",
docs/security.md), and these cases are ported to check the documented behaviour instead:
* Pickled payloads (cases 40, 43: ``"serialization": "pickle"``): rhzmq never unpickles what an
  HTTP caller sends. Ported to check that such a request is refused with a clear 4xx (400, naming
  the serialization) instead of Runhouse's 200 with a pickled result.
* Calls by GET (case 41, ``GET /{name}/call?a=1&b=2``): rhzmq calls only on POST with a JSON or
  msgpack body (a web page can make a browser send a GET to any address). Ported to check that
  the GET calls nothing and answers a 4xx that says to POST.
* Results (case 42): rhzmq answers ``{"result": ...}`` where Runhouse answered the bare result
  (``"serialization": None``) or an envelope with JSON text in ``data`` (``"json"``). The
  ``"serialization": "json"`` sibling keeps Runhouse's body (``data`` as JSON *text*, as
  ``serialize_data(data, "json")`` makes it) with the result ported to ``{"result": 3}``. The
  ``"random"`` sibling keeps its 400; Runhouse's message ("Invalid serialization type") is
  rhzmq's own one, which names the serialization.
* Streaming (case 43): besides the pickle refusal, ``test_log_streaming_call_ndjson`` is the
  documented equivalent (``Accept: application/x-ndjson``: NDJSON ``stdout``/``log`` lines, then a
  ``result`` line), with the same stdout/log assertions.

Left out: docker/TLS/Den-auth server tests, ``/object``/``/resource``/``/folder`` routes and other
pickled object-store routes (not quoted; Runhouse-internal or pickled).
"""

import json

import pytest
from rh_helpers import serialize_data, summer

import rhzmq as rh


def test_call_module_method(http_client, cluster):
    remote_func = rh.function(summer).to(cluster)
    method_name = "call"
    module_name = remote_func.name
    data = {"args": [1, 2], "kwargs": {}}

    response = http_client.post(
        f"{module_name}/{method_name}",
        json={
            "data": serialize_data(data, "pickle"),
            "stream_logs": True,
            "serialization": "pickle",
            "run_name": "test_call_module_method",
        },
        headers=cluster.gateway_headers(),
    )
    # Runhouse: 200, then a stdout envelope and a pickled result_serialized envelope
    assert response.status_code == 400
    assert "pickle" in response.text


def test_call_module_method_get_call(http_client, cluster):
    remote_func = rh.function(summer).to(cluster)
    method_name = "call"
    module_name = remote_func.name

    response = http_client.get(
        f"{module_name}/{method_name}",
        params={
            "a": 1,
            "b": 2,
            "run_name": "test_call_module_method_get_call",
        },
        headers=cluster.gateway_headers(),
    )
    # Runhouse: 200 and the result "12" (GET arguments arrive as strings)
    assert 400 <= response.status_code < 500
    assert "POST" in response.json()["error"]["message"]


@pytest.mark.anyio
async def test_async_call(async_http_client, remote_func, cluster):
    method = "call"

    response = await async_http_client.post(
        f"/{remote_func.name}/{method}",
        json={
            "data": {
                "args": [1, 2],
                "kwargs": {},
            },
            "serialization": None,
            "run_name": "test_async_call",
        },
        headers=cluster.gateway_headers(),
    )
    assert response.status_code == 200
    assert response.json() == {"result": 3}  # Runhouse: response.json() == 3


@pytest.mark.anyio
async def test_async_call_with_json_serialization(async_http_client, remote_func, cluster):
    method = "call"

    response = await async_http_client.post(
        f"/{remote_func.name}/{method}",
        json={
            "data": json.dumps({"args": [1, 2], "kwargs": {}}),
            "serialization": "json",
            "run_name": "test_async_call_with_json_serialization",
        },
        headers=cluster.gateway_headers(),
    )
    assert response.status_code == 200
    assert response.json() == {"result": 3}  # Runhouse: response.json()["data"] == "3"


@pytest.mark.anyio
async def test_async_call_with_invalid_serialization(async_http_client, remote_func, cluster):
    method = "call"

    response = await async_http_client.post(
        f"/{remote_func.name}/{method}",
        json={
            "data": {"args": [1, 2], "kwargs": {}},
            "serialization": "random",
            "run_name": "test_async_call_with_invalid_serialization",
        },
        headers=cluster.gateway_headers(),
    )
    assert response.status_code == 400
    assert "random" in response.text  # Runhouse: "Invalid serialization type" in response.text


def test_log_streaming_call(http_client, remote_log_streaming_func):
    method_name = "call"
    module_name = remote_log_streaming_func.name
    clus = remote_log_streaming_func.system
    data = {"args": [3], "kwargs": {}}

    url = f"{clus.endpoint()}/{module_name}/{method_name}"

    with http_client.stream(
        "POST",
        url,
        json={
            "data": serialize_data(data, "pickle"),
            "stream_logs": True,
            "serialization": "pickle",
            "run_name": "test_log_streaming_call",
        },
        headers=clus.gateway_headers(),
    ) as r:
        # Runhouse: 200, NDJSON stdout envelopes, then the pickled result
        assert r.status_code == 400
        r.read()
        assert "pickle" in r.text


def test_log_streaming_call_ndjson(http_client, remote_log_streaming_func, cluster):
    # The documented equivalent of test_log_streaming_call (see the module docstring)
    module_name = remote_log_streaming_func.name
    stdout, logs, results = "", [], []
    with http_client.stream(
        "POST",
        f"/{module_name}/call",
        json={"data": {"args": [3], "kwargs": {}}, "serialization": None},
        headers={**cluster.gateway_headers(), "Accept": "application/x-ndjson"},
    ) as r:
        assert r.status_code == 200
        for res in r.iter_lines():
            resp_obj: dict = json.loads(res)
            if resp_obj["type"] == "stdout":
                stdout += resp_obj["data"]
            elif resp_obj["type"] == "log":
                logs.append(resp_obj["message"])
            elif resp_obj["type"] == "result":
                results.append(resp_obj["data"])
    for i in range(3):
        assert f"Hello from the cluster stdout! {i}" in stdout
        assert f"Hello from the cluster logs! {i}" in logs
    assert results == [list(range(50))]  # the test_obj_store.py version (servers': `steps`)
