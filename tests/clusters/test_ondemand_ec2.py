"""On-demand clusters against EC2's real wire protocol: libcloud's own EC2 driver talking HTTP
to a moto server on loopback (tests/moto_ec2.py), started for this module and stopped by PID.
No cloud account: moto takes any credentials, except on the second server, which checks them.

Every check of what was created reads it back with a separate, plain libcloud driver, as an
operator would with the AWS console.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import moto_ec2
import pytest
from libcloud.compute.providers import get_driver
from sshd import free_port

import rhzmq as rh
from rhzmq.clusters.ondemand import providers, reaper, sizes

REGION = "us-east-1"
CREDS = {"key": "AKIAEXAMPLEKEY", "secret": "example-secret"}


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    port = free_port(["127.0.0.1"])
    proc = moto_ec2.start(port)
    yield f"http://127.0.0.1:{port}"
    moto_ec2.stop(proc)
    assert proc.poll() is not None


def _ec2(url: str) -> Any:
    port = int(url.rsplit(":", 1)[1])
    cls = get_driver("ec2")
    return cls(
        "AKIAOPERATOR",
        "x",
        region=REGION,
        host="127.0.0.1",
        port=port,
        secure=False,
        signature_version="4",
    )


def _image(url: str) -> str:
    return str(_ec2(url).list_images()[0].id)


@pytest.fixture
def aws_env(moto: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials and endpoint where AWS's tools keep them (the variables), none in files."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", moto)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    return moto


def _cluster(url: str, name: str, **kwargs: Any) -> rh.OnDemandCluster:
    args: dict[str, Any] = {
        "instance_type": "A10G:1",
        "provider": "aws",
        "region": REGION,
        "image_id": _image(url),
        **kwargs,
    }
    c = rh.cluster(name, **args)
    assert isinstance(c, rh.OnDemandCluster)
    return c


def _rhzmq(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RHZMQ_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "rhzmq", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_instance_types_resolve_to_the_cheapest_size() -> None:
    ec2 = get_driver("ec2")("k", "s", region=REGION)
    available = ec2.list_sizes()  # libcloud's own table and prices: no request

    def pick(text: str, n: int = 1) -> sizes.Choice:
        return sizes.resolve(sizes.parse(text), available, "aws", REGION, n)

    assert pick("A10G:1").size.id == "g5.xlarge"
    assert pick("a10g").size.id == "g5.xlarge"  # one, whatever the case
    assert pick("A100:8").size.id == "p4d.24xlarge"
    assert pick("T4").size.id == "g4dn.xlarge"
    four = pick("CPU:4+")
    assert sizes.vcpus(four.size) >= 4 and sizes.gpus(four.size) == 0  # type: ignore[operator]
    assert not sizes.is_arm(four.size)  # a1 and t4g cost less, but are ARM: not for x86 images
    cheaper = [
        s
        for s in available
        if sizes.price_of(s)
        and sizes.gpus(s) == 0
        and not sizes.is_arm(s)
        and (sizes.vcpus(s) or 0) >= 4
        and sizes.price_of(s) < four.price  # type: ignore[operator]
    ]
    assert cheaper == []
    big = pick("CPU:8+ memory:32+")
    assert sizes.vcpus(big.size) >= 8 and big.size.ram >= 32 * 1024  # type: ignore[operator]
    assert pick("m5.large").size.id == "m5.large"
    line = pick("A10G:1", 2).describe()
    price = float(pick("A10G:1").size.price)
    assert f"g5.xlarge (4 vCPU, 16 GiB, 1 GPU): ${price:.3f}/h x 2 nodes" in line
    assert f"= ${2 * price:.3f}/h" in line
    with pytest.raises(rh.ClusterError, match=r"unknown instance_type 'Z99:1'.*A10G.*CPU:4\+"):
        pick("Z99:1")
    with pytest.raises(rh.ClusterError, match=r"no A10G:3 size.*comes 1, 4, 8 per machine"):
        pick("A10G:3")
    with pytest.raises(rh.ClusterError, match="H100 is not offered on azure"):
        sizes.resolve(sizes.parse("H100:8"), available, "azure", None, 1)


def test_provision_creates_what_it_says_and_teardown_deletes_all_of_it(
    aws_env: str, rhzmq_home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    moto = aws_env
    c = _cluster(moto, "gpu-pair", num_nodes=2, use_spot=True, disk_size=120)
    nodes = c.provision()
    err = capfd.readouterr().err
    ec2 = _ec2(moto)
    price = next(s.price for s in ec2.list_sizes() if s.id == "g5.xlarge")
    assert f"A10G:1 -> g5.xlarge (4 vCPU, 16 GiB, 1 GPU): ${price:.3f}/h x 2 nodes" in err
    assert err.index("g5.xlarge") < err.index("creating")  # the cost before anything is made

    seen = ec2.list_nodes(ex_filters={"tag:rhzmq-cluster": "gpu-pair"})
    assert sorted(n.id for n in seen) == sorted(n.id for n in nodes) and len(seen) == 2
    assert sorted(n.name for n in seen) == ["rhzmq-gpu-pair-0", "rhzmq-gpu-pair-1"]
    for n in seen:
        assert n.extra["instance_type"] == "g5.xlarge"
        assert n.extra["instance_lifecycle"] == "spot"  # a spot request, not on-demand
        assert n.extra["availability"].startswith(REGION)
        assert n.extra["key_name"] == "rhzmq-gpu-pair"
        assert [g["group_name"] for g in n.extra["groups"]] == ["rhzmq-gpu-pair"]
        assert n.extra["tags"]["rhzmq-cluster"] == "gpu-pair"
    (key,) = [k for k in ec2.list_key_pairs() if k.name == "rhzmq-gpu-pair"]
    ours = (rhzmq_home / "clusters" / "gpu-pair" / "ssh_key.pub").read_text().split()
    assert ours[0] == "ssh-rsa" and key.fingerprint
    assert oct((rhzmq_home / "clusters" / "gpu-pair" / "ssh_key").stat().st_mode & 0o777) == "0o600"
    (group,) = ec2.ex_get_security_groups(filters={"tag:rhzmq-cluster": "gpu-pair"})
    rules = {(r["from_port"], r["to_port"]): r for r in group.ingress_rules}
    assert set(rules) == {("22", "22"), (str(c.server_port), str(c.server_port + 1))}
    assert rules[("22", "22")]["cidr_ips"] == ["0.0.0.0/0"]  # SSH: the only door from outside
    broker = rules[(str(c.server_port), str(c.server_port + 1))]
    assert broker["cidr_ips"] == [] and broker["group_pairs"][0]["group_id"] == group.id

    # Saved at once, so another process can list it and tear it down.
    (line,) = [x for x in rh.Cluster.list() if x["name"] == "gpu-pair"]
    assert line["kind"] == "ondemand" and line["status"] == "up" and line["nodes"] == 2
    assert line["instance_type"] == "A10G:1 (g5.xlarge)" and line["cost"] is not None
    again = rh.cluster("gpu-pair")
    assert again.node_ids == [n.id for n in nodes]

    # From a shell, as a user would: list, then tear it down by name.
    listed = _rhzmq(rhzmq_home, "clusters")
    (row,) = [r for r in listed.stdout.splitlines() if r.startswith("gpu-pair ")]
    assert row.split()[1:4] == ["ondemand", "up", "2"] and "A10G:1 (g5.xlarge)" in row
    down = _rhzmq(rhzmq_home, "down", "gpu-pair")
    assert down.returncode == 0 and down.stdout.strip() == "gpu-pair: down", down.stderr
    err = down.stderr
    for n in nodes:
        assert f"node {n.name} ({n.id})" in err
    assert f"security group rhzmq-gpu-pair ({group.id})" in err and "key pair rhzmq-gpu-pair" in err
    assert ec2.list_nodes(ex_filters={"tag:rhzmq-cluster": "gpu-pair"}) == [] or all(
        n.state == "terminated"
        for n in ec2.list_nodes(ex_filters={"tag:rhzmq-cluster": "gpu-pair"})
    )
    assert [k for k in ec2.list_key_pairs() if k.name == "rhzmq-gpu-pair"] == []
    assert ec2.ex_get_security_groups(filters={"tag:rhzmq-cluster": "gpu-pair"}) == []
    (line,) = [x for x in rh.Cluster.list() if x["name"] == "gpu-pair"]
    assert line["status"] == "torn down" and line["nodes"] == 0
    assert again.node_ids == [n.id for n in nodes]  # an older handle; the saved one is empty
    assert rh.cluster("gpu-pair").node_ids == []


def test_autostop_terminates_every_node_through_the_api(moto: str, rhzmq_home: Path) -> None:
    """What the head runs after autostop (rhzmq.clusters.ondemand.reaper), given the spec the
    client writes to the head: the nodes are terminated, the head last."""
    c = _cluster(
        moto,
        "idle-three",
        instance_type="CPU:2+",
        num_nodes=3,
        credentials=CREDS,
        endpoint_url=moto,
    )
    nodes = c.provision()
    spec = c.reaper_spec()
    assert spec["nodes"] == [n.id for n in nodes] and spec["credentials"]["args"] == [
        CREDS["key"],
        CREDS["secret"],
    ]
    ec2 = _ec2(moto)
    (group,) = ec2.ex_get_security_groups(filters={"tag:rhzmq-cluster": "idle-three"})
    done = reaper.terminate(spec, poll=0.2)
    assert done == [
        *(f"{n.name} ({n.id})" for n in (nodes[1], nodes[2])),
        f"security group rhzmq-idle-three ({group.id})",
        "key pair rhzmq-idle-three",
        f"{nodes[0].name} ({nodes[0].id})",  # the head, last
    ]
    after = {n.id: n for n in ec2.list_nodes(ex_node_ids=[n.id for n in nodes])}
    assert {n.state for n in after.values()} == {"terminated"}
    # The head left the group before it was deleted (EC2 refuses to delete a group in use;
    # moto does not model that refusal, so the reaper's retry is not exercised here).
    assert [g["group_name"] for g in after[nodes[0].id].extra["groups"]] == ["default"]
    assert [g["group_name"] for g in after[nodes[1].id].extra["groups"]] == ["rhzmq-idle-three"]
    # Nothing lingers: no group, no key pair.
    assert ec2.ex_get_security_groups(filters={"tag:rhzmq-cluster": "idle-three"}) == []
    assert [k for k in ec2.list_key_pairs() if k.name == "rhzmq-idle-three"] == []
    assert reaper.terminate(spec) == []  # nothing left: nothing done
    # The client's saved cluster then reads as torn down; teardown finds nothing left.
    loaded = rh.cluster("idle-three", credentials=CREDS)
    assert loaded.summary()["status"] == "torn down"
    assert rh.cluster("idle-three", credentials=CREDS).node_ids == []
    assert rh.cluster("idle-three", credentials=CREDS).allocation["status"] == "torn down"
    loaded.teardown()
    assert loaded.deleted == []


def test_missing_and_refused_credentials_say_where_rhzmq_looked(
    moto: str, rhzmq_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    c = rh.cluster("nocreds", instance_type="CPU:2+", provider="aws", region=REGION)
    with pytest.raises(rh.ClusterError) as err:
        c.provision()
    message = str(err.value)
    assert "provider 'aws'" in message and "AWS_ACCESS_KEY_ID" in message
    assert f"[default] in {tmp_path / 'credentials'}" in message and "aws configure" in message

    # The standard places: ~/.aws/credentials (a profile), then the variables win.
    (tmp_path / "credentials").write_text(
        "[work]\naws_access_key_id = AKIAFROMFILE\naws_secret_access_key = s3cret\n"
    )
    monkeypatch.setenv("AWS_PROFILE", "work")
    found = providers.credentials("aws", endpoint_url=moto)
    assert found.args == ("AKIAFROMFILE", "s3cret") and "[work] in" in found.source
    assert "AKIAFROMFILE" not in repr(found) and "s3cret" not in repr(found)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", moto)
    found = providers.credentials("aws")
    assert found.args == ("AKIAFROMENV", "envsecret") and found.kwargs["port"] == int(
        moto.rsplit(":", 1)[1]
    )
    fromenv = rh.cluster("fromenv", instance_type="CPU:2+", provider="aws", region=REGION)
    assert fromenv.cloud().nodes("fromenv") == []  # the variables reach moto

    # A server that checks credentials refuses these: the documented error, nothing created.
    port = free_port(["127.0.0.1"])
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"  # moto: authenticate every request
    try:
        strict = moto_ec2.start(port)
    finally:
        del os.environ["INITIAL_NO_AUTH_ACTION_COUNT"]
    try:
        bad = _cluster(
            moto,
            "refused",
            endpoint_url=f"http://127.0.0.1:{port}",
            image_id=None,
            credentials=CREDS,
        )
        with pytest.raises(
            rh.ClusterError, match=r"aws refused the credentials from credentials=\{\.\.\.\}"
        ):
            bad.provision()
    finally:
        moto_ec2.stop(strict)


def test_an_unknown_instance_type_creates_nothing(aws_env: str, rhzmq_home: Path) -> None:
    moto = aws_env
    c = _cluster(moto, "typo", instance_type="g5.xxlarge")
    with pytest.raises(rh.ClusterError, match=r"unknown instance_type 'g5.xxlarge'.*g5.xlarge"):
        c.provision()
    ec2 = _ec2(moto)
    assert ec2.list_nodes(ex_filters={"tag:rhzmq-cluster": "typo"}) == []
    assert [k for k in ec2.list_key_pairs() if k.name == "rhzmq-typo"] == []
    with pytest.raises(rh.ClusterError, match="needs instance_type="):
        rh.ondemand_cluster("half", provider="aws")


def test_gcp_and_azure_credentials_name_their_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", *providers._AZURE):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(rh.ClusterError, match=r"provider 'gcp'.*GOOGLE_APPLICATION_CREDENTIALS"):
        providers.credentials("gcp")
    key = tmp_path / "sa.json"
    key.write_text('{"client_email": "sa@p.iam.gserviceaccount.com", "project_id": "p"}')
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    found = providers.credentials("gcp")
    assert found.args == ("sa@p.iam.gserviceaccount.com", str(key))
    assert found.kwargs["project"] == "p"
    monkeypatch.setenv("AZURE_TENANT_ID", "t")
    with pytest.raises(rh.ClusterError, match="missing AZURE_SUBSCRIPTION_ID, AZURE_CLIENT_ID"):
        providers.credentials("azure")
    with pytest.raises(rh.ClusterError, match="unknown provider 'nope'"):
        providers.driver_class("nope")
    assert providers.driver_class("gcp").__name__ == "GCENodeDriver"


def test_a_reused_security_group_gets_exactly_the_requested_rules(
    aws_env: str, rhzmq_home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A later allocation with a narrower ssh_cidr (and another broker port) reuses the tagged
    group: the wider rule, the old port and a rule added by hand are revoked, the new ones added."""
    moto = aws_env
    wide = _cluster(moto, "narrowed", instance_type="CPU:2+", ssh_cidr="0.0.0.0/0")
    wide.provision()
    ec2 = _ec2(moto)
    (group,) = ec2.ex_get_security_groups(filters={"tag:rhzmq-cluster": "narrowed"})
    ec2.ex_authorize_security_group_ingress(group.id, 80, 80, ["0.0.0.0/0"])  # by hand
    capfd.readouterr()
    port = wide.server_port + 10
    narrow = _cluster(
        moto, "narrowed", instance_type="CPU:2+", ssh_cidr="203.0.113.0/24", server_port=port
    )
    narrow.provision()
    assert "SSH from 203.0.113.0/24 only" in capfd.readouterr().err
    (again,) = ec2.ex_get_security_groups(filters={"tag:rhzmq-cluster": "narrowed"})
    assert again.id == group.id  # reused, not remade
    rules = {
        (r["from_port"], r["to_port"]): (r["cidr_ips"], [p["group_id"] for p in r["group_pairs"]])
        for r in again.ingress_rules
    }
    assert rules == {
        ("22", "22"): (["203.0.113.0/24"], []),
        (str(port), str(port + 1)): ([], [group.id]),
    }
    # Already right: nothing changes on a third allocation.
    narrow.provision()
    (third,) = ec2.ex_get_security_groups(filters={"tag:rhzmq-cluster": "narrowed"})
    assert third.ingress_rules == again.ingress_rules
    narrow.teardown()
    assert ec2.ex_get_security_groups(filters={"tag:rhzmq-cluster": "narrowed"}) == []


def test_stop_keeps_the_machines_and_their_disks_and_start_runs_them_again(
    aws_env: str, rhzmq_home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """stop() through EC2's StopInstances (libcloud's stop_node): the same instances, their
    volumes, the saved cluster and `rhzmq clusters` say "stopped". (The SSH half of starting
    again, with new addresses re-pinned per node id, runs in test_ondemand_e2e.)"""
    moto = aws_env
    c = _cluster(moto, "pausable", instance_type="CPU:2+", num_nodes=2)
    nodes = c.provision()
    ec2 = _ec2(moto)
    volumes = {v.id for v in ec2.list_volumes() if v.extra.get("instance_id") in c.node_ids}
    assert len(volumes) == 2
    capfd.readouterr()
    c.stop()
    err = capfd.readouterr().err
    assert "[rhzmq-pausable-0] stopping (its disk is kept)" in err
    seen = {n.id: n.state for n in ec2.list_nodes(ex_node_ids=c.node_ids)}
    assert seen == {n.id: "stopped" for n in nodes}
    assert volumes <= {v.id for v in ec2.list_volumes()}  # the disks stay
    saved = rh.cluster("pausable")
    assert saved.allocation["status"] == "stopped" and saved.node_ids == c.node_ids
    assert saved.hosts == []
    (line,) = [x for x in rh.Cluster.list() if x["name"] == "pausable"]
    assert line["status"] == "stopped" and line["nodes"] == 2 and line["uptime"] is None
    assert line["cost"] is not None  # what ran before the stop
    (row,) = [r for r in _rhzmq(rhzmq_home, "clusters").stdout.splitlines() if "pausable" in r]
    assert row.split()[1:4] == ["ondemand", "stopped", "2"]

    # What up_if_not() does first on a stopped cluster: start the same instances (the API
    # half only: moto's instances do not answer SSH).
    for n in saved.cloud().refresh(saved.node_ids):
        saved.cloud().start(n)
    seen = {n.id: n.state for n in ec2.list_nodes(ex_node_ids=c.node_ids)}
    assert seen == {n.id: "running" for n in nodes}
    saved.teardown()
    assert ec2.ex_get_security_groups(filters={"tag:rhzmq-cluster": "pausable"}) == []


def test_stop_where_the_provider_cannot_says_so(rhzmq_home: Path) -> None:
    c = rh.cluster("nostop", instance_type="CPU:1+", provider="dummy", credentials={"key": "0"})
    for call in (c.stop, c.start):
        with pytest.raises(rh.ClusterError, match=r"provider dummy cannot stop and start machines"):
            call()
