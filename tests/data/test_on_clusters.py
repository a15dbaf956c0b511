"""Clusters as systems: the local cluster (its worker does the work) and an SSH cluster on a
loopback sshd (copies up over SSH, down over SFTP, operations by the cluster). A copy from a
cluster to S3 is made by the cluster: the client's own I/O counters show its bytes never pass
through the client."""

from __future__ import annotations

from pathlib import Path

from remote_data import describe, make_files
from s3server import S3Server
from test_folders import CONTENT, _check_content

import rhzmq as rh

PAYLOAD_MB = 24


def _io() -> int:
    """Bytes this process read and wrote through system calls: files, pipes and sockets alike
    (so the broker connection's traffic too), from /proc/self/io."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["rchar"]) + int(fields["wchar"])


def test_the_local_cluster_holds_folders_and_uploads_itself(
    cluster: rh.Cluster, tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    src = rh.folder(str(tmp_path / "src")).put(CONTENT)
    on = src.to(cluster, path=str(tmp_path / "on-cluster"))
    assert on.system is cluster and on.last_copy.files_sent == len(CONTENT)  # type: ignore[union-attr]
    _check_content(on)  # every read through the cluster's worker
    on.put({"extra.txt": "made via the cluster"})
    assert (tmp_path / "on-cluster" / "extra.txt").read_text() == "made via the cluster"
    # a function on the cluster gets the folder as a local one there
    fn = rh.function(describe).to(cluster)
    local_there, path, names = fn(on)
    assert local_there and path == on.path and "extra.txt" in names

    # data made on the cluster, copied to S3 by the cluster
    maker = rh.function(make_files).to(cluster)
    data = rh.folder(str(tmp_path / "generated"), system=cluster)
    assert maker(data.path, PAYLOAD_MB, 1 << 20) == PAYLOAD_MB
    before = _io()
    up = data.to(s3.store(), path=f"{bucket}/from-cluster")
    through_client = _io() - before
    assert up.last_copy.files_sent == PAYLOAD_MB  # type: ignore[union-attr]
    listing = up.listing()
    assert len(listing) == PAYLOAD_MB and all(size == 1 << 20 for size, _ in listing.values())
    assert through_client < 1 << 20, f"{through_client} bytes passed through the client"

    # the measurement sees bytes that do pass through here: the same upload from this process
    before = _io()
    rh.folder(str(tmp_path / "generated")).to(s3.store(), path=f"{bucket}/from-client")
    assert _io() - before > PAYLOAD_MB << 20


def test_an_ssh_cluster_holds_folders_copied_incrementally(
    ssh_cluster: rh.Cluster, tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    src = rh.folder(str(tmp_path / "src")).put(CONTENT)
    on = src.to(ssh_cluster)
    assert on.path == "~/src" and on.last_copy.files_sent == len(CONTENT)  # type: ignore[union-attr]
    _check_content(on)
    (tmp_path / "src" / "top.txt").write_text("changed\n")
    again = src.to(ssh_cluster)
    assert again.last_copy.files_sent == 1  # type: ignore[union-attr]
    assert on.get("top.txt") == b"changed\n"

    up = on.to(s3.store(), path=f"{bucket}/from-ssh")  # the host uploads
    assert sorted(up.ls(recursive=True)) == sorted(CONTENT)
    down = on.to("file", str(tmp_path / "down"))  # over SFTP
    assert down.last_copy.files_sent == len(CONTENT)  # type: ignore[union-attr]
    assert (tmp_path / "down" / "top.txt").read_text() == "changed\n"
    assert on.to("file", str(tmp_path / "down")).last_copy.files_sent == 0  # type: ignore[union-attr]
    on.rm("bin")
    assert "bin/" not in on.ls()
