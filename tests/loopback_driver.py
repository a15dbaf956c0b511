"""A libcloud ``NodeDriver`` whose machines are real OpenSSH servers on 127.0.0.N (tests/sshd.py).

An on-demand cluster given ``provider="loopback_driver:LoopbackDriver"`` goes through exactly the
code path of a cloud: sizes and a price, a key pair imported, nodes created, their state polled,
SSH awaited, host keys read from the "console", the bootstrap, and at autostop the head's reaper
importing this module (shipped to the head: it is one file, importing only the standard library
and libcloud) and destroying the nodes.

The pool of machines is a JSON file (the driver's ``key``, its "credential", or the
``LOOPBACK_POOL`` variable): each host's address, SSH port, home, sshd pid and host key, whether
its console shows the host key, and the node it carries. Creating a node takes a free host and
authorizes the imported key there (as cloud-init would); destroying one kills the host's sshd,
its SSH sessions and every process running from its home — the machine is gone.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from libcloud.compute.base import KeyPair, Node, NodeDriver, NodeImage, NodeSize
from libcloud.compute.types import NodeState

POOL_VAR = "LOOPBACK_POOL"
#: The sshd processes ``start_node`` booted in this process (the tests reap them).
BOOTED: list[subprocess.Popen[bytes]] = []


def write_pool(path: Path, hosts: list[dict[str, Any]], user: str, authorized: Path) -> None:
    """A pool of machines for the driver (see the module docstring)."""
    path.write_text(
        json.dumps({"user": user, "authorized": str(authorized), "hosts": hosts, "keys": {}})
    )


class LoopbackDriver(NodeDriver):  # type: ignore[misc]
    name = "Loopback sshd hosts"
    type = "loopback"
    website = "https://www.openssh.com"

    def __init__(self, key: str | None = None, secret: str | None = None, **kwargs: Any) -> None:
        self.pool = Path(key or os.environ[POOL_VAR])
        self.region = kwargs.get("region")

    @contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        with open(self.pool.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data: dict[str, Any] = json.loads(self.pool.read_text())
            yield data
            self.pool.write_text(json.dumps(data))

    def _node(self, host: dict[str, Any]) -> Node:
        record = host["node"]
        return Node(
            id=record["id"],
            name=record["name"],
            state={
                "terminated": NodeState.TERMINATED,
                "stopped": NodeState.STOPPED,
            }.get(record["state"], NodeState.RUNNING),
            public_ips=[host["address"]],
            private_ips=[host["address"]],
            driver=self,
            extra={"tags": record["tags"], "ssh_port": host["port"], "home": host["home"]},
        )

    # -- sizes, images, keys -----------------------------------------------------------------------

    def list_sizes(self, location: Any = None) -> list[NodeSize]:
        return [
            NodeSize("lo.small", "lo.small", 2048, 10, None, 0.01, self, extra={"vcpu": 2}),
            NodeSize("lo.large", "lo.large", 8192, 40, None, 0.04, self, extra={"vcpu": 8}),
        ]

    def list_images(self, location: Any = None, ex_only_active: bool = True) -> list[NodeImage]:
        with self._state() as data:
            user = data["user"]
        return [NodeImage("lo-debian", "loopback debian", self, extra={"ssh_user": user})]

    def import_key_pair_from_string(self, name: str, key_material: str) -> KeyPair:
        with self._state() as data:
            data["keys"][name] = key_material.strip()
        return self._key(name, key_material.strip())

    def _key(self, name: str, public: str) -> KeyPair:
        fingerprint = hashlib.md5(public.encode()).hexdigest()  # a label, as EC2 shows one
        return KeyPair(name, public, fingerprint, self)

    def list_key_pairs(self) -> list[KeyPair]:
        with self._state() as data:
            return [self._key(n, k) for n, k in data["keys"].items()]

    def delete_key_pair(self, key_pair: KeyPair) -> bool:
        with self._state() as data:
            return data["keys"].pop(key_pair.name, None) is not None

    # -- nodes --------------------------------------------------------------------------------------

    def create_node(
        self,
        name: str,
        size: NodeSize,
        image: NodeImage,
        ex_keyname: str | None = None,
        ex_metadata: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Node:
        with self._state() as data:
            free = [h for h in data["hosts"] if h["node"] is None]
            if not free:
                raise RuntimeError("the loopback pool has no free machine")
            host = free[0]
            public = data["keys"][ex_keyname] if ex_keyname else kwargs["auth"].pubkey
            with open(data["authorized"], "a") as f:  # what cloud-init does with the key
                f.write(public.strip() + "\n")
            host["node"] = {
                "id": f"lo-{host['address']}",
                "name": name,
                "state": "running",
                "tags": dict(ex_metadata or {}),
                "size": size.id,
            }
            return self._node(host)

    def list_nodes(self, ex_node_ids: list[str] | None = None) -> list[Node]:
        with self._state() as data:
            return [self._node(h) for h in data["hosts"] if h["node"] is not None]

    def ex_get_console_output(self, node: Node) -> dict[str, str]:
        with self._state() as data:
            (host,) = [h for h in data["hosts"] if h["node"] and h["node"]["id"] == node.id]
        if not host["console"]:
            raise RuntimeError("this machine has no console output")
        return {
            "output": "cloud-init: booting\n-----BEGIN SSH HOST KEY KEYS-----\n"
            f"{host['host_key']} root@{host['address']}\n-----END SSH HOST KEY KEYS-----\n"
        }

    def destroy_node(self, node: Node) -> bool:
        with self._state() as data:
            (host,) = [h for h in data["hosts"] if h["node"] and h["node"]["id"] == node.id]
            host["node"]["state"] = "terminated"
        _kill_machine(int(host["sshd_pid"]), str(host["home"]))
        return True

    def stop_node(self, node: Node) -> bool:
        """The machine powers off: its sshd and processes end; its home (the disk) stays."""
        with self._state() as data:
            (host,) = [h for h in data["hosts"] if h["node"] and h["node"]["id"] == node.id]
            host["node"]["state"] = "stopped"
        _kill_machine(int(host["sshd_pid"]), str(host["home"]))
        return True

    def start_node(self, node: Node) -> bool:
        """The machine boots again, as a cloud's does, at a new address (127.0.0.N+20): the
        same sshd configuration, host key and home."""
        with self._state() as data:
            (host,) = [h for h in data["hosts"] if h["node"] and h["node"]["id"] == node.id]
            old = host["address"]
            a, b, c, last = old.split(".")
            new = f"{a}.{b}.{c}.{int(last) + 20}"
            config = Path(host["config"])
            config.write_text(
                config.read_text().replace(f"ListenAddress {old}:", f"ListenAddress {new}:")
            )
            with open(config.with_name("sshd.log"), "ab") as log:
                proc = subprocess.Popen(
                    [host["sshd"], "-D", "-e", "-f", str(config)],
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            BOOTED.append(proc)
            host.update(address=new, sshd_pid=proc.pid)
            host["node"]["state"] = "running"
        return True


def _kill_machine(sshd: int, home: str) -> None:
    """sshd, its sessions and everything running from the home; this process last, if it is
    one of them (the head's reaper destroying its own machine)."""
    sessions = subprocess.run(["pgrep", "-P", str(sshd)], capture_output=True, text=True).stdout
    from_home = subprocess.run(["pgrep", "-f", home], capture_output=True, text=True).stdout
    pids = [int(p) for p in (sessions + from_home).split()] + [sshd]
    for pid in pids:
        if pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if os.getpid() in pids:
        os.kill(os.getpid(), signal.SIGKILL)
