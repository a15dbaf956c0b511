"""A host without a usable Python: the bootstrap gets one (rhzmq/clusters/ssh/bootstrap.py,
``_GET_PYTHON``), for real, on sshd hosts on loopback (tests/sshd.py).

The hosts' PATH starts with a shim directory whose ``python3``/``python3.X``/``python`` is a real
CPython with pip but without ``venv``'s ensurepip — what Debian and Ubuntu images have until
``python3.X-venv`` is installed — and shadows every other Python of this machine.

* ``install_python="uv"``: pip installs uv into ``~/.rhzmq/tools``, ``uv python install`` puts a
  standalone CPython in ``~/.rhzmq/python``, rhzmq's venv is made with it and a function runs.
  uv downloads CPython builds from GitHub, which this test machine cannot reach: the session's
  ``UV_PYTHON_DOWNLOADS_JSON_URL`` (uv's own setting for a mirror) lists one build, a
  relocatable copy of this interpreter made here, with its sha256, which uv checks.
* ``install_python="never"``: the detection (the system's family from /etc/os-release, root or
  sudo, apt's or dnf's package lists) runs on the host and the error names what "auto" would run.

Not exercised: apt-get/dnf actually installing (they would change this machine) and a download
from GitHub.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import SSHHosts, free_port, start_hosts, wait_no_processes

import rhzmq as rh

SKIP = shutil.ignore_patterns(
    "__pycache__", "test", "tests", "idle_test", "site-packages", "dist-packages", "idlelib"
)
MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"


def _copy_cpython(dest: Path, *, ensurepip: bool) -> Path:
    """This machine's CPython (interpreter and standard library) as a relocatable tree."""
    exe = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    (dest / "bin").mkdir(parents=True)
    shutil.copy2(exe, dest / "bin" / f"python{MINOR}")
    for name in ("python3", "python"):
        (dest / "bin" / name).symlink_to(f"python{MINOR}")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    shutil.copytree(stdlib, dest / "lib" / f"python{MINOR}", ignore=SKIP)
    if not ensurepip:
        shutil.rmtree(dest / "lib" / f"python{MINOR}" / "ensurepip")
    return dest / "bin" / f"python{MINOR}"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHHosts]:
    root = tmp_path_factory.mktemp("getpy")
    # The image's Python: pip, but no ensurepip (so no venv).
    image = _copy_cpython(root / "image", ensurepip=False)
    site = subprocess.run(
        [str(image), "-c", "import site; print(site.getsitepackages()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    import pip

    shutil.copytree(Path(pip.__file__).parent, Path(site) / "pip", ignore=SKIP)
    shim = root / "shim"
    shim.mkdir()
    for name in ("python", "python3", *(f"python3.{m}" for m in range(8, 15))):
        (shim / name).symlink_to(image)
    # A standalone CPython for uv, and uv's downloads list naming it.
    build = root / "build"
    _copy_cpython(build / "python", ensurepip=True)
    archive = root / f"cpython-{sys.version.split()[0]}-install_only.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(build / "python", arcname="python")
    major, minor, patch = sys.version_info[:3]
    downloads = root / "downloads.json"
    downloads.write_text(
        json.dumps(
            {
                f"cpython-{major}.{minor}.{patch}-linux-x86_64-gnu": {
                    "name": "cpython",
                    "arch": {"family": "x86_64", "variant": None},
                    "os": "linux",
                    "libc": "gnu",
                    "major": major,
                    "minor": minor,
                    "patch": patch,
                    "prerelease": "",
                    "url": archive.as_uri(),
                    "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
                    "variant": None,
                    "build": "20990101",
                }
            }
        )
    )
    path = f"{shim}:/usr/local/bin:/usr/bin:/bin"
    machines = start_hosts(
        root / "machines",
        2,
        paths={0: path, 1: path},
        env={0: {"UV_PYTHON_DOWNLOADS_JSON_URL": downloads.as_uri()}},
    )
    yield machines
    machines.stop()
    for h in machines.hosts:
        wait_no_processes(h.home, timeout=20)


def test_uv_gets_a_standalone_python_and_the_cluster_runs_on_it(
    hosts: SSHHosts, project: Path, rhzmq_home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import jobs

    address, home = hosts.addresses[0], hosts.hosts[0].home
    c = rh.cluster(
        "getpy",
        host=[address],
        ssh_creds=hosts.creds(),
        install_python="uv",
        gateway_port=None,
        server_port=free_port([address]),
    )
    try:
        c.up_if_not()
        err = capfd.readouterr().err
        (missing,) = [x for x in err.splitlines() if x.startswith(f"[{address}] no Python")]
        assert missing.startswith(f"[{address}] no Python 3.11+ with venv (found: ")
        assert f"{hosts.root.parent / 'shim'}/python3 {sys.version.split()[0]}," in missing
        assert missing.endswith(f"getting Python {MINOR}")
        rhzmq_dir = home / ".rhzmq"
        assert f"[{address}] pip install uv (into {rhzmq_dir}/tools, with " in err
        assert f"[{address}] uv python install {MINOR} (a standalone CPython" in err
        (using,) = [line for line in err.splitlines() if line.startswith(f"[{address}] using ")]
        python = using.split("using ", 1)[1]
        assert python.startswith(f"{rhzmq_dir}/python/cpython-{MINOR}")
        assert (rhzmq_dir / "tools" / "bin" / "uv").is_file()
        assert err.index("uv python install") < err.index("installing rhzmq")
        cfg = (rhzmq_dir / "venv" / "pyvenv.cfg").read_text()
        assert f"home = {rhzmq_dir}/python/cpython-{MINOR}" in cfg  # the venv is made with it
        where = rh.function(jobs.where).to(c, name="where_getpy")
        assert where(1)["home"] == str(home)
        # A later install (the venv gone) finds that Python without getting one again.
        c.teardown()
        shutil.rmtree(rhzmq_dir / "venv")
        capfd.readouterr()
        c.restart_server()
        err = capfd.readouterr().err
        assert "getting Python" not in err
        (again,) = [x for x in err.splitlines() if x.startswith(f"[{address}] installing ")]
        assert f" with {rhzmq_dir}/python/cpython-{MINOR}" in again  # the one uv put there
    finally:
        c.teardown()


def test_never_says_what_auto_would_run(hosts: SSHHosts, rhzmq_home: Path) -> None:
    address = hosts.addresses[1]
    c = rh.cluster(
        "nopy",
        host=[address],
        ssh_creds=hosts.creds(),
        install_python="never",
        gateway_port=None,
        server_port=free_port([address]),
    )
    release = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    family = {k: v.strip('"') for k, _, v in (x.partition("=") for x in release.splitlines())}
    words = f" {family.get('ID', '')} {family.get('ID_LIKE', '')} "
    root = os.geteuid() == 0
    if root and (" debian " in words or " ubuntu " in words) and shutil.which("apt-get"):
        expected = r"apt-get update && apt-get install -y python3\.1\d python3\.1\d-venv"
    elif root and any(f" {f} " in words for f in ("rhel", "fedora", "centos", "amzn")):
        expected = r"(dnf|yum) install -y python3\.1\d python3\.1\d-pip"
    else:
        expected = rf"-m pip install --target \S+/tools uv && \S+ python install {MINOR}"
    with pytest.raises(rh.ClusterError) as err:
        c.up_if_not()
    message = str(err.value)
    assert message.startswith(f"{address} has no Python 3.11 or newer with venv (found: ")
    assert "With install_python='auto' rhzmq would run there: " in message
    import re

    assert re.search(expected, message), message
    assert not (hosts.hosts[1].home / ".rhzmq" / "venv").exists()  # nothing was installed
    with pytest.raises(ValueError, match="install_python must be one of"):
        rh.cluster("badpy", host=[address], install_python="apt")
