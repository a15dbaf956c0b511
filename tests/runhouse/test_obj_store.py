"""Runhouse's tests/test_obj_store.py (cfaed94), ported: ``import rhzmq as rh`` and the
``cluster`` fixture; bodies and assertions as written.

Ported: cases 15 (a plain object put on the cluster, its generator method called by name with
``cluster.call(..., stream_logs=True)``), 35 (``stream_logs=True`` on a function call), 37
(``cluster.get(..., default=KeyError)`` raises).

Left out: tests of ``rh.Blob``/``rh.Run``/``rh.mapper`` and pickled HTTP object-store routes (not
quoted; ``rh.Run``/``rh.Blob`` are not exported by 0.0.35), tqdm streaming (``env=["tqdm"]``; the
case only mentions it).
"""

import pytest
from rh_helpers import do_printing_and_logging, slow_numpy_array

import rhzmq as rh


@pytest.mark.parametrize("env", [None])
def test_stateful_generator(cluster, env):
    # We need this here just to make sure the "tests" module is synced over
    rh.function(fn=do_printing_and_logging, system=cluster)
    cluster.put("slow_numpy_array", slow_numpy_array(), env=env)
    for val in cluster.call("slow_numpy_array", "slow_get_array", stream_logs=True):
        assert val
        print(val)


def test_stream_logs(cluster):
    print_fn = rh.function(fn=do_printing_and_logging, system=cluster)
    res = print_fn(stream_logs=True)
    # TODO [DG] assert that the logs are streamed
    assert res == list(range(50))


def test_put_and_get_on_cluster(cluster):
    test_list = list(range(5, 50, 2)) + ["a string"]  # noqa: RUF005 - as in Runhouse
    cluster.put("my_list", test_list)
    ret = cluster.get("my_list")
    assert all(a == b for (a, b) in zip(ret, test_list))  # noqa: B905 - as in Runhouse

    # Test that NOT_FOUND error is raised when key doesn't exist
    with pytest.raises(KeyError) as e:
        cluster.get("nonexistent_key", default=KeyError)
    assert "key nonexistent_key not found" in str(e.value)
