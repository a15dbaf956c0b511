"""CURVE keys and the role each key has on the bus.

A broker bound to anything but a unix socket encrypts and authenticates every ZeroMQ connection
with CURVE, and a ZAP handler (:class:`RoleAuthenticator`) admits only the public keys in its
allow-list directory, giving each one **role**, from the key file's name::

    authorized/local.key          head     the head host's own processes: its daemon, workers and
                                           node agent, and clients run there (trusted as the owner)
    authorized/gateway.key        gateway  the HTTP gateway: calls objects, never the cluster's
                                           machinery (``__node__.*``, PUT, SPAWN, SHUTDOWN)
    authorized/node-<i>.key       node:<i> host ``i`` of an SSH cluster: its node agent and its
                                           workers (they register only environments placed on
                                           host ``i``), never a caller
    authorized/<anything>.key     client   a user's machine: calls, puts, spawns; never a worker

ZeroMQ hands the role back with every message as its ``User-Id`` property (the broker's pump
reads it), so the broker checks each command against its sender's role (see broker/_broker.py,
``PERMITTED``). Removing a key file revokes it: the authenticator re-reads the directory when it
changes, new handshakes with the key fail, and the broker drops the peers it already admitted
under that role within a heartbeat interval.

Keys live in ``$RHZMQ_HOME/local/curve/`` (owner-only)::

    server.key / server.key_secret          the broker's keypair
    local.key / local.key_secret            this machine's processes (on a node host: node-<i>'s)
    gateway.key / gateway.key_secret        the gateway's
    authorized/*.key                        public keys allowed to connect, with their roles

On a local daemon reached over unix sockets only (the default) there is no CURVE and no role:
the socket's directory is 0700, so every peer is a process of the owner.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from . import config as _config

CurveKeys = dict[str, bytes]

HEAD, CLIENT, GATEWAY = "head", "client", "gateway"
_NODE_FILE = re.compile(r"node-(\d{1,4})")


def node_role(index: int) -> str:
    return f"node:{index}"


def role_of(stem: str) -> str:
    """The role of the key in ``authorized/<stem>.key``."""
    if stem == "local":
        return HEAD
    if stem == GATEWAY:
        return GATEWAY
    match = _NODE_FILE.fullmatch(stem)
    return node_role(int(match.group(1))) if match else CLIENT


def curve_dir() -> Path:
    return _config.local_dir() / "curve"


def ensure_keys() -> Path:
    """Create the broker's, this machine's and the gateway's keypairs once; returns the key
    directory."""
    root = curve_dir()
    authorized = root / "authorized"
    authorized.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    for name in ("server", "local", GATEWAY):
        if not (root / f"{name}.key_secret").exists():
            zmq.auth.create_certificates(root, name)
    for name in ("local", GATEWAY):
        if not (authorized / f"{name}.key").exists():
            shutil.copy(root / f"{name}.key", authorized / f"{name}.key")
    return root


def client_keys(root: Path | None = None, who: str = "local") -> CurveKeys:
    """Keys for a peer on this machine: keypair ``who`` and the server's public key."""
    root = root or curve_dir()
    public, secret = zmq.auth.load_certificate(root / f"{who}.key_secret")
    server, _ = zmq.auth.load_certificate(root / "server.key")
    assert secret is not None
    return {"public": public, "secret": secret, "server": server}


def server_keys(root: Path) -> CurveKeys:
    public, secret = zmq.auth.load_certificate(root / "server.key_secret")
    assert secret is not None
    return {"public": public, "secret": secret}


def load_roles(authorized: Path) -> dict[bytes, str]:
    """z85 public key -> role, for every key file in the allow-list directory."""
    roles: dict[bytes, str] = {}
    for path in sorted(authorized.glob("*.key")):
        try:
            public, _ = zmq.auth.load_certificate(path)
        except Exception:
            continue  # a half-written or foreign file admits nobody
        roles[public] = role_of(path.stem)  # load_certificate gives keys z85-encoded
    return roles


class RoleAuthenticator(ThreadAuthenticator):
    """A ZAP handler admitting the keys of one allow-list directory, each with its role as the
    connection's User-Id. It re-reads the directory when its modification time changes (at each
    handshake and each :meth:`reload`), so added keys get in and removed ones are refused."""

    def __init__(self, authorized: Path) -> None:
        super().__init__(zmq.Context.instance())
        self.authorized = authorized
        self.roles: dict[bytes, str] = {}
        self._stamp = -1
        self.reload()

    def reload(self) -> set[str]:
        """Re-read the allow-list if it changed; returns the roles it grants."""
        stamp = self.authorized.stat().st_mtime_ns
        if stamp != self._stamp:
            self._stamp = stamp
            self.roles = load_roles(self.authorized)
        return set(self.roles.values())

    async def _authenticate_curve(self, domain: str, client_key: bytes) -> tuple[bool, bytes]:
        self.reload()
        if z85.encode(client_key) in self.roles:
            return True, b"OK"
        return False, b"Unknown key"

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self.roles.get(z85.encode(client_public_key), "")
