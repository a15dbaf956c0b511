"""Fixtures of the cluster tests: seven sshd "hosts" on loopback, a user's project, and the
three-host SSH cluster that tests/clusters/ shares (one bootstrap for the whole session)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import MAIN, NO_PYTHON, OWN_HOME, SSHHosts, free_port, start_hosts, wait_no_processes

import rhzmq as rh


@pytest.fixture(scope="session")
def hosts(tmp_path_factory: pytest.TempPathFactory, rhzmq_home: Path) -> Iterator[SSHHosts]:
    root = tmp_path_factory.mktemp("ssh")
    h = start_hosts(
        root,
        7,
        paths={NO_PYTHON: "/var/empty"},
        env={OWN_HOME: {"RHZMQ_HOME": str(root / f"node{OWN_HOME}" / "rh-home")}},
    )
    yield h
    h.stop()


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's project: a module to send, ignore files, files that must not travel."""
    root = tmp_path_factory.mktemp("proj") / "myproj"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'myproj'\n")
    (root / "jobs.py").write_text(
        textwrap.dedent(
            """
            import logging, os, time

            VALUE = "v1"

            def where(x):
                print("hello from", os.environ.get("RHZMQ_NODE_ADDRESS"))
                logging.getLogger("jobs").warning("a log record")
                return {"x": x, "index": os.environ.get("RHZMQ_NODE_INDEX"),
                        "home": os.environ["HOME"], "file": __file__}

            def value():
                return VALUE

            def secret_file():
                path = os.environ["AWS_SHARED_CREDENTIALS_FILE"]
                with open(path) as f:
                    text = f.read()
                return {"path": path, "mode": os.stat(path).st_mode & 0o777,
                        "has_key": os.environ["AWS_ACCESS_KEY_ID"] in text}

            def cwd():
                return os.getcwd()

            def fail(n):
                raise ValueError(f"bad input {n}")

            def count(n):
                for i in range(n):
                    yield i

            def nap(seconds):
                time.sleep(seconds)
                return seconds

            class Counter:
                def __init__(self, start):
                    self.n = start

                def add(self, k):
                    self.n += k
                    return self.n
            """
        )
    )
    (root / ".gitignore").write_text("*.log\n")
    (root / ".rhzmqignore").write_text("data/\n")
    (root / "run.log").write_text("not synced\n")
    (root / "data").mkdir()
    (root / "data" / "big.bin").write_bytes(b"\0" * 1000)
    sys.path.insert(0, str(root))
    return root


@pytest.fixture(scope="session")
def main_cluster(hosts: SSHHosts, project: Path) -> Iterator[rh.SSHCluster]:
    cluster = rh.cluster(
        name="trio",
        host=[hosts.addresses[i] for i in MAIN],
        ssh_creds=hosts.creds(),
        server_port=free_port(["0.0.0.0"]),
        gateway_port=0,
        autostop_mins=-1,
    ).up_if_not()
    yield cluster
    cluster.teardown()
    for i in MAIN:
        assert wait_no_processes(hosts.hosts[i].home) == [], f"host {i} kept processes"


@pytest.fixture(params=["local", "ssh"])
def any_cluster(request: pytest.FixtureRequest) -> rh.Cluster:
    """The contract suite's cluster: each test runs on the local daemon and on the SSH cluster."""
    name = "cluster" if request.param == "local" else "main_cluster"
    cluster: rh.Cluster = request.getfixturevalue(name)
    request.getfixturevalue("project")  # its code is what the contract tests send
    return cluster
