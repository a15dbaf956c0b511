"""SSH clusters against real OpenSSH servers: every "host" is an sshd on its own loopback address
with its own home (tests/sshd.py), bootstrapped for real (venv, wheel of this build, daemons).

Hosts 0-2 form the main three-host cluster; host 3 is a one-host cluster for autostop and, with
host 5, a cluster with tunnelled workers; host 4 has no Python on its PATH (a machine rhzmq
cannot use); host 6's SSH session sets RHZMQ_HOME (sshd's SetEnv), so its rhzmq lives elsewhere
than ~/.rhzmq.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import SECRET_VALUES
from sshd import (
    MAIN,
    NO_PYTHON,
    OWN_HOME,
    SOLO,
    TUNNEL_NODE,
    SSHHosts,
    free_port,
    processes_under,
    wait_no_processes,
)

import rhzmq as rh
from rhzmq.wire.build import build_id


def test_bootstrap_installs_this_build_everywhere(main_cluster: rh.SSHCluster) -> None:
    nodes = main_cluster.status()["nodes"]
    assert [n["index"] for n in nodes] == [0, 1, 2]
    assert {n["build"] for n in nodes} == {build_id()}
    assert [n["role"] for n in nodes] == ["head", "worker node", "worker node"]


def test_up_again_is_a_no_op(
    main_cluster: rh.SSHCluster, capfd: pytest.CaptureFixture[str]
) -> None:
    before = [n["pid"] for n in main_cluster.status()["nodes"]]
    main_cluster.up_if_not()
    err = capfd.readouterr().err
    assert err.count("nothing to do") == 3 and "installing" not in err
    assert [n["pid"] for n in main_cluster.status()["nodes"]] == before


def test_a_daemon_of_another_build_is_restarted(
    main_cluster: rh.SSHCluster, hosts: SSHHosts, capfd: pytest.CaptureFixture[str]
) -> None:
    import json

    before = [n["pid"] for n in main_cluster.status()["nodes"]]
    # Host 1's daemon says it runs an older build (as after an install without a restart).
    state_file = hosts.hosts[1].home / ".rhzmq" / "local" / "daemon.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "build": "0ld0ld0ld0ld"}))
    main_cluster.up_if_not()
    err = capfd.readouterr().err
    after = [n["pid"] for n in main_cluster.status()["nodes"]]
    assert after[0] == before[0] and after[2] == before[2] and after[1] != before[1]
    assert "installing" not in err and f"[{hosts.addresses[1]}] daemon up" in err
    main_cluster.restart_server()
    assert not set(before) & {n["pid"] for n in main_cluster.status()["nodes"]}


def test_function_placed_on_node_2_reports_where_it_ran(
    main_cluster: rh.SSHCluster,
    hosts: SSHHosts,
    project: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import jobs  # type: ignore[import-not-found]

    env = rh.env(name="third", compute={"node": 2})
    fn = rh.function(jobs.where).to(main_cluster, name="where2", env=env)
    result = fn(7)
    assert result["index"] == "2" and result["x"] == 7
    assert result["home"] == str(hosts.hosts[2].home)
    # imported from the synced copy on that host, not from this machine's project directory
    assert result["file"] == f"{hosts.hosts[2].home}/.rhzmq/code/myproj/jobs.py"
    out = capfd.readouterr()
    assert f"hello from {hosts.addresses[2]}" in out.out
    assert "a log record" in caplog.text  # re-emitted through this process's logging
    procs = main_cluster.processes()
    assert {p["node"] for p in procs if p["env"] == "third"} == {hosts.addresses[2]}
    main_cluster.delete("third")
    assert not [p for p in main_cluster.processes() if p["env"] == "third"]
    # The head named by its address, with a working_dir of this machine: its synced copy there.
    env = rh.env(name="at_head", compute={"node": hosts.addresses[0]}, working_dir=str(project))
    fn = rh.function(jobs.cwd).to(main_cluster, name="cwd_head", env=env)
    assert fn() == f"{hosts.hosts[0].home}/.rhzmq/code/myproj"
    main_cluster.delete("at_head")


def test_secrets_reach_a_node_host_and_go_with_its_env(
    main_cluster: rh.SSHCluster, hosts: SSHHosts
) -> None:
    """Issue 16: an env's secrets are written on the host its workers run on (owner-only, in
    that host's RHZMQ_HOME), and removed there when the env is deleted."""
    import jobs  # type: ignore[import-not-found]

    aws = rh.provider_secret(
        "aws",
        values={
            "access_key_id": SECRET_VALUES["aws_key"],
            "secret_access_key": SECRET_VALUES["aws_secret"],
        },
    )
    env = rh.env(name="secret_far", compute={"node": 2}, secrets=[aws])
    seen = rh.function(jobs.secret_file).to(main_cluster, name="secret_file", env=env)()
    assert seen == {
        "path": f"{hosts.hosts[2].home}/.rhzmq/secrets/secret_far/aws/credentials",
        "mode": 0o600,
        "has_key": True,
    }
    main_cluster.delete("secret_far")
    assert not Path(str(seen["path"])).exists()


def test_a_hung_worker_on_another_host_is_replaced(main_cluster: rh.SSHCluster) -> None:
    import signal

    import jobs

    env = rh.env(name="hangs", compute={"node": 1})
    fn = rh.function(jobs.value).to(main_cluster, name="value_hangs", env=env)
    assert fn() in ("v1", "v2")
    (old,) = [p["pid"] for p in main_cluster.processes() if p["env"] == "hangs"]
    os.kill(old, signal.SIGSTOP)  # hung: no heartbeats, and the head cannot kill it (not its host)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            now = [p["pid"] for p in main_cluster.processes() if p["env"] == "hangs"]
            if now and now != [old]:
                break
            time.sleep(0.5)
        assert now and now != [old], "the hung worker was not replaced"
        assert _gone(old), "the hung process was left running"
        assert fn() in ("v1", "v2")  # rebuilt from its spec on the new worker
    finally:
        if not _gone(old):
            os.kill(old, signal.SIGKILL)
    main_cluster.delete("hangs")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] == "Z"  # a zombie is gone, its parent reaps it


def test_exceptions_and_streams_cross_the_tunnel(main_cluster: rh.SSHCluster) -> None:
    import jobs

    fail = rh.function(jobs.fail).to(main_cluster)
    with pytest.raises(ValueError, match="bad input 3"):
        fail(3)
    count = rh.function(jobs.count).to(main_cluster)
    assert list(count(5)) == [0, 1, 2, 3, 4]
    counter = rh.module(jobs.Counter).to(main_cluster)(10, name="ctr")
    assert counter.add(5) == 15


@pytest.mark.anyio
async def test_async_calls_through_the_tunnel(main_cluster: rh.SSHCluster) -> None:
    import asyncio

    import jobs

    from rhzmq.wire.spin import SPIN

    where = await rh.function(jobs.where).ato(main_cluster)
    mean_wait = SPIN.mean_wait
    results = await asyncio.gather(*(where.acall(i) for i in range(20)))
    assert [r["x"] for r in results] == list(range(20))
    # No spin-waiting through the tunnel: its forwarding runs on a thread of this process,
    # which a spinning waiter would keep from the GIL (rhzmq.wire.spin). Nor do its waits
    # count in how long this process's waits last (a local cluster's calls would stop spinning).
    assert not (await main_cluster.aclient()).spin
    assert SPIN.mean_wait == mean_wait


def test_a_dropped_ssh_connection_is_remade(main_cluster: rh.SSHCluster) -> None:
    import jobs

    from rhzmq._portal import run_sync

    fn = rh.function(jobs.where).to(main_cluster, name="where_drop")
    assert fn(1)["x"] == 1
    tunnel = main_cluster._tunnel
    assert tunnel is not None

    async def drop() -> None:
        tunnel.conn.close()
        await tunnel.conn.wait_closed()

    run_sync(drop)
    assert fn(2)["x"] == 2  # a new connection and forwards, transparently
    assert main_cluster._tunnel is not None and main_cluster._tunnel.conn is not tunnel.conn


def test_changed_file_is_synced_and_ignored_files_are_not(
    main_cluster: rh.SSHCluster, project: Path
) -> None:
    import jobs

    fn = rh.function(jobs.value).to(main_cluster)
    assert fn() == "v1"
    source = project / "jobs.py"
    source.write_text(source.read_text().replace('VALUE = "v1"', 'VALUE = "v2"'))
    os.utime(source, (time.time() + 2, time.time() + 2))  # a later mtime than the first sync
    fn = rh.function(jobs.value).to(main_cluster)
    assert fn() == "v2"
    code = "~/.rhzmq/code/myproj"
    assert main_cluster.run_bash(f"test -f {code}/jobs.py") == [0, 0, 0]
    assert main_cluster.run_bash(f"test -e {code}/run.log") == [1, 1, 1]  # .gitignore
    assert main_cluster.run_bash(f"test -e {code}/data") == [1, 1, 1]  # .rhzmqignore


def test_sync_over_the_limit_names_the_biggest_files(
    main_cluster: rh.SSHCluster, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jobs

    (project / "weights.pt").write_bytes(b"\1" * 300_000)
    monkeypatch.setenv("RHZMQ_SYNC_LIMIT_MB", "0.1")
    try:
        with pytest.raises(rh.ClusterError, match=r"weights\.pt \(0\.3 MB\).*RHZMQ_SYNC_LIMIT_MB"):
            rh.function(jobs.value).to(main_cluster, name="too_big")
    finally:
        (project / "weights.pt").unlink()


def test_run_bash_on_all_nodes(
    main_cluster: rh.SSHCluster, hosts: SSHHosts, capfd: pytest.CaptureFixture[str]
) -> None:
    codes = main_cluster.run_bash('echo "home is $HOME"; exit 3')
    assert codes == [3, 3, 3]
    out = capfd.readouterr().out
    for i in MAIN:
        assert f"[{hosts.addresses[i]}] home is {hosts.hosts[i].home}" in out
    assert main_cluster.run_bash("true", node=hosts.addresses[1]) == [0]
    with pytest.raises(ValueError, match="no node 7"):
        main_cluster.run_bash("true", node=7)


def test_rsync_up_and_down_and_ssh(
    main_cluster: rh.SSHCluster, tmp_path: Path, hosts: SSHHosts
) -> None:
    src = tmp_path / "payload"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_text("alpha")
    main_cluster.rsync(str(src), "~/payload", node=1)
    assert (hosts.hosts[1].home / "payload" / "sub" / "a.txt").read_text() == "alpha"
    assert not (hosts.hosts[2].home / "payload").exists()
    back = tmp_path / "back"
    main_cluster.rsync("~/payload", str(back), up=False, node=1)
    assert (back / "sub" / "a.txt").read_text() == "alpha"
    assert main_cluster.ssh(node=2, command="test -d ~/payload") == 1
    assert main_cluster.ssh(node=1, command="test -d ~/payload") == 0


def test_reconnect_by_name_from_a_fresh_process(main_cluster: rh.SSHCluster, project: Path) -> None:
    import jobs

    main_cluster.save()
    rh.function(jobs.where).to(main_cluster, name="saved_where").save()
    script = textwrap.dedent(
        """
        import rhzmq as rh
        c = rh.cluster(name="trio")
        assert c.is_up()
        print(rh.function(name="saved_where")(41)["x"], c.keys().count("saved_where"))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(project)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-2:] == ["41", "1"]
    assert "installing" not in proc.stderr and "starting" not in proc.stderr
    # and the command line reaches it by name too
    cli = [sys.executable, "-m", "rhzmq.cli"]
    out = subprocess.run([*cli, "status", "-c", "trio"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    nodes = [line for line in out.stdout.splitlines() if line.startswith("node ")]
    assert len(nodes) == 3 and "head" in nodes[0]
    keys = subprocess.run([*cli, "keys", "-c", "trio"], capture_output=True, text=True).stdout
    assert "saved_where" in keys.split()
    logs = subprocess.run(
        [*cli, "logs", "-c", "trio", "--node", "2", "-n", "5"], capture_output=True, text=True
    ).stdout
    lines = [line for line in logs.splitlines() if line.strip() != "[127.0.0.4]"]
    assert 1 <= len(lines) <= 5 and all(line.startswith("[127.0.0.4] ") for line in lines)
    assert "rhzmq.daemon" in logs  # node 2's own daemon log


def test_configs_round_trip_for_every_resource_type(main_cluster: rh.SSHCluster) -> None:
    import jobs

    cluster = rh.Resource.from_config(main_cluster.config())
    assert isinstance(cluster, rh.SSHCluster) and cluster.config() == main_cluster.config()
    env = rh.env(name="e1", reqs=["numpy"], env_vars={"A": "1"}, secrets={"TOKEN": "s3cret"})
    assert rh.Resource.from_config(env.config()).config() == env.config()
    assert "s3cret" not in str(env.config())
    fn = rh.function(jobs.value).to(main_cluster, name="cfg_fn")
    again = rh.Resource.from_config(fn.config())
    assert again.config() == fn.config() and again() == fn()
    obj = rh.module(jobs.Counter).to(main_cluster)(1, name="cfg_ctr")
    obj_again = rh.Resource.from_config(obj.rh_config())
    assert obj_again.add(1) == 2 and obj.add(1) == 3
    local = rh.cluster("local", gateway_port=None)
    assert rh.Resource.from_config(local.config()).config() == local.config()


def test_gateway_through_the_tunnel(main_cluster: rh.SSHCluster) -> None:
    import httpx
    import jobs

    rh.function(jobs.value).to(main_cluster, name="http_value")
    url = main_cluster.gateway_url
    assert url is not None and url.startswith("http://127.0.0.1:")
    assert httpx.post(f"{url}/http_value", json={}, timeout=10).status_code == 401
    response = httpx.post(
        f"{url}/http_value", json={}, headers=main_cluster.gateway_headers(), timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"result": "v2"}  # the synced edit of the earlier test


def test_idle_gap_then_long_calls(main_cluster: rh.SSHCluster) -> None:
    """Issue 11: a call longer than a heartbeat interval after the client sat idle for longer
    than the liveness period failed with 'nothing heard for 3 s'."""
    import asyncio

    import jobs

    nap = rh.function(jobs.nap).to(main_cluster, name="nap_idle")
    assert nap(1.5) == 1.5
    time.sleep(4)  # idle: no call pending, so no pings
    assert nap(1.5) == 1.5

    async def from_asyncio() -> list[float]:
        await asyncio.sleep(4)
        return list(await asyncio.gather(nap.acall(1.2), nap.acall(0.1)))

    assert asyncio.run(from_asyncio()) == [1.2, 0.1]


def test_refused_curve_handshakes_say_why(main_cluster: rh.SSHCluster, tmp_path: Path) -> None:
    """A key the head does not list, or a wrong server key, is an AuthenticationError naming the
    cause at once, not 'no broker answered' after the connect timeout."""
    import asyncio

    import zmq.auth

    from rhzmq.wire.client import Client

    zmq.auth.create_certificates(tmp_path, "stranger")
    public, secret = zmq.auth.load_certificate(tmp_path / "stranger.key_secret")
    assert secret is not None
    good = main_cluster.curve_keys()
    endpoint = main_cluster.broker_endpoint

    async def connect(keys: dict[str, bytes]) -> float:
        client = Client(endpoint, keys)
        started = time.monotonic()
        try:
            await client.ensure_connected()
        finally:
            client.close()
        return time.monotonic() - started

    with pytest.raises(rh.AuthenticationError, match="not on the broker's allow-list") as info:
        asyncio.run(connect({**good, "public": public, "secret": secret}))
    assert "restart_server" in str(info.value)
    with pytest.raises(rh.AuthenticationError, match="does not match the broker's"):
        asyncio.run(connect({**good, "server": public}))
    assert asyncio.run(connect(good)) < 5  # and the right keys still get in


def test_one_home_per_host(hosts: SSHHosts, project: Path) -> None:
    """Issue 11: a host whose SSH session sets RHZMQ_HOME. The client used to write keys and
    token under ~/.rhzmq while the daemon read them from RHZMQ_HOME, so the head refused the
    client's key. Every path now derives from the host's effective RHZMQ_HOME."""
    import jobs

    host = hosts.hosts[OWN_HOME]
    own = host.home.parent / "rh-home"
    solo = rh.cluster(
        name="own-home",
        host=hosts.addresses[OWN_HOME],
        ssh_creds=hosts.creds(),
        server_port=free_port(["0.0.0.0"]),
        gateway_port=0,
        autostop_mins=-1,
    )
    try:
        solo.up_if_not()
        fn = rh.function(jobs.where).to(solo, name="where_home")
        assert fn(1)["file"] == f"{own}/code/myproj/jobs.py"
        for path in ("venv/bin/python", "local/daemon.json", "local/curve/gateway.token"):
            assert (own / path).exists(), path
        assert not (host.home / ".rhzmq").exists()  # nothing went to the default place
        url = solo.gateway_url
        assert url is not None
        import httpx

        answer = httpx.post(f"{url}/where_home", json={"args": [2]}, headers=solo.gateway_headers())
        assert answer.status_code == 200 and answer.json()["result"]["x"] == 2
    finally:
        solo.teardown()
    assert wait_no_processes(own) == []


# -- failures -----------------------------------------------------------------------------------


def test_unreachable_host_is_named(hosts: SSHHosts) -> None:
    creds = {**hosts.creds(), "port": free_port(["127.0.0.9"])}
    c = rh.cluster(name="nowhere", host="127.0.0.9", ssh_creds=creds)
    with pytest.raises(rh.ClusterError, match=r"cannot reach root@127\.0\.0\.9:\d+ over SSH"):
        c.up_if_not()


def test_refused_key_is_named(hosts: SSHHosts, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    creds = {**hosts.creds(), "key": str(other)}
    c = rh.cluster(name="refused", host=hosts.addresses[SOLO], ssh_creds=creds)
    with pytest.raises(rh.ClusterError, match=r"refused the login.*authorized_keys"):
        c.up_if_not()


def test_host_without_python_fails_before_any_daemon_starts(hosts: SSHHosts) -> None:
    c = rh.cluster(
        name="half",
        host=[hosts.addresses[SOLO], hosts.addresses[NO_PYTHON]],
        ssh_creds=hosts.creds(),
        server_port=free_port(["0.0.0.0"]),
        gateway_port=None,
    )
    with pytest.raises(rh.ClusterError, match=rf"{hosts.addresses[NO_PYTHON]} has no Python 3\.11"):
        c.up_if_not()
    assert processes_under(hosts.hosts[SOLO].home) == []  # the good host was not started


def _tunnelled_pair(hosts: SSHHosts, name: str) -> tuple[rh.SSHCluster, int]:
    """Hosts 3 and 5 as a two-host cluster whose workers reach the head through SSH (not up
    yet), and its server port."""
    port = free_port(["127.0.0.1"])
    while free_port(["127.0.0.1"]) == port + 1:  # the node side listens on port + 1
        port = free_port(["127.0.0.1"])
    pair = rh.cluster(
        name=name,
        host=[hosts.addresses[SOLO], hosts.addresses[TUNNEL_NODE]],
        ssh_creds=hosts.creds(),
        server_port=port,
        gateway_port=None,
        autostop_mins=-1,
        tunnel_workers=True,
    )
    return pair, port


def test_tunnel_workers_reach_the_head_through_ssh(hosts: SSHHosts, project: Path) -> None:
    """With tunnel_workers the head's broker listens on loopback only; the other host's workers
    come through an SSH forward (hosts 3 and 4 share this machine's loopback: two hosts only)."""
    import jobs

    pair, port = _tunnelled_pair(hosts, "tunnelled")
    try:
        pair.up_if_not()
        fn = rh.function(jobs.where).to(
            pair, name="tunnelled_where", env=rh.env(name="far", compute={"node": 1})
        )
        assert fn(3)["index"] == "1"
        status = pair.status()
        assert [e for e in status["endpoints"] if e.startswith("tcp://")] == [
            f"tcp://127.0.0.1:{port}"
        ]
    finally:
        pair.teardown()
    for i in (SOLO, TUNNEL_NODE):
        assert wait_no_processes(hosts.hosts[i].home) == []


# -- autostop -------------------------------------------------------------------------------------


def test_autostop_waits_for_calls_and_pause_then_fires_on_every_host(
    hosts: SSHHosts, project: Path
) -> None:
    import jobs

    pair = rh.cluster(
        name="idle",
        host=[hosts.addresses[SOLO], hosts.addresses[TUNNEL_NODE]],
        ssh_creds=hosts.creds(),
        server_port=free_port(["0.0.0.0"]),
        gateway_port=None,
        autostop_mins=0.05,  # 3 s
    ).up_if_not()
    homes = [hosts.hosts[SOLO].home, hosts.hosts[TUNNEL_NODE].home]
    try:
        # On the second host, whose daemon polls the head (see _reap_unregistered): polling
        # must not count as activity.
        nap = rh.function(jobs.nap).to(pair, env=rh.env(name="napper", compute={"node": 1}))
        assert nap(5) == 5  # a call running longer than the autostop period keeps it up
        with pair.pause_autostop():
            time.sleep(5)
            assert pair.is_up()
        assert pair.is_up()
        for home in homes:
            assert wait_no_processes(home, timeout=30) == [], f"{home} still runs"
        assert not pair.is_up()
    finally:
        pair.teardown()
    for home in homes:
        assert processes_under(home) == []


def _node_keys(cluster: rh.SSHCluster, index: int) -> dict[str, bytes]:
    """Host ``index``'s own CURVE keys, as that host holds them (what an attacker who took it
    over has)."""
    import zmq.auth

    from rhzmq.clusters.ssh.keys import ClusterKeys

    root = ClusterKeys(cluster.name).directory()
    public, secret = zmq.auth.load_certificate(root / f"node-{index}.key_secret")
    assert secret is not None
    return {**cluster.curve_keys(), "public": public, "secret": secret}


def test_a_compromised_node_cannot_call_the_head_or_take_other_hosts(
    main_cluster: rh.SSHCluster,
) -> None:
    """Issue 13, finding 3: every host held the one shared ``nodes`` key, so a host someone took
    over could call the head's objects (code run as the owner there) and register as any
    worker. Now each host has its own key, whose role may only serve what is placed on it."""
    import asyncio

    import jobs
    import zmq

    from rhzmq.wire.client import Client, call_meta
    from rhzmq.wire.protocol import Cmd, node_agent, pack_header, pack_meta
    from rhzmq.wire.version import PROTOCOL_VERSION

    head_fn = rh.function(jobs.where).to(main_cluster, name="head_where")
    third = rh.function(jobs.where).to(
        main_cluster, name="third_where", env=rh.env(name="third", compute={"node": 2})
    )
    agents = {w["name"]: w["pid"] for w in main_cluster.status()["workers"]}
    keys = _node_keys(main_cluster, 1)

    async def as_node_1() -> dict[str, object]:
        client = Client(main_cluster.broker_endpoint, keys)
        try:
            with pytest.raises(rh.PermissionDenied, match="may not call objects"):
                await client.call(b"head_where", call_meta("__call__"), (1,))
            with pytest.raises(rh.PermissionDenied, match="may not send SHUTDOWN"):
                await client.control(Cmd.SHUTDOWN, timeout=10)
            status: dict[str, object] = await client.control(Cmd.STATUS, timeout=10)
            return status
        finally:
            client.close()

    status = asyncio.run(as_node_1())
    assert {w["name"] for w in status["workers"]} == {node_agent(1)}  # type: ignore[attr-defined]
    # It registers as node 2's agent and as node 2's environment, then stays: ignored.
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.curve_secretkey, sock.curve_publickey = keys["secret"], keys["public"]
    sock.curve_serverkey = keys["server"]
    sock.connect(main_cluster.broker_endpoint)
    try:
        for name, group in (
            (node_agent(2), "__node__"),
            ("third", "third"),
            (node_agent(0), "__node__"),
        ):
            meta = {"name": name, "group": group, "pid": 1, "protocol": PROTOCOL_VERSION}
            objects = [name] if name.startswith("__") else ["third_where"]
            frames = [
                pack_header(Cmd.READY, 0, 0, name.encode()),
                b"",
                pack_meta({**meta, "objects": objects}),
            ]
            sock.send_multipart(frames)
        time.sleep(1.5)
        after = {w["name"]: w["pid"] for w in main_cluster.status()["workers"]}
        assert after == agents
        assert third(5)["index"] == "2" and head_fn(5)["index"] == "0"
    finally:
        sock.close(linger=0)


def test_a_revoked_node_is_dropped_and_refused(hosts: SSHHosts, project: Path) -> None:
    """revoke_node takes a host's key off the head's allow-list: its workers are dropped within
    a heartbeat or two, its key no longer gets in, and the next restart gives it a new key."""
    import asyncio

    import jobs

    from rhzmq.wire.client import Client

    pair, _ = _tunnelled_pair(hosts, "revoking")
    try:
        pair.up_if_not()
        far = rh.function(jobs.where).to(
            pair, name="far_where", env=rh.env(name="far", compute={"node": 1})
        )
        assert far(1)["index"] == "1"
        old_keys = _node_keys(pair, 1)
        pair.revoke_node(1)
        deadline = time.monotonic() + 10
        while "far_where" in pair.keys() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "far_where" not in pair.keys()
        assert not [
            w for w in pair.status()["workers"] if w["node"] == hosts.addresses[TUNNEL_NODE]
        ]
        with pytest.raises(rh.ObjectNotFound):
            far(1)

        async def connect() -> None:
            client = Client(pair.broker_endpoint, old_keys)
            try:
                await client.ensure_connected()
            finally:
                client.close()

        with pytest.raises(rh.AuthenticationError):
            asyncio.run(connect())
        pair.restart_server()
        assert _node_keys(pair, 1)["public"] != old_keys["public"]
        far = rh.function(jobs.where).to(
            pair, name="far_where", env=rh.env(name="far", compute={"node": 1})
        )
        assert far(2)["index"] == "1"
    finally:
        pair.teardown()
    for i in (SOLO, TUNNEL_NODE):
        assert wait_no_processes(hosts.hosts[i].home) == []
