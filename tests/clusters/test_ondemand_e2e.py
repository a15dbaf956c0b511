"""An on-demand cluster end to end, through the same code path as a cloud: the provider is a
libcloud driver whose machines are real sshd instances on 127.0.0.N (tests/loopback_driver.py).

create -> wait for SSH (host keys pinned: node 0's from its console, node 1's on first use) ->
bootstrap -> call functions on both nodes -> up_if_not again reconnects without creating ->
stop -> up_if_not starts the same machines at new addresses (host keys re-pinned by node id) ->
autostop: the head's reaper (shipped the driver module) destroys every machine and deletes the
key pair -> the saved cluster reads as torn down -> teardown finds nothing left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import loopback_driver
import pytest
from loopback_driver import POOL_VAR, write_pool
from sshd import SSHD, SSHHosts, free_port, processes_under, start_hosts, wait_no_processes

import rhzmq as rh

PROVIDER = "loopback_driver:LoopbackDriver"


@pytest.fixture
def pool(tmp_path: Path, rhzmq_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    machines: SSHHosts = start_hosts(tmp_path / "machines", 2)
    hosts = []
    for i, h in enumerate(machines.hosts):
        host_key = (machines.root / f"node{i}" / "host_ed25519.pub").read_text().split()
        hosts.append(
            {
                "address": h.address,
                "port": machines.port,
                "home": str(h.home),
                "sshd_pid": h.proc.pid,
                "host_key": f"{host_key[0]} {host_key[1]}",
                "console": i == 0,  # node 1's provider shows no console: trust on first use
                "node": None,
                # What start_node needs to boot the machine again (at another address).
                "config": str(machines.root / f"node{i}" / "sshd_config"),
                "sshd": SSHD,
            }
        )
    path = tmp_path / "pool.json"
    write_pool(path, hosts, os.environ.get("USER") or "root", machines.root / "authorized_keys")
    monkeypatch.setenv(POOL_VAR, str(path))  # how this process's driver finds the pool later
    yield path
    machines.stop()
    for h in json.loads(path.read_text())["hosts"]:  # sshds start_node started
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(h["sshd_pid"]), signal.SIGKILL)
    while loopback_driver.BOOTED:
        loopback_driver.BOOTED.pop().wait(timeout=10)
    for h in machines.hosts:  # after a failure: nothing of this test keeps running
        for line in processes_under(h.home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)


def test_create_bootstrap_call_autostop_destroys_the_machines(
    pool: Path, project: Path, capfd: pytest.CaptureFixture[str]
) -> None:

    args = {
        "instance_type": "CPU:2+",
        "provider": PROVIDER,
        "num_nodes": 2,
        "gateway_port": None,
        "server_port": free_port(["0.0.0.0"]),
        "autostop_mins": -1,
        # Given explicitly, so they travel to the head (in an owner-only file) for its autostop.
        "credentials": {"key": str(pool)},
    }
    c = rh.cluster("lo", **args)
    try:
        _run(c, args, pool, capfd)
    except BaseException:
        c.teardown()
        raise


def _run(
    c: rh.OnDemandCluster, args: dict[str, object], pool: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import jobs

    c.up_if_not()
    err = capfd.readouterr().err
    assert "CPU:2+ -> lo.small (2 vCPU, 2 GiB): $0.010/h x 2 nodes = $0.020/h" in err
    assert err.index("lo.small") < err.index("creating")
    # Nodes are created in parallel: node i is whichever machine its request got.
    data = json.loads(pool.read_text())
    data["hosts"].sort(key=lambda h: h["node"]["name"])
    assert [h["node"]["name"] for h in data["hosts"]] == ["rhzmq-lo-0", "rhzmq-lo-1"]
    assert c.hosts == [h["address"] for h in data["hosts"]]
    console = next(h["node"]["name"] for h in data["hosts"] if h["console"])
    first_use = next(h["node"]["name"] for h in data["hosts"] if not h["console"])
    assert f"[{console}] host key ssh-ed25519 pinned, from the provider's console" in err
    assert f"[{first_use}] host key ssh-ed25519 pinned, trusted on first use (no console)" in err
    known = (Path(os.environ["RHZMQ_HOME"]) / "clusters" / "lo" / "known_hosts").read_text()
    for h in data["hosts"]:
        assert f"[{h['address']}]:{h['port']} {h['host_key']}" in known
    assert [h["node"]["tags"] for h in data["hosts"]] == [{"rhzmq-cluster": "lo"}] * 2

    head = rh.function(jobs.where).to(c, name="where_head")
    far = rh.function(jobs.where).to(
        c, name="where_far", env=rh.env(name="far", compute={"node": 1})
    )
    assert head(1)["home"] == data["hosts"][0]["home"] and head(1)["index"] == "0"
    assert far(2)["home"] == data["hosts"][1]["home"] and far(2)["index"] == "1"

    # The same line again (another process would do the same): reconnects, creates nothing.
    capfd.readouterr()
    again = rh.cluster("lo", **args).up_if_not()
    err = capfd.readouterr().err
    assert "creating" not in err and err.count("nothing to do") == 2
    assert again.node_ids == c.node_ids
    assert head(3)["index"] == "0"

    # Stop: the machines power off (their homes, the disks, stay); the saved cluster says so.
    homes = [Path(h["home"]) for h in data["hosts"]]
    again.stop()
    assert [h["node"]["state"] for h in json.loads(pool.read_text())["hosts"]] == ["stopped"] * 2
    for home in homes:
        assert wait_no_processes(home, timeout=20) == [], f"{home} still runs"
    assert rh.cluster("lo").allocation["status"] == "stopped"
    (line,) = [x for x in rh.Cluster.list() if x["name"] == "lo"]
    assert line["status"] == "stopped" and line["nodes"] == 2 and line["uptime"] is None
    env = {**os.environ, "PYTHONPATH": str(Path(loopback_driver.__file__).parent)}
    listed = subprocess.run(
        [sys.executable, "-m", "rhzmq", "clusters"], capture_output=True, text=True, env=env
    )
    (row,) = [r for r in listed.stdout.splitlines() if r.startswith("lo ")]
    assert row.split()[1:4] == ["ondemand", "stopped", "2"], row

    # up_if_not() starts the same machines (new addresses, host keys checked against the ones
    # pinned per node id), bootstraps them again, and they work.
    capfd.readouterr()
    started = rh.cluster("lo", **args).up_if_not()
    err = capfd.readouterr().err
    moved = json.loads(pool.read_text())["hosts"]
    moved.sort(key=lambda h: h["node"]["name"])
    assert started.node_ids == c.node_ids and "creating" not in err
    assert started.hosts == [h["address"] for h in moved] != c.hosts
    for h in moved:
        name = h["node"]["name"]
        assert f"[{name}] starting again (same machine, same disk)" in err
        assert (
            f"[{name}] host key ssh-ed25519 re-pinned at [{h['address']}]:{h['port']}: "
            "the key pinned at creation (same node id)"
        ) in err
    known = (Path(os.environ["RHZMQ_HOME"]) / "clusters" / "lo" / "known_hosts").read_text()
    assert sorted(known.splitlines()) == sorted(
        f"[{h['address']}]:{h['port']} {h['host_key']}" for h in moved
    )  # the old addresses are no longer trusted
    head = rh.function(jobs.where).to(started, name="where_head")
    far = rh.function(jobs.where).to(
        started, name="where_far", env=rh.env(name="far", compute={"node": 1})
    )
    assert head(4)["home"] == moved[0]["home"] and far(5)["index"] == "1"
    again = started

    # Autostop: the head's reaper destroys every machine through the driver.
    again.keep_warm(0.05)  # 3 s idle
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = [h["node"]["state"] for h in json.loads(pool.read_text())["hosts"]]
        if states == ["terminated", "terminated"]:
            break
        time.sleep(0.5)
    assert states == ["terminated", "terminated"]
    for home in homes:
        assert wait_no_processes(home, timeout=20) == [], f"{home} still runs"
    for h in data["hosts"]:
        assert not _alive(int(h["sshd_pid"])), "a destroyed machine's sshd still runs"

    (line,) = [x for x in rh.Cluster.list() if x["name"] == "lo"]
    assert line["status"] == "torn down" and line["nodes"] == 0
    loaded = rh.cluster("lo")
    assert loaded.node_ids == [] and loaded.hosts == []
    # The reaper deleted the key pair too (this driver has no firewall): nothing lingers.
    assert json.loads(pool.read_text())["keys"] == {}
    assert loaded.allocation["status"] == "torn down"
    loaded.teardown()
    assert loaded.deleted == []
    for home in homes:
        assert processes_under(home) == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (the test started it, and has not reaped it yet) is gone as a machine.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"
