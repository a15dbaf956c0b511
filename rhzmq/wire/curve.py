"""CURVE keys for a broker reachable from other hosts.

A broker bound to anything but loopback encrypts and authenticates every ZeroMQ connection with
CURVE, and a ZAP handler admits only client keys found in its allow-list directory. Keys live in
``$RHZMQ_HOME/local/curve/`` (owner-only)::

    server.key / server.key_secret          the broker's keypair
    local.key / local.key_secret            the keypair this machine's clients and workers use
    authorized/*.key                        public keys allowed to connect (local.key is there)

To let another machine's client in, copy its public ``.key`` file into ``authorized/`` (the SSH
back-end of issue 5 does that over SSH). A peer without an allowed key never completes the
handshake: the broker never sees its messages, so nothing it sends is ever routed, let alone
unpickled by a worker.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import zmq
import zmq.auth

from . import config as _config

CurveKeys = dict[str, bytes]


def curve_dir() -> Path:
    return _config.local_dir() / "curve"


def ensure_keys() -> Path:
    """Create the broker's and this machine's keypairs once; returns the key directory."""
    root = curve_dir()
    authorized = root / "authorized"
    authorized.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    for name in ("server", "local"):
        if not (root / f"{name}.key_secret").exists():
            zmq.auth.create_certificates(root, name)
    if not (authorized / "local.key").exists():
        shutil.copy(root / "local.key", authorized / "local.key")
    return root


def client_keys(root: Path | None = None) -> CurveKeys:
    """Keys for a client or worker on this machine: its keypair and the server's public key."""
    root = root or curve_dir()
    public, secret = zmq.auth.load_certificate(root / "local.key_secret")
    server, _ = zmq.auth.load_certificate(root / "server.key")
    assert secret is not None
    return {"public": public, "secret": secret, "server": server}


def server_keys(root: Path) -> CurveKeys:
    public, secret = zmq.auth.load_certificate(root / "server.key_secret")
    assert secret is not None
    return {"public": public, "secret": secret}
