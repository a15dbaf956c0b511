"""Hostile input at the edges (issue 13, findings 6, 7 and 8): frames of the wrong type, names
that hide characters, a project root that is the home directory, a stream claiming unbounded
credit, and a public bind without a token."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest
import remote_objects as ro
import zmq

import rhzmq as rh
from rhzmq.wire.protocol import Cmd, pack_header, pack_meta
from rhzmq.wire.pump import BATCH_HEADER


def test_a_batch_of_frames_that_are_not_bytes_disturbs_no_one(cluster: rh.Cluster) -> None:
    add = rh.function(ro.add).to(cluster, name="batch_add")
    rogue = zmq.Context.instance().socket(zmq.DEALER)
    rogue.linger = 0
    rogue.connect(cluster.broker_endpoint)
    try:
        call = [pack_header(Cmd.CALL, 1, 0, b"batch_add"), pack_meta({"m": ""}), "a str"]
        for bad in ([call], [[pack_header(Cmd.PING), 7]], [[None]], [["x", b"y"]]):
            rogue.send_multipart([BATCH_HEADER, msgpack.packb(bad)])
            # Every other caller's messages stay whole, before and after.
            assert [add(i, 1) for i in range(20)] == [i + 1 for i in range(20)]
        assert not rogue.poll(200)  # the bad batches were dropped whole, nothing answered
    finally:
        rogue.close()
    cluster.delete("batch_add")


@pytest.mark.parametrize(
    "name", ["default\x00evil", "red\x1b[31m", "a/b", "__node__.0", "tab\tname", ".", ".."]
)
def test_names_with_hidden_or_reserved_characters_are_refused(
    cluster: rh.Cluster, name: str
) -> None:
    with pytest.raises(ValueError):
        rh.env(name=name)
    with pytest.raises(ValueError):
        rh.function(ro.add).to(cluster, name=name)
    assert name not in cluster.keys()


def test_other_names_at_the_edges(cluster: rh.Cluster) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        rh.env(name="")
    with pytest.raises(ValueError, match="default worker cannot be deleted"):
        cluster.delete("default")
    rh.function(ro.add).to(cluster, name="after_default")  # put still works
    cluster.delete("after_default")
    with pytest.raises(ValueError, match="invalid resource name"):
        rh.function(name="saved\n")  # the store's names: no trailing newline
    with pytest.raises(ValueError, match="cluster name"):
        rh.cluster(name="../../x", host="127.0.0.1")


def test_code_in_the_home_directory_is_not_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rhzmq.clusters.ssh import code_sync

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519").write_text("secret key")
    (tmp_path / "script_module.py").write_text("def f(): pass\n")
    with pytest.raises(rh.ClusterError, match=r"your home directory.*project folder"):
        code_sync.project_root(str(tmp_path))
    with pytest.raises(rh.ClusterError, match=r"holding your home"):
        code_sync.project_root(str(tmp_path.parent))  # like /home: every user's home below
    with pytest.raises(rh.ClusterError, match="root directory"):
        code_sync.project_root("/")
    project = tmp_path / "proj"
    (project / "pkg").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    assert code_sync.project_root(str(project / "pkg")) == project.resolve()


def test_a_stream_cannot_claim_unbounded_credit() -> None:
    from worker._worker import Credit

    credit = Credit(10**9)
    assert credit._left == Credit.MAX
    credit.grant(10**9)
    assert credit._left == Credit.MAX
    for _ in range(Credit.MAX):
        credit.take()
    assert credit._left == 0


def test_a_public_bind_without_a_token_is_refused_before_anything_starts(tmp_path: Path) -> None:
    env = {**os.environ, "RHZMQ_HOME": str(tmp_path / "home")}
    env.pop("RHZMQ_TOKEN", None)
    t = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "rhzmq", "start", "--bind", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "without a token" in lines[0] and "RHZMQ_TOKEN" in lines[0], (
        out.stderr
    )
    assert not (tmp_path / "home" / "local" / "daemon.json").exists()
    assert time.monotonic() - t < 10


def test_a_token_is_never_taken_from_the_command_line(tmp_path: Path) -> None:
    """`rhzmq start --token T` put the token in argv, which `ps` shows every user; it is refused
    (saying what to use), and RHZMQ_TOKEN or --token-file set it instead."""
    env = {**os.environ, "RHZMQ_HOME": str(tmp_path / "home")}
    env.pop("RHZMQ_TOKEN", None)

    def start(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rhzmq", "start", "--no-gateway", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    out = start("--token", "s3cret-on-argv")
    assert out.returncode == 2 and "RHZMQ_TOKEN" in out.stderr and "--token-file" in out.stderr
    assert "s3cret-on-argv" not in out.stderr + out.stdout
    assert not (tmp_path / "home" / "local" / "daemon.json").exists()
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    token_file.chmod(0o600)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rhzmq",
            "start",
            "--gateway-port",
            "0",
            "--token-file",
            str(token_file),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        assert out.returncode == 0, out.stderr
        token = subprocess.run(
            [sys.executable, "-m", "rhzmq", "token"], env=env, capture_output=True, text=True
        ).stdout.strip()
        assert token == "from-a-file"
    finally:
        subprocess.run([sys.executable, "-m", "rhzmq", "stop"], env=env, capture_output=True)
