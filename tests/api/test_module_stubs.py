"""Remote-object and class-module stubs in Runhouse's terms (issue 14, item 3): ``.name``,
``.system``, ``.remote``/``.local``, ``fetch``/``set_async``, ``rename``, class- and static
methods on the class stub, ``local=True`` methods, ``method.remote(run_name=)``, and the one
list of names a stub answers itself."""

from __future__ import annotations

import os
import time

import pytest
import remote_objects as ro

import rhzmq as rh
from rhzmq._stubs import RESERVED


def test_class_module_names_and_classmethods(cluster: rh.Cluster) -> None:
    remote_cls = rh.module(ro.Calculator).to(cluster)
    assert isinstance(remote_cls, rh.Module)
    assert remote_cls.name == "Calculator"
    # Class- and static methods run on the cluster (in its default worker), not here: the
    # class goes there, under the module's name, with the first such call.
    worker_pids = {p["pid"] for p in cluster.processes()}
    assert remote_cls.where() in worker_pids and "Calculator" in cluster.keys()
    assert remote_cls.double(21) == 42
    # ...unless their ``local`` parameter defaults to True (Runhouse's rule).
    assert remote_cls.here_pid() == os.getpid()
    # Plain class attributes are the local class's.
    assert remote_cls.importer == "Calculators Inc"

    calc = remote_cls(owner="Runhouse", name="rh_calc")
    assert calc.name == "rh_calc" and calc.system is cluster
    assert calc.where() in worker_pids and calc.here_pid() == os.getpid()
    cluster.delete(["Calculator", "rh_calc"])


def test_remote_and_local_attributes(cluster: rh.Cluster) -> None:
    calc = rh.module(ro.Calculator).to(cluster, name="calc_cls")(owner="ada", name="attr_calc")
    assert calc.remote.model == "Casio" and calc.remote._release_year == 2023
    assert calc.remote.name == "attr_calc"  # the object has no `name`: the one it is held under
    assert calc.local.importer == "Calculators Inc"
    assert calc.fetch("owner") == "ada"
    whole = calc.fetch()
    assert isinstance(whole, ro.Calculator) and whole.owner == "ada"

    calc.remote.owner = "grace"
    assert calc.remote.owner == "grace" == calc.owner
    # A remote method named like a reserved one is reached through .remote, never shadowed
    # silently: calc.save() saves the stub, calc.remote.save() calls the remote method.
    assert calc.remote.save() == "saved by grace"
    with pytest.raises(AttributeError, match=r"obj\.remote\.name = value"):
        calc.name = "x"
    loaded = rh.module(name="attr_calc") if calc.save() else None
    assert loaded is not None and loaded.summer(2, 3) == 5
    with pytest.raises(AttributeError, match="loaded by name"):
        loaded.local.importer  # noqa: B018
    cluster.delete("attr_calc")


@pytest.mark.anyio
async def test_async_fetch_and_set(cluster: rh.Cluster) -> None:
    remote_cls = await rh.module(ro.Calculator).ato(cluster, name="async_calc_cls")
    calc = await remote_cls.anew(owner="a", name="async_calc")
    assert await remote_cls.double.acall(4) == 8
    await calc.set_async("owner", "b")
    await calc.set_async("_release_year", 2020)
    assert await calc.fetch_async("owner") == "b"
    assert await calc.fetch_async("_release_year") == 2020
    assert await calc.fetch_async("model") == "Casio"
    await cluster.adelete(["async_calc_cls", "async_calc"])


def test_rename_keeps_the_object(cluster: rh.Cluster) -> None:
    counter = ro.Counter(5).to(cluster, name="before_rename")
    counter.incr(2)
    counter.rename("after_rename")
    assert counter.name == "after_rename"
    assert counter.incr(1) == 8  # the same object, state kept
    keys = cluster.keys()
    assert "after_rename" in keys and "before_rename" not in keys
    with pytest.raises(rh.ObjectNotFound):
        cluster.call("before_rename", "incr")
    # The target name must be free, and the renamed name must exist.
    other = ro.Counter(0).to(cluster, name="taken_name")
    with pytest.raises(rh.LimitExceeded, match="exists"):
        counter.rename("taken_name")
    with pytest.raises(rh.ObjectNotFound):
        cluster.rename("never_there", "x")

    # A class module renamed: new instances still work, old ones are untouched.
    remote_cls = rh.module(ro.Calculator).to(cluster)
    old = remote_cls(owner="o", name="calc_before")
    remote_cls.rename("my_calc_module")
    assert remote_cls.name == "my_calc_module" and "Calculator" not in cluster.keys()
    new = remote_cls(owner="n", name="calc_after")
    assert new.summer(4, 6) == old.summer(4, 6) == 10
    assert remote_cls.double(2) == 4
    cluster.delete(["after_rename", other.name, "my_calc_module", "calc_before", "calc_after"])


def test_rename_survives_a_worker_restart(cluster: rh.Cluster) -> None:
    """The broker's rebuild specs move with the name: after the worker restarts, the object is
    rebuilt (from its constructor) under its new name, not the old one."""
    env = rh.env(name="rename_env")
    remote_cls = rh.module(ro.Calculator).to(cluster, env=env, name="rename_cls")
    calc = remote_cls(owner="x", name="renamed_before")
    calc.rename("renamed_after")
    pid = next(p["pid"] for p in cluster.processes() if p["env"] == "rename_env")
    os.kill(pid, 9)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = [p["pid"] for p in cluster.processes() if p["env"] == "rename_env"]
        if pids and pid not in pids:
            break
        time.sleep(0.05)
    assert calc.summer(1, 1) == 2  # rebuilt under the new name
    assert calc.remote.owner == "x"
    assert "renamed_before" not in cluster.keys()
    cluster.delete("rename_env")


def test_method_remote_keeps_the_result_there(cluster: rh.Cluster) -> None:
    remote_cls = rh.module(ro.Calculator).to(cluster, name="factory_cls")
    made = remote_cls.factory.remote(owner="made", run_name="made_calc")
    assert isinstance(made, rh.RemoteObject) and made.name == "made_calc"
    assert made.remote.owner == "made" and made.summer(1, 2) == 3
    assert made.system.config() == cluster.config()
    cluster.delete(["factory_cls", "made_calc"])


def test_unbound_module_instance_goes_with_its_state(cluster: rh.Cluster) -> None:
    local = rh.module(ro.Calculator)(owner="local")
    assert isinstance(local, rh.Module) and local.summer(1, 1) == 2  # used here as itself
    local.owner = "changed here"
    remote = local.to(cluster, name="sent_calc")
    assert remote.remote.owner == "changed here"
    # get_or_to finds it, state as it is on the cluster.
    remote.remote.owner = "changed there"
    again = rh.module(ro.Calculator)(owner="ignored").get_or_to(cluster, name="sent_calc")
    assert again.remote.owner == "changed there"
    # A class module's get_or_to: the one already there.
    first = rh.module(ro.Calculator).get_or_to(cluster, name="shared_cls")
    second = rh.module(ro.Calculator).get_or_to(cluster, name="shared_cls")
    assert first.name == second.name == "shared_cls" and second.double(3) == 6
    cluster.delete(["sent_calc", "shared_cls"])


def test_reserved_names_are_exactly_what_the_stub_defines() -> None:
    """One list (rhzmq._stubs.RESERVED) says which attributes a stub answers itself; a new
    public attribute on the stub without an entry there would shadow a remote one silently."""
    defined = {n for n in vars(rh.RemoteObject) if not n.startswith("_")}
    assert defined == set(RESERVED)
