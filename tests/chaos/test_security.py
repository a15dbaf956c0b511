"""A daemon bound beyond loopback: CURVE with an allow-list for ZeroMQ, a token for HTTP.
Peers without an allowed key get nothing through; nothing they send reaches a worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq
import zmq.auth
from helpers import wait_pid_gone

from rhzmq.wire.protocol import Cmd, Status, pack_header, pack_meta
from rhzmq.wire.pump import BATCH_HEADER, split_batch
from rhzmq.wire.serialization import dumps_call


def rhzmq_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RHZMQ_HOME": str(home)}
    env.pop("RHZMQ_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "rhzmq", *args], capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture(scope="module")
def public_daemon(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, dict[str, object]]]:
    home = tmp_path_factory.mktemp("public-home")
    started = rhzmq_cli(home, "start", "--bind", "0.0.0.0", "--no-gateway")
    assert started.returncode == 0, started.stderr
    state = json.loads((home / "local" / "daemon.json").read_text())
    yield home, state
    rhzmq_cli(home, "stop")
    assert wait_pid_gone(int(state["pid"]))


CLIENT = """
import sys, json
sys.path.insert(0, {tests!r})
import rhzmq as rh, remote_objects as ro
c = rh.cluster("local")
add = rh.function(ro.add).to(c)
print(json.dumps({{"sum": add(2, 3), "routed": c.status()["calls_routed"]}}))
"""


def _routed(home: Path, tmp: Path) -> int:
    script = tmp / "status.py"
    script.write_text(
        "import json, rhzmq as rh\nprint(rh.cluster('local').status()['calls_routed'])\n"
    )
    env = {**os.environ, "RHZMQ_HOME": str(home)}
    return int(
        subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        ).stdout
    )


def _try_call(endpoint: str, keys: dict[str, bytes] | None) -> list[bytes] | None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 1500)
    if keys:
        sock.curve_secretkey, sock.curve_publickey, sock.curve_serverkey = (
            keys["secret"],
            keys["public"],
            keys["server"],
        )
    sock.connect(endpoint)
    try:
        sock.send_multipart(
            [pack_header(Cmd.CALL, 1, 0, b"add"), pack_meta({"m": ""}), *dumps_call([1, 1], {})]
        )
        return sock.recv_multipart()
    except zmq.Again:
        return None
    finally:
        sock.close()


def test_allowed_local_client_works_over_curve(
    public_daemon: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    home, state = public_daemon
    assert state["curve"] and str(state["tcp_endpoint"]).startswith("tcp://0.0.0.0:")
    script = tmp_path / "client.py"
    script.write_text(CLIENT.format(tests=str(Path(__file__).parents[1])))
    env = {**os.environ, "RHZMQ_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["sum"] == 5


def test_peers_without_an_allowed_key_get_nothing(
    public_daemon: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    home, state = public_daemon
    endpoint = str(state["tcp_endpoint"]).replace("0.0.0.0", "127.0.0.1")
    before = _routed(home, tmp_path)
    assert _try_call(endpoint, None) is None  # plain ZeroMQ: the CURVE handshake never completes
    public, secret = zmq.curve_keypair()
    server, _ = zmq.auth.load_certificate(Path(str(state["curve"])) / "server.key")
    assert (
        _try_call(endpoint, {"public": public, "secret": secret, "server": server}) is None
    )  # not allowed
    assert _routed(home, tmp_path) == before  # nothing reached a worker, so nothing was unpickled
    # The same allowed key the local client uses does get through, over TCP too.
    allowed_public, allowed_secret = zmq.auth.load_certificate(
        Path(str(state["curve"])) / "local.key_secret"
    )
    assert allowed_secret is not None
    reply = _try_call(
        endpoint, {"public": allowed_public, "secret": allowed_secret, "server": server}
    )
    assert reply is not None
    messages = split_batch(reply[1]) if reply[0] == BATCH_HEADER else [reply]
    assert messages[-1][0][3] == Cmd.FINAL and messages[-1][0][12] == 0  # FINAL, status OK


def test_public_gateway_without_token_refuses_to_start(tmp_path: Path) -> None:
    out = rhzmq_cli(tmp_path / "home", "start", "--bind", "0.0.0.0", "--gateway-port", "0")
    assert out.returncode == 2
    assert "without a token" in out.stderr and "RHZMQ_TOKEN" in out.stderr
    assert not (tmp_path / "home" / "local" / "daemon.json").exists()


class _Peer:
    """One CURVE connection to the daemon's broker with a given keypair, kept open."""

    def __init__(self, endpoint: str, public: bytes, secret: bytes, server: bytes) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, 3000)
        self.sock.curve_secretkey, self.sock.curve_publickey = secret, public
        self.sock.curve_serverkey = server
        self.sock.connect(endpoint)
        self.ids = iter(range(1, 1000))

    def ask(self, cmd: int, target: bytes = b"", *frames: bytes) -> tuple[int, dict[str, object]]:
        """Send a command; returns the status of its FINAL and its body (error map or result)."""
        call_id = next(self.ids)
        self.sock.send_multipart([pack_header(cmd, call_id, 0, target), *frames])
        while True:
            reply = self.sock.recv_multipart()
            for msg in split_batch(reply[1]) if reply[0] == BATCH_HEADER else [reply]:
                if msg[0][3] == Cmd.FINAL and int.from_bytes(msg[0][4:12], "big") == call_id:
                    status = msg[0][12]
                    return status, (msgpack.unpackb(msg[1]) if status else {})

    def call(self, target: bytes) -> tuple[int, dict[str, object]]:
        return self.ask(Cmd.CALL, target, pack_meta({"m": ""}), *dumps_call([1, 1], {}))

    def close(self) -> None:
        self.sock.close()


def test_every_key_has_one_role_and_removing_it_revokes_it(
    public_daemon: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    """Issue 13, roles bound to keys, over real CURVE handshakes: the key file's name in the
    allow-list gives the role (rhzmq.wire.curve), and the broker checks every message."""
    home, state = public_daemon
    env = {**os.environ, "RHZMQ_HOME": str(home)}
    script = tmp_path / "client.py"
    script.write_text(CLIENT.format(tests=str(Path(__file__).parents[1])))
    subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=60)  # puts add
    curve = Path(str(state["curve"]))
    endpoint = str(state["tcp_endpoint"]).replace("0.0.0.0", "127.0.0.1")
    server, _ = zmq.auth.load_certificate(curve / "server.key")

    def peer_as(stem: str) -> _Peer:
        zmq.auth.create_certificates(tmp_path, stem)
        public, secret = zmq.auth.load_certificate(tmp_path / f"{stem}.key_secret")
        assert secret is not None
        (curve / "authorized" / f"{stem}.key").write_bytes((tmp_path / f"{stem}.key").read_bytes())
        return _Peer(endpoint, public, secret, server)

    laptop, node = peer_as("laptop"), peer_as("node-3")
    gw_public, gw_secret = zmq.auth.load_certificate(curve / "gateway.key_secret")
    assert gw_secret is not None
    gateway = _Peer(endpoint, gw_public, gw_secret, server)
    try:
        assert laptop.call(b"add")[0] == Status.OK
        assert gateway.call(b"add")[0] == Status.OK
        status, body = node.call(b"add")
        assert status == Status.DENIED and "'node:3'" in str(body["message"])
        status, body = gateway.call(b"__node__.0")
        assert status == Status.DENIED and "may not call '__node__.0'" in str(body["message"])
        assert gateway.ask(Cmd.SHUTDOWN)[0] == Status.DENIED
        # Revoking: the file goes; the open connection is refused within a heartbeat or two,
        # and a new one never completes its handshake.
        (curve / "authorized" / "node-3.key").unlink()
        deadline = time.monotonic() + 5
        while node.ask(Cmd.PING)[0] == Status.OK and time.monotonic() < deadline:
            time.sleep(0.2)
        status, body = node.ask(Cmd.PING)
        assert status == Status.DENIED and "allow-list" in str(body["message"])
        public, secret = zmq.auth.load_certificate(tmp_path / "node-3.key_secret")
        assert secret is not None
        again = _Peer(endpoint, public, secret, server)
        with pytest.raises(zmq.Again):
            again.ask(Cmd.PING)
        again.close()
        assert laptop.call(b"add")[0] == Status.OK  # the others are untouched
    finally:
        for p in (laptop, node, gateway):
            p.close()
