"""This machine's store of saved resources (issue 15's client side, without a registry): the same
model as the registry — versions, one namespace per type, history, rollback — so logging in to
one later changes no code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import remote_objects as ro

import rhzmq as rh
from rhzmq import _store


def test_every_save_is_a_version_and_rollback_restores(cluster: rh.Cluster) -> None:
    env = rh.env(name="versioned_env", reqs=["numpy"])
    env.save()
    env.reqs = ["numpy", "tqdm"]
    env.save()
    assert rh.env(name="versioned_env").reqs == ["numpy", "tqdm"]  # the latest
    history = env.history()
    assert [h["version"] for h in history] == [2, 1]
    assert history[0]["content_hash"] != history[1]["content_hash"]
    assert history[0]["author"] and history[0]["created_at"] > 0
    back = env.rollback(1)
    assert isinstance(back, rh.Env) and back.reqs == ["numpy"]
    assert [h["version"] for h in env.history()] == [3, 2, 1]
    assert env.history()[0]["rollback_of"] == 1
    assert rh.Env.load("versioned_env", version=2).reqs == ["numpy", "tqdm"]
    env.delete_configs()
    with pytest.raises(KeyError, match="no saved env 'versioned_env'"):
        rh.Env.load("versioned_env")


def test_types_have_their_own_names(cluster: rh.Cluster) -> None:
    """Saving a module 'ctr' no longer overwrites the env 'ctr'."""
    rh.env(name="ctr", env_vars={"A": "1"}).save()
    counter = ro.Counter(3).to(cluster, name="ctr")
    counter.save()  # a remote object saves like every resource (rh_save() still works)
    assert rh.env(name="ctr").env_vars == {"A": "1"}
    assert rh.module(name="ctr").incr(1) == 4
    with pytest.raises(KeyError, match="'ctr' is saved as: env, module"):
        rh.function(name="ctr")
    cluster.delete("ctr")


def test_saved_function_and_cluster_load_in_another_process(
    cluster: rh.Cluster, rhzmq_home: Path
) -> None:
    rh.function(ro.add).to(cluster, name="stored_add").save()
    out = subprocess.run(
        [sys.executable, "-c", "import rhzmq as rh; print(rh.function(name='stored_add')(2, 3))"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RHZMQ_HOME": str(rhzmq_home)},
        cwd=Path(__file__).parents[1],
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "5"
    # A file saved before versions existed still loads (as version 1).
    legacy = _store.resources_dir() / "old_env.json"
    legacy.write_text(json.dumps({"type": "env", "name": "old_env", "reqs": ["x"]}))
    assert rh.env(name="old_env").reqs == ["x"]


def test_sharing_needs_a_registry() -> None:
    env = rh.env(name="lonely", reqs=["numpy"]).save()
    with pytest.raises(rh.RegistryError, match="needs a registry"):
        env.share("bob")
    with pytest.raises(ValueError, match="invalid resource name"):
        rh.env(name="x").save("bad name!")


def test_cli_resources_on_this_machine(rhzmq_home: Path) -> None:
    rh.env(name="cli_env", reqs=["a"]).save()
    rh.env(name="cli_env", reqs=["b"]).save()

    def rhzmq(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "rhzmq", "resources", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "RHZMQ_HOME": str(rhzmq_home)},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "cli_env" in rhzmq("ls", "--type", "env")
    assert [line.split()[0] for line in rhzmq("history", "cli_env").splitlines()] == ["v2", "v1"]
    assert '"b"' in rhzmq("show", "cli_env") and '"a"' in rhzmq("show", "cli_env", "--version", "1")
    rhzmq("rollback", "cli_env", "1")
    assert rh.env(name="cli_env").reqs == ["a"]
    rhzmq("rm", "cli_env")
    assert "cli_env" not in rhzmq("ls")
