"""Data copies: rhzmq's folder copies against the tools people use instead, in one sitting.

* local -> SSH cluster (``folder.to(cluster)``: a tar stream over the cluster's SSH connection)
  against ``rsync -a`` and ``scp -r`` to the same loopback ``sshd`` host;
* SSH cluster -> S3 (``folder_on_cluster.to(store)``: the cluster's worker uploads through
  libcloud) against a plain libcloud upload of the same files from this process.

The S3 server is moto's on loopback (the tests' helper), so the figures compare the clients'
costs, not a network. Each copy goes to a fresh destination (everything travels).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import rhzmq as rh


def _mb_per_s(nbytes: int, seconds: float) -> float:
    return nbytes / 2**20 / seconds


def data_copies(rounds: int = 3, files: int = 64, size: int = 1 << 20) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from s3server import start_moto, stop
    from sshd import free_port, start_hosts

    results: dict[str, list[float]] = {}
    total = files * size
    with tempfile.TemporaryDirectory(prefix="rhzmq-perf-data-") as root_s:
        root = Path(root_s)
        old = {
            k: os.environ.get(k)
            for k in ("RHZMQ_HOME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        }
        os.environ.update(
            RHZMQ_HOME=str(root / "client"), AWS_ACCESS_KEY_ID="perf", AWS_SECRET_ACCESS_KEY="perf"
        )
        src = root / "src"
        src.mkdir()
        for i in range(files):
            (src / f"f{i:03d}.bin").write_bytes(os.urandom(size))
        s3 = start_moto(root / "moto.log")
        hosts = start_hosts(root / "hosts", 1)
        creds = hosts.creds()
        ssh = ["ssh", "-o", "BatchMode=yes", *_ssh_opts(creds)]
        target = f"{creds['user']}@{hosts.addresses[0]}"
        try:
            cluster = rh.cluster(
                name="perf-data",
                host=hosts.addresses,
                ssh_creds=creds,
                server_port=free_port(hosts.addresses),
                gateway_port=None,
                autostop_mins=-1,
            ).up_if_not()
            store = rh.object_store("s3", endpoint_url=s3.url)
            rh.folder("perf", system=store).mkdir()
            try:
                for r in range(rounds):
                    t = time.monotonic()
                    on = rh.folder(str(src)).to(cluster, path=f"~/rh-{r}", progress=False)
                    results.setdefault("to_cluster_rhzmq_MiB_s", []).append(
                        _mb_per_s(total, time.monotonic() - t)
                    )
                    if shutil.which("rsync"):
                        t = time.monotonic()
                        subprocess.run(
                            ["rsync", "-a", "-e", " ".join(ssh), f"{src}/", f"{target}:rsync-{r}/"],
                            check=True,
                        )
                        results.setdefault("to_cluster_rsync_MiB_s", []).append(
                            _mb_per_s(total, time.monotonic() - t)
                        )
                    t = time.monotonic()
                    subprocess.run(
                        [
                            "scp",
                            "-q",
                            "-r",
                            "-B",
                            *_ssh_opts(creds, scp=True),
                            str(src),
                            f"{target}:scp-{r}",
                        ],
                        check=True,
                    )
                    results.setdefault("to_cluster_scp_MiB_s", []).append(
                        _mb_per_s(total, time.monotonic() - t)
                    )
                    t = time.monotonic()
                    on.to(store, path=f"perf/cluster-{r}", progress=False)
                    results.setdefault("cluster_to_s3_rhzmq_MiB_s", []).append(
                        _mb_per_s(total, time.monotonic() - t)
                    )
                    driver = store.driver()
                    container = driver.get_container("perf")
                    t = time.monotonic()
                    for p in sorted(src.iterdir()):
                        driver.upload_object(str(p), container, f"plain-{r}/{p.name}")
                    results.setdefault("plain_libcloud_upload_MiB_s", []).append(
                        _mb_per_s(total, time.monotonic() - t)
                    )
            finally:
                cluster.teardown()
        finally:
            hosts.stop()
            stop(s3.proc)
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    from .bench import summarize

    out = summarize(results)
    for key, base in (
        ("to_cluster_vs_rsync", "to_cluster_rsync_MiB_s"),
        ("to_cluster_vs_scp", "to_cluster_scp_MiB_s"),
    ):
        if base in out:
            out[key] = out["to_cluster_rhzmq_MiB_s"]["median"] / out[base]["median"]
    out["cluster_to_s3_vs_plain_libcloud"] = (
        out["cluster_to_s3_rhzmq_MiB_s"]["median"] / out["plain_libcloud_upload_MiB_s"]["median"]
    )
    out["payload_MiB"] = total / 2**20
    return out


def _ssh_opts(creds: dict[str, Any], scp: bool = False) -> list[str]:
    return [
        "-P" if scp else "-p",
        str(creds["port"]),
        "-i",
        str(creds["key"]),
        "-o",
        f"UserKnownHostsFile={creds['known_hosts']}",
    ]
