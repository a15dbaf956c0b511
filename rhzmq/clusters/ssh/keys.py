"""The secrets an SSH cluster's client holds, and what each host gets of them.

Made on the client at the first ``up`` and copied over SSH (owner-only files everywhere)::

    client  $RHZMQ_HOME/clusters/<name>/  server.key(_secret)  client.key(_secret)
                                          node-<i>.key(_secret) for each host i >= 1
                                          gateway.token
    head    $RHZMQ_HOME/local/curve/      server.key(_secret)  gateway.token
                                          authorized/client.key  authorized/node-<i>.key
    node i  $RHZMQ_HOME/local/curve/      server.key  local.key(_secret) (= node-<i>'s keypair)

Hosts reach the head's broker over ZeroMQ with CURVE (encrypted; only keys on the head's
allow-list get in), and each key has one role there (rhzmq.wire.curve): the client's key is a
caller; node ``i``'s key may only register what is placed on host ``i`` and answer the calls
routed to it, so a compromised host cannot call the head's objects or take other hosts'. Every
host has its own key (none is shared), and :meth:`ClusterKeys.revoke` takes one off the
allow-list. The gateway listens on the head's loopback only, behind the bearer token: other
users of that machine must not call the cluster either.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import asyncssh
import zmq.auth

from ...wire import config as _config
from ...wire.protocol import name_problem
from .transport import remote_home


class ClusterKeys:
    """The key directory of one cluster on the client; files are read once, then cached (reading
    them per call once cost 70 % of the throughput)."""

    def __init__(self, cluster: str) -> None:
        problem = name_problem(cluster, "cluster name")
        if problem or cluster in (".", ".."):
            raise ValueError(problem or f"invalid cluster name {cluster!r}")
        self.cluster = cluster
        self._curve: dict[str, bytes] | None = None

    def directory(self) -> Path:
        path = _config.home() / "clusters" / self.cluster
        if not (path / "gateway.token").exists():
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o700)
            for who in ("server", "client"):
                zmq.auth.create_certificates(path, who)
            token = path / "gateway.token"
            token.touch(0o600)
            token.write_text(secrets.token_urlsafe(32))
        return path

    def gateway_token(self) -> str:
        return (self.directory() / "gateway.token").read_text().strip()

    def curve(self) -> dict[str, bytes]:
        """The client's CURVE keys: its keypair and the head's public key."""
        if self._curve is None:
            root = self.directory()
            public, secret = zmq.auth.load_certificate(root / "client.key_secret")
            server, _ = zmq.auth.load_certificate(root / "server.key")
            if secret is None:
                raise ValueError(f"{root / 'client.key_secret'} holds no secret key")
            self._curve = {"public": public, "secret": secret, "server": server}
        return self._curve

    def node_key(self, index: int) -> str:
        """The key file stem of host ``index`` (made at first use: one key per host)."""
        root = self.directory()
        stem = f"node-{index}"
        if not (root / f"{stem}.key_secret").exists():
            zmq.auth.create_certificates(root, stem)
        return stem

    def revoke(self, index: int) -> None:
        """Forget host ``index``'s key here: the next ``up`` makes it a new one."""
        root = self.directory()
        for suffix in (".key", ".key_secret"):
            (root / f"node-{index}{suffix}").unlink(missing_ok=True)

    def files_for(self, index: int, hosts: int) -> dict[str, bytes]:
        """What host ``index`` of ``hosts`` gets, by path under its key directory."""
        root = self.directory()

        def read(name: str) -> bytes:
            return (root / name).read_bytes()

        if index == 0:
            return {
                "gateway.token": read("gateway.token"),
                "server.key": read("server.key"),
                "server.key_secret": read("server.key_secret"),
                "authorized/client.key": read("client.key"),
                **{
                    f"authorized/{stem}.key": read(f"{stem}.key")
                    for stem in (self.node_key(i) for i in range(1, hosts))
                },
            }
        stem = self.node_key(index)
        return {
            "server.key": read("server.key"),
            "local.key": read(f"{stem}.key"),
            "local.key_secret": read(f"{stem}.key_secret"),
        }


async def put_keys(conn: asyncssh.SSHClientConnection, files: dict[str, bytes], head: bool) -> None:
    """Write a host's key files (owner-only); the head's allow-list holds exactly ours."""
    where = await remote_home(conn)
    async with conn.start_sftp_client() as sftp:
        root = where.curve
        await sftp.makedirs(f"{root}/authorized", exist_ok=True)
        for d in (where.rhzmq, where.local, root):
            await sftp.chmod(d, 0o700)
        if head:
            for old in await sftp.listdir(f"{root}/authorized"):
                if old not in (".", "..", "local.key", "gateway.key"):
                    await sftp.remove(f"{root}/authorized/{old}")
        for rel, data in files.items():
            async with sftp.open(f"{root}/{rel}", "wb") as f:
                await f.write(data)
            await sftp.chmod(f"{root}/{rel}", 0o600)
