"""Helpers shared by the tests (importable: tests/ is on sys.path)."""

from __future__ import annotations

import os
import signal
import socket
import time

import zmq

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


def assert_slow_heads_cut_off(url: str, request_line: bytes) -> None:
    """For a server started with RHZMQ_HTTP_HEADER_TIMEOUT=1 (slowloris): a connection sending
    nothing, and one sending a header line every 0.4 s after ``request_line``, are both closed
    by the server within 4 s."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    silent = socket.create_connection((host, int(port)))
    dribble = socket.create_connection((host, int(port)))
    started = time.monotonic()
    dribble.sendall(request_line + b"\r\nHost: 127.0.0.1\r\n")
    for conn in (silent, dribble):
        conn.settimeout(5)
    for _ in range(3):  # a header line every 0.4 s: it would never have been cut off
        time.sleep(0.4)
        try:
            dribble.sendall(b"X-Slow: 1\r\n")
        except OSError:
            break
    with silent, dribble:
        assert dribble.recv(100) == b""  # closed by the server
        assert silent.recv(100) == b""
    assert time.monotonic() - started < 4


class ClosedStream:
    """A stdout that raises on every write, as a closed file or a broken pipe does."""

    def write(self, text: str) -> int:
        raise ValueError("I/O operation on closed file")

    def flush(self) -> None:
        pass


def router_and_peer(endpoint: str, identity: bytes) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
    """A ROUTER bound at ``endpoint`` that refuses unroutable sends (ROUTER_MANDATORY, as the
    broker's), and a DEALER named ``identity`` connected to it, routable once this returns: it
    said hello and the ROUTER read it (a handshake, not a sleep)."""
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    router.bind(endpoint)
    peer = ctx.socket(zmq.DEALER)
    peer.setsockopt(zmq.ROUTING_ID, identity)
    peer.connect(endpoint)
    peer.send(b"hello")
    assert router.poll(5000), "the peer's hello never arrived"
    assert router.recv_multipart() == [identity, b"hello"]
    return router, peer
