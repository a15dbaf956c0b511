"""Runhouse's tests/test_resources/test_clusters/test_cluster.py (81c84d0) and cluster_tests.py
(415a10d), ported: ``import rhzmq as rh`` and the ``cluster`` fixture; bodies and assertions as
written unless noted.

Ported: cases 12 (put/get/keys across envs), 13 (``put_resource``, deleting an env), 14 (default
env: ``put`` and function placement), 17 (default env in ``status()``), 32 (a cluster passed to a
remote function is "here"), 33 (``rh.here.run`` inside a remote function), 38 (``rh.here.run(...,
node="all")`` inside a remote function raises).

Changed:
* case 13: envs ``reqs=["pytest"]`` as in the source (already installed: no download).
* case 17: Runhouse's ``status()["env_servlet_processes"]`` (a dict keyed by env name) is rhzmq's
  ``status()["workers"]`` (a list of worker processes, each with its ``env``): the assertion
  checks the default env among the workers' envs.

Left out: on-demand/docker/TLS/Den cluster tests (``rh.ondemand_cluster``, ``enable_den_auth``,
``share``, sharing and autostop tests: not quoted, out of scope) and ``cluster.run_bash`` (does
not exist in this era).
"""

import copy

import pytest
from rh_helpers import (
    get_random_str,
    import_env,
    is_on_cluster,
    run_in_no_env,
    run_node_all,
    summer,
)

import rhzmq as rh


def test_cluster_objects(cluster):
    k1 = get_random_str()
    k2 = get_random_str()
    cluster.put(k1, "v1")
    cluster.put(k2, "v2")
    assert k1 in cluster.keys()
    assert k2 in cluster.keys()
    assert cluster.get(k1) == "v1"
    assert cluster.get(k2) == "v2"

    # Make new env
    rh.env(reqs=["numpy"], name="numpy_env").to(cluster)
    assert "numpy_env" in cluster.keys()

    k3 = get_random_str()
    cluster.put(k3, "v3", env="numpy_env")
    assert k3 in cluster.keys()
    assert cluster.get(k3) == "v3"


def test_cluster_delete_env(cluster):
    env1 = rh.env(reqs=["pytest"], name="env1").to(cluster)
    env2 = rh.env(reqs=["pytest"], name="env2").to(cluster)
    env3 = rh.env(reqs=["pytest"], name="env3")

    cluster.put("k1", "v1", env=env1.name)
    cluster.put("k2", "v2", env=env2.name)
    cluster.put_resource(env3, env=env1.name)

    # test delete env2
    assert cluster.get(env2.name)
    assert cluster.get("k2")

    cluster.delete(env2.name)
    assert not cluster.get(env2.name)
    assert not cluster.get("k2")

    # test delete env3, which doesn't affect env1
    assert cluster.get(env3.name)

    cluster.delete(env3.name)
    assert not cluster.get(env3.name)
    assert cluster.get(env1.name)
    assert cluster.get("k1")


def test_put_in_default_env(cluster):
    k1 = get_random_str()
    cluster.put(k1, "v1")

    assert k1 in cluster.keys(env=cluster.default_env.name)
    cluster.delete(k1)


def test_fn_to_default_env(cluster):
    remote_summer = rh.function(summer).to(cluster)

    assert remote_summer.name in cluster.keys(env=cluster.default_env.name)
    assert remote_summer(3, 4) == 7

    # Test function with non-trivial imports
    fn = rh.function(import_env).to(cluster)
    assert fn() == "success"


def test_default_env_in_status(cluster):
    res = cluster.status()
    # Runhouse: assert cluster.default_env.name in res.get("env_servlet_processes")
    assert cluster.default_env.name in {w["env"] for w in res.get("workers")}


def test_on_same_cluster(cluster):
    hw_copy = copy.copy(cluster)

    func_hw = rh.function(is_on_cluster).to(cluster)
    assert func_hw(cluster)
    assert func_hw(hw_copy)


def test_cluster_run_within_cluster(cluster):
    remote_run = rh.function(run_in_no_env).to(cluster)
    res = remote_run("echo hello")
    exp = cluster.run("echo hello")

    assert res[0][0] == 0
    assert res[0][1] == exp[0][1]


def test_cluster_run_within_cluster_node_all(cluster):
    remote_run = rh.function(run_node_all).to(cluster)
    # Can't run on a node that is on the cluster
    with pytest.raises(Exception):  # noqa: B017 - as in Runhouse
        remote_run("echo hello")[0]
