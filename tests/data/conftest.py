"""Fixtures of the data-resource tests: a real S3 server (moto's, on a free loopback port,
stopped by PID), its credentials in the environment as the AWS tools would have them, and an
SSH cluster of one loopback sshd host."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from azurite import Azurite, start_azurite, stop_azurite
from s3server import S3Server, start_moto, stop
from sshd import SSHHosts, free_port, start_hosts, wait_no_processes

import rhzmq as rh


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server, with credentials where the AWS tools look (the environment)."""
    server = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing-secret"
    yield server
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    stop(server.proc)
    assert server.proc.poll() is not None


@pytest.fixture
def bucket(s3: S3Server, request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test."""
    name = "b-" + "".join(c for c in request.node.name.lower() if c.isalnum())[:40]
    rh.folder(name, system=s3.store()).mkdir()
    return name


@pytest.fixture(scope="session")
def ssh_host(tmp_path_factory: pytest.TempPathFactory, rhzmq_home: Path) -> Iterator[SSHHosts]:
    hosts = start_hosts(tmp_path_factory.mktemp("data-ssh"), 1)
    yield hosts
    hosts.stop()


@pytest.fixture(scope="session")
def ssh_cluster(ssh_host: SSHHosts) -> Iterator[rh.Cluster]:
    cluster = rh.cluster(
        name="data-box",
        host=ssh_host.addresses,
        ssh_creds=ssh_host.creds(),
        server_port=free_port(ssh_host.addresses),
        gateway_port=None,
        autostop_mins=-1,
    ).up_if_not()
    yield cluster
    cluster.teardown()
    assert wait_no_processes(ssh_host.hosts[0].home) == []


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's Blob service (a real Azure Storage emulator), stopped by PID at the end."""
    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    stop_azurite(server.proc)
    assert server.proc.poll() is not None


@pytest.fixture
def azure_env(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Azurite:
    """Azurite's account where the Azure tools look: AZURE_STORAGE_CONNECTION_STRING."""
    for name in ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string())
    return azurite
