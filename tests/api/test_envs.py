"""Environments, worker processes, crash recovery and replicas, with real processes and pip."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import remote_objects as ro
from helpers import wait_pid_gone, worker_pid

import rhzmq as rh


def pids_of(cluster: rh.Cluster, env: str) -> list[int]:
    return sorted(p["pid"] for p in cluster.processes() if p["env"] == env)


def test_env_with_requirements_installs_and_is_cached(
    cluster: rh.Cluster, capfd: pytest.CaptureFixture[str]
) -> None:
    e = rh.env(name="inflect", reqs=["inflection==0.5.1"])
    camelize = rh.function(ro.camelize).to(cluster, env=e)
    out = capfd.readouterr().out
    assert (
        "(env inflect) installing inflection==0.5.1" in out
        and "Successfully installed inflection" in out
    )
    assert camelize("device_type") == "DeviceType"
    # The default worker does not have it: the env is isolated.
    plain = rh.function(ro.camelize).to(cluster, name="camelize_default")
    with pytest.raises(ModuleNotFoundError):
        plain("a_b")
    # Same requirements under another name: the venv is reused, pip does not run.
    t = time.monotonic()
    again = rh.function(ro.camelize).to(
        cluster, name="camelize2", env=rh.env(name="inflect2", reqs=["inflection==0.5.1"])
    )
    assert "using the cached environment" in capfd.readouterr().out
    assert again("x_y") == "XY" and time.monotonic() - t < 15
    cluster.delete(["inflect", "inflect2", "camelize_default"])


def test_failed_install_reports_pip_error(cluster: rh.Cluster) -> None:
    bad = rh.env(name="broken", reqs=["rhzmq-no-such-package-anywhere==0.0.1"])
    with pytest.raises(rh.EnvError) as info:
        rh.function(ro.echo).to(cluster, env=bad)
    message = str(info.value)
    assert "rhzmq-no-such-package-anywhere" in message
    assert "No matching distribution" in message or "Could not find a version" in message
    assert "broken" not in [p["env"] for p in cluster.processes()]
    assert rh.function(ro.add).to(cluster)(1, 1) == 2  # the rest of the cluster is untouched


def test_env_vars_only_in_their_worker_and_delete_kills(cluster: rh.Cluster) -> None:
    e = rh.env(name="vars", env_vars={"RHZMQ_TEST_VAR": "forty-two"})
    inside = rh.function(ro.getenv).to(cluster, env=e)
    outside = rh.function(ro.getenv).to(cluster, name="getenv_default")
    assert inside("RHZMQ_TEST_VAR") == "forty-two"
    assert outside("RHZMQ_TEST_VAR") is None
    [pid] = pids_of(cluster, "vars")
    procs = {p["name"]: p for p in cluster.processes()}
    assert procs["vars"]["objects"] == ["getenv"] and procs["vars"]["pid"] == pid
    deadline = time.monotonic() + 5
    while (stats := {p["name"]: p for p in cluster.processes()}["vars"])["rss_bytes"] is None:
        assert time.monotonic() < deadline, "no heartbeat brought CPU and memory figures"
        time.sleep(0.1)  # the figures ride on the worker's next heartbeat (1 s)
    assert stats["rss_bytes"] > 10_000_000 and stats["cpu_seconds"] > 0
    cluster.delete("vars")
    assert wait_pid_gone(pid, 10)
    assert pids_of(cluster, "vars") == []
    with pytest.raises(rh.ObjectNotFound):
        inside("RHZMQ_TEST_VAR")
    cluster.delete("getenv_default")


def test_sigkill_mid_call_then_rebuilt_object_answers(cluster: rh.Cluster) -> None:
    e = rh.env(name="crashy")
    tally = rh.module(ro.Tally).to(cluster, env=e)(name="tally")
    sleeps = rh.function(ro.sleeps).to(cluster, env=e)
    assert tally.bump() == 1 and tally.bump() == 2
    [pid] = pids_of(cluster, "crashy")

    async def kill_mid_call() -> float:
        task = asyncio.ensure_future(sleeps.acall(30))
        await asyncio.sleep(0.3)
        t = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(rh.WorkerDiedError, match="SIGKILL") as info:
            await task
        assert "state starting afresh" in str(info.value)
        return time.monotonic() - t

    assert asyncio.run(kill_mid_call()) < 3.0
    new = worker_pid(cluster, "crashy")
    assert new != pid
    # Rebuilt from its spec by the broker, without sending it again: its state starts afresh.
    deadline = time.monotonic() + 10
    while True:
        try:
            assert tally.bump() == 1
            break
        except rh.ObjectNotFound:
            assert time.monotonic() < deadline, "the object was not rebuilt"
            time.sleep(0.05)
    assert sleeps(0.01) == "slept"
    cluster.delete("crashy")


def test_map_over_replicas_keeps_order(
    cluster: rh.Cluster, capfd: pytest.CaptureFixture[str]
) -> None:
    burn = rh.function(ro.burn).to(cluster, replicas=2)
    assert len(pids_of(cluster, "burn-replicas")) == 2
    square = rh.function(ro.square_or_fail).to(
        cluster, env=rh.env(name="burn-replicas"), replicas=2
    )
    items = list(range(14, 1014))  # 13 is the one that fails
    assert square.map(items, progress=True) == [x * x for x in items]
    err = capfd.readouterr().err
    assert "square_or_fail.map [" in err and "1000/1000" in err
    used = set(burn.map([5.0] * 200))
    assert used == set(pids_of(cluster, "burn-replicas")), "calls did not spread over both replicas"
    with pytest.raises(ValueError, match="unlucky") as info:
        square.map(range(100))
    assert any("item 13" in note for note in info.value.__notes__)
    assert square.starmap([(2,), (3,)]) == [4, 9]
    cluster.delete("burn-replicas")


def test_max_concurrency_queues_extra_calls(cluster: rh.Cluster) -> None:
    one = rh.function(ro.sleeps).to(cluster, name="one_at_a_time", max_concurrency=1)

    async def two() -> float:
        t = time.monotonic()
        await asyncio.gather(one.acall(0.3), one.acall(0.3))
        return time.monotonic() - t

    assert asyncio.run(two()) >= 0.58
    cluster.delete("one_at_a_time")


def test_secrets_reach_the_worker_but_are_never_shown(cluster: rh.Cluster) -> None:
    from rhzmq.wire import config as _config

    value = "s3cr3t-value-for-tests-91c2"
    e = rh.env(name="secretive", env_vars={"PLAIN": "1"}, secrets={"RHZMQ_TEST_SECRET": value})
    assert value not in repr(e)
    getenv = rh.function(ro.getenv).to(cluster, env=e, name="secret_getenv")
    assert getenv("RHZMQ_TEST_SECRET") == value
    [pid] = pids_of(cluster, "secretive")
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert value.encode() not in f.read()  # environment, not argv: invisible in `ps`
    assert value not in str(cluster.status()) and value not in str(cluster.processes())
    assert value not in _config.log_file().read_text(errors="replace")
    cluster.delete("secretive")


def test_placing_an_env_on_another_node_of_the_local_cluster_is_refused(
    cluster: rh.Cluster,
) -> None:
    with pytest.raises(ValueError, match=r"node 1.*this machine alone"):
        rh.function(ro.camelize).to(
            cluster, name="nowhere", env=rh.env(name="far", compute={"node": 1})
        )
