"""Runhouse's spellings and the bugs found porting Runhouse code (issue 14, items 2 and 4, bugs
B1-B7): each alias means what it means in Runhouse, each bug has its regression test."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import remote_objects as ro

import rhzmq as rh


def test_system_is_the_cluster(cluster: rh.Cluster) -> None:
    fn = rh.function(ro.add).to(system=cluster, name="sys_add")
    assert fn(1, 2) == 3
    assert rh.function(ro.greet, name="sys_greet", system=cluster)("Ada") == "hello Ada!"
    with pytest.raises(TypeError, match="needs a cluster"):
        rh.function(ro.add).to()
    cluster.delete(["sys_add", "sys_greet"])


def test_env_as_a_list_or_a_name(cluster: rh.Cluster) -> None:
    fn = rh.function(ro.getenv).to(cluster, env=rh.env(name="named_env", env_vars={"K": "v"}))
    assert fn("K") == "v"
    # env="name": that env (saved, or already on the cluster by name).
    again = rh.function(ro.whoami).to(cluster, env="named_env", name="named_whoami")
    assert again()["pid"] in {p["pid"] for p in cluster.processes() if p["env"] == "named_env"}
    # env=[...]: requirements (none needing a download here: the daemon's own numpy).
    listed = rh.function(ro.whoami).to(cluster, env=["numpy"], name="listed_whoami")
    assert listed()["pid"] != again()["pid"]
    listed_env = next(p["env"] for p in cluster.processes() if p["pid"] == listed()["pid"])
    cluster.delete(["named_env", listed_env])


def test_module_to_with_env_and_name(cluster: rh.Cluster) -> None:
    # As in Runhouse, the name given to .to() is the class module's; instances get their own.
    remote_cls = rh.module(ro.Plain).to(cluster, None, "plain_module")
    assert remote_cls.name == "plain_module"
    first = remote_cls([3], name="first_plain")
    assert first.name == "first_plain"
    second = remote_cls([4])
    assert second.name not in ("first_plain", "plain_module")
    counter = ro.Counter(7).to(cluster, env=None, name="instance_counter")
    assert counter.incr(1) == 8
    # Without a name, a Module instance is held under its class's name (Runhouse's default).
    assert ro.Counter(1).to(cluster).name == "Counter"
    cluster.delete(["first_plain", second.name, "instance_counter", "Counter"])


def test_put_get_and_prefixes(cluster: rh.Cluster) -> None:
    cluster.put(key="~/answer", obj={"a": 42})
    assert cluster.get("answer") == {"a": 42} == cluster.get("@/answer")
    with pytest.raises(KeyError):
        cluster.get("no_such_thing", default=KeyError)
    assert cluster.get("no_such_thing") is None
    cluster.delete("answer")


def test_get_or_to_reuses_what_is_there(cluster: rh.Cluster) -> None:
    first = rh.function(ro.whoami).get_or_to(cluster, name="once_whoami")
    pid = first()["pid"]
    again = rh.function(ro.add).get_or_to(cluster, name="once_whoami")
    assert again()["pid"] == pid  # the object already there, not add sent over it
    cluster.delete("once_whoami")


def test_run_and_run_python_on_the_local_cluster(
    cluster: rh.Cluster, capfd: pytest.CaptureFixture[str]
) -> None:
    results = cluster.run(["echo out-line", "echo err-line >&2; exit 3"])
    assert results == [(0, "out-line\n", ""), (3, "", "err-line\n")]
    out = capfd.readouterr()
    assert "(run) out-line" in out.out and "(run) err-line" in out.err  # streamed as it came
    ((code, stdout, _),) = cluster.run_python(["import sys", "print(sys.prefix)"])
    assert code == 0 and stdout.strip()
    assert cluster.on_this_cluster() is False
    on = rh.function(ro.on_this_cluster).to(cluster)
    assert on() is True


def test_cluster_call_on_a_generator_returns_its_items(cluster: rh.Cluster) -> None:
    """B1: cluster.call on a generator returned None, its items consumed and dropped."""
    rh.function(ro.countdown).to(cluster, name="b1_countdown")
    assert cluster.call("b1_countdown", "", 3) == [3, 2, 1]
    rh.function(ro.acountdown).to(cluster, name="b1_acountdown")
    assert asyncio.run(cluster.acall("b1_acountdown", "", 2)) == [2, 1]
    cluster.delete(["b1_countdown", "b1_acountdown"])


def test_a_saved_function_under_another_name_still_finds_its_object(cluster: rh.Cluster) -> None:
    """B3: save("my_add") renamed the stub, so loading it asked the cluster for 'my_add'."""
    rh.function(ro.add).to(cluster, name="b3_add").save("b3_my_add")
    assert rh.function(name="b3_my_add")(2, 2) == 4
    cluster.delete("b3_add")


def test_the_local_cluster_saved_under_a_name_reloads(cluster: rh.Cluster) -> None:
    """B4: cluster.save(name="my_local") then rh.cluster("my_local") raised ClusterError."""
    rh.cluster("local").save(name="b4_local")
    again = rh.cluster("b4_local")
    assert isinstance(again, rh.LocalCluster) and again.is_up()


def test_the_local_cluster_has_its_async_twins(cluster: rh.Cluster) -> None:
    """B5: aup_if_not / ais_up on the local cluster, and the hint names aup_if_not."""

    async def twins() -> bool:
        await cluster.aup_if_not()
        return await cluster.ais_up()

    assert asyncio.run(twins()) is True


def test_a_function_returning_a_coroutine_gives_its_value(cluster: rh.Cluster) -> None:
    """B6: chosen behaviour: the worker awaits it (as the caller wanted a value)."""
    assert rh.function(ro.returns_coroutine).to(cluster)(21) == 42


def test_unknown_compute_keys_are_refused() -> None:
    """B7: compute={"GPU": 1} was silently ignored."""
    with pytest.raises(ValueError, match="'GPU'"):
        rh.env(name="gpu_env", compute={"GPU": 1})


def test_remote_logs_are_shown_like_prints_without_local_logging(
    cluster: rh.Cluster, rhzmq_home: Path, tmp_path: Path
) -> None:
    """Runhouse shows remote logging records whatever the client's logging setup; a script
    that configured no logging used to see nothing."""
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).parents[1])!r})
            import rhzmq as rh, remote_objects as ro
            print(rh.function(ro.logs_things).to(rh.cluster("local"), name="shown_logs")())
            """
        )
    )
    env = {**os.environ, "RHZMQ_HOME": str(rhzmq_home)}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "(shown_logs) WARNING tests.remote: careful: 42" in out.stderr
    assert "invisible" not in out.stderr
    cluster.delete("shown_logs")


def test_runhouses_http_call_route(cluster: rh.Cluster) -> None:
    """POST {endpoint}/call with {"data": {"args", "kwargs"}}, as Runhouse's HTTP callers do."""

    fn = rh.function(ro.greet).to(cluster, name="http_greet")
    try:
        _http_calls(cluster, fn)
    finally:
        cluster.delete("http_greet")


def _http_calls(cluster: rh.Cluster, fn: rh.Function) -> None:
    import httpx

    url = fn.endpoint()
    assert url == f"{cluster.gateway_url}/http_greet" == fn.http_url()
    body = {"data": {"args": ["Ada"], "kwargs": {"punctuation": "?"}}, "serialization": "json"}
    r = httpx.post(f"{url}/call", json=body, headers=cluster.gateway_headers())
    assert r.status_code == 200 and r.json() == {"result": "hello Ada?"}
    r = httpx.post(url, json={"data": {"args": ["Bo"]}}, headers=cluster.gateway_headers())
    assert r.status_code == 200 and r.json() == {"result": "hello Bo!"}
    r = httpx.post(f"{url}/call", json={"data": [1]}, headers=cluster.gateway_headers())
    assert r.status_code == 400 and "'data' must be an object" in r.json()["error"]["message"]


def test_nested_call_in_the_same_worker_streams_its_output(
    cluster: rh.Cluster, capfd: pytest.CaptureFixture[str]
) -> None:
    """B2: a call from an object to another object in the same worker shows the inner call's
    prints at the outer caller, from a sync function (a call thread) and an async one (the
    worker's loop) alike."""
    rh.function(ro.add).to(cluster)
    outer = rh.function(ro.call_inner).to(cluster)
    aouter = rh.function(ro.acall_inner).to(cluster)
    assert outer(3) == 4
    assert asyncio.run(aouter.acall(5)) == 6
    # Again: the worker's own clients now exist, made during the calls above, which ended. The
    # output of these inner calls belongs to these calls (it once went to the first ones).
    assert outer(7) == 8
    assert asyncio.run(aouter.acall(9)) == 10
    out, _ = capfd.readouterr()
    assert "(call_inner) (add) adding 3 and 1" in out
    assert "(acall_inner) (add) adding 5 and 1" in out
    assert "(call_inner) (add) adding 7 and 1" in out
    assert "(acall_inner) (add) adding 9 and 1" in out
    assert out.index("outer before") < out.index("adding 3 and 1") < out.index("outer after 4")
