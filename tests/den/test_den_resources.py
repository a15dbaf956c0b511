"""Resources saved to a real registry through the library's own verbs (issue 15, client side):
alice saves her function and cluster and shares them, bob — another process with his own
token — loads and calls alice's function on alice's cluster, cannot write with a read share,
loses access at once when it is revoked; rollback, stale writes, `rhzmq login` and
`rhzmq resources`, and no token in any output. On SQLite and PostgreSQL (the ``den`` fixture).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import remote_objects as ro
from conftest import DenServer, run_as

import rhzmq as rh
from rhzmq import _store


def test_alice_shares_and_bob_calls_on_alices_cluster(
    den: DenServer, as_user: tuple[str, str, str, str], cluster: rh.Cluster, rhzmq_home: Path
) -> None:
    alice, _, bob, bob_token = as_user
    box = rh.cluster("local", gateway_port=0).save("box")  # the session's daemon, by name
    fn = rh.function(ro.add).to(box, name="den_add").save()
    assert fn._rh_saved["name"] == f"/{alice}/den_add" and fn._rh_saved["version"] == 1
    assert [h["version"] for h in fn.history()] == [1]
    lineage = _store.registry().load(f"/{alice}/den_add")[1]
    assert {(item["name"], item["version"]) for item in lineage["lineage"]} == {
        (f"/{alice}/box", 1)
    }

    fn.share(bob)  # read; the cluster not yet: loading says which share is missing
    out = run_as(
        den,
        bob_token,
        f"""
        try:
            rh.function(name="/{alice}/den_add")
        except rh.AccessDenied as exc:
            out["missing"] = str(exc)
        """,
        rhzmq_home,
    )
    assert f"runs on /{alice}/box" in str(out["missing"]) and "ask" in str(out["missing"])
    box.share(bob)
    assert {s["principal"] for s in fn.shared_with()} == {bob}
    out = run_as(
        den,
        bob_token,
        f"""
        f = rh.function(name="/{alice}/den_add")
        out["sum"] = f(2, 3)
        try:
            f.save()
        except rh.PermissionDenied as exc:
            out["write"] = type(exc).__name__ + ": " + str(exc)
        """,
        rhzmq_home,
    )
    assert out["sum"] == 5
    assert str(out["write"]).startswith("AccessDenied")

    fn.revoke(bob)
    out = run_as(
        den,
        bob_token,
        f"""
        try:
            rh.function(name="/{alice}/den_add")
        except KeyError as exc:
            out["gone"] = str(exc)
        """,
        rhzmq_home,
    )
    assert "den_add" in str(out["gone"])
    assert not any(t in den.read_log() for t in den.tokens)


def test_rollback_and_stale_writes(den: DenServer, as_user: tuple[str, str, str, str]) -> None:
    alice = as_user[0]
    env = rh.env(name="den_env", reqs=["numpy"]).save()
    env.reqs = ["numpy", "tqdm"]
    env.save()
    assert [h["version"] for h in env.history()] == [2, 1]
    back = env.rollback(1)
    assert back.reqs == ["numpy"] and [h["version"] for h in env.history()] == [3, 2, 1]
    # Two writers load version 3; the first saves, the second is refused, not lost silently.
    first, second = rh.Env.load(f"/{alice}/den_env"), rh.env(name="den_env")
    first.reqs = ["first"]
    first.save()
    second.reqs = ["second"]
    with pytest.raises(rh.StaleWrite):
        second.save()
    assert rh.env(name="den_env").reqs == ["first"]
    # The local store is still there, by its prefix.
    rh.env(name="den_env", reqs=["local"]).save("~/den_env")
    assert rh.env(name="~/den_env").reqs == ["local"]
    assert rh.env(name="den_env").reqs == ["first"]


def test_login_and_the_resources_command(
    den: DenServer,
    as_user: tuple[str, str, str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, _, bob, bob_token = as_user
    rh.env(name="cli_shared", reqs=["numpy"]).save().share(bob, access_level="write")
    home = tmp_path / "bob-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RHZMQ_DEN")}
    env["RHZMQ_HOME"] = str(home)

    def rhzmq(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "rhzmq", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        assert bob_token not in done.stdout + done.stderr
        return done.stdout

    assert f"as {bob}" in rhzmq("login", den.url, stdin=bob_token + "\n")
    config = home / "config.toml"
    assert config.stat().st_mode & 0o777 == 0o600
    listing = rhzmq("resources", "ls", "--shared")
    assert f"/{alice}/cli_shared" in listing and "write" in listing
    assert '"numpy"' in rhzmq("resources", "show", f"/{alice}/cli_shared")
    rhzmq("resources", "rollback", f"/{alice}/cli_shared", "1")  # write share: may roll back
    assert [
        line.split()[0]
        for line in rhzmq("resources", "history", f"/{alice}/cli_shared").splitlines()
    ] == ["v2", "v1"]
    rhzmq("logout")
    assert not config.exists()
