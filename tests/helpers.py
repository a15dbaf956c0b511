"""Helpers shared by the tests (importable: tests/ is on sys.path)."""

from __future__ import annotations

import os
import signal
import time

import rhzmq as rh
from rhzmq.wire import config as _config


def wait_pid_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while _config.pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def worker_pid(cluster: rh.Cluster, name: str = "default") -> int:
    """The pid of the named worker, waiting for it to (re)register."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for w in cluster.status()["workers"]:
            if w["name"] == name:
                return int(w["pid"])
        time.sleep(0.05)
    raise AssertionError(f"worker {name!r} did not register")


def kill_worker(cluster: rh.Cluster, name: str = "default") -> int:
    """SIGKILL a worker and return its pid once the broker knows it died (a call sent before
    that was in flight at the kill, and fails with WorkerDiedError as it should)."""
    pid = worker_pid(cluster, name)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid in [w["pid"] for w in cluster.status()["workers"]]:
        if time.monotonic() > deadline:
            raise AssertionError(f"the broker did not notice that worker {name!r} died")
    return pid


#: Secret values the tests use (issue 16). No log or output of the whole suite may contain one:
#: tests/conftest.py greps every captured output and every log file at the end of the session.
SECRET_VALUES = {
    "aws_key": "AKIARHZMQTEST0000001",
    "aws_secret": "rhzmq-test-aws-secret-5f1e9c0b7a",
    "hf": "hf_rhzmqTestToken0000000000000001",
    "gh": "gho_rhzmqTestToken000000000000001",
    "db": "rhzmq-test-db-password-8c2d",
    "lambda": "rhzmq-test-lambda-key-44aa",
}
