"""``OnDemandCluster``: machines allocated from a cloud when needed, then an SSH cluster on them.

``up_if_not()``:

1. if the saved cluster's nodes all run, reconnect (the SSH cluster's ``up``: nothing is created);
2. otherwise resolve ``instance_type`` to the region's cheapest matching size (:mod:`.sizes`) and
   print it with its price and the total for ``num_nodes``; make the cluster's SSH key pair
   (``$RHZMQ_HOME/clusters/<name>/ssh_key``, RSA: every provider takes it) and register it;
   a firewall opening SSH only (:mod:`.cloud`); create the nodes in parallel, tagged
   ``rhzmq-cluster=<name>``, and save the cluster at once (a failure later still leaves what to
   tear down);
3. wait until every node runs and answers SSH, showing each one's progress; pin each node's host
   key into the cluster's own ``known_hosts``: the keys the provider's console shows (cloud-init
   prints them) when it shows them, else the key the node presents at first contact (trust on
   first use, said so in the output). Host-key checking is never off;
4. write what the head's autostop needs (:mod:`.reaper`) there, then bootstrap every node with
   the SSH cluster's code (head on node 0, node daemons, CURVE, code sync).

``teardown()`` stops the daemons, terminates every node and deletes the key pair and firewall,
printing what it deleted. After autostop the head has terminated the nodes itself; the saved
cluster reads as torn down the next time it is looked at (``status_summary()``,
``rh.Cluster.list()``, ``up_if_not()``).

``stop()`` stops the daemons and the machines (libcloud's ``stop_node``; the disks stay) and saves
the cluster as "stopped"; ``start()``/``up_if_not()`` then starts the same machines, pins each
one's (possibly new) address with the host key pinned for its node id at creation, and
bootstraps. A driver without ``stop_node`` makes both a ClusterError.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import asyncssh

from ..._portal import run_sync
from ..._tasks import gather
from ...wire.exceptions import ClusterError, ClusterNotRunning
from ...wire.launch import DaemonArgs
from ...wire.settings import DEFAULT_GATEWAY_PORT, DEFAULT_SERVER_PORT
from ..ssh import SSHCluster, transport
from ..ssh.bootstrap import say
from . import sizes
from .cloud import Cloud, node_name, state
from .providers import Credentials, canonical, credentials, provider_path
from .reaper import SPEC

REAPER = "rhzmq.clusters.ondemand.reaper"
#: States a saved node can be started again from (``stop()``, or stopped by hand).
_PINNING = threading.Lock()
_RESTARTABLE = {"running", "stopped", "stopping", "pending"}
#: How long a node may take to run and answer SSH.
READY_TIMEOUT = 600.0


class OnDemandCluster(SSHCluster):
    """A cluster on machines a cloud allocates for it; see the module docstring."""

    kind = "ondemand"

    def __init__(
        self,
        name: str,
        instance_type: str | None = None,
        provider: str | type[Any] | None = None,
        *,
        region: str | None = None,
        num_nodes: int = 1,
        use_spot: bool = False,
        image_id: str | None = None,
        disk_size: int | None = None,
        autostop_mins: float = 60,
        credentials: Any = None,
        endpoint_url: str | None = None,
        ssh_user: str | None = None,
        ssh_cidr: str = "0.0.0.0/0",
        server_port: int = DEFAULT_SERVER_PORT,
        gateway_port: int | None = DEFAULT_GATEWAY_PORT,
        # What an allocation left, as saved (rh.cluster(name) reconnects with it):
        allocation: dict[str, Any] | None = None,
        **ssh: Any,
    ) -> None:
        if provider is None or not instance_type:
            raise ClusterError(
                f"cluster {name!r}: an on-demand cluster needs instance_type= (e.g. 'A10G:1', "
                "'CPU:4+') and provider= ('aws', 'gcp', 'azure', or a libcloud provider)"
            )
        if int(num_nodes) < 1:
            raise ValueError(f"num_nodes must be at least 1, got {num_nodes}")
        self.allocation: dict[str, Any] = dict(allocation or {})
        super().__init__(
            name,
            list(self.allocation.get("hosts") or []),
            ssh_creds=self.allocation.get("ssh_creds"),
            server_port=server_port,
            gateway_port=gateway_port,
            autostop_mins=autostop_mins,
            **ssh,
        )
        self.instance_type = str(instance_type)
        self.provider = provider_path(provider)
        self.region = region
        self.num_nodes = int(num_nodes)
        self.use_spot = bool(use_spot)
        self.image_id = image_id
        self.disk_size = disk_size
        self.ssh_user = ssh_user
        self.ssh_cidr = ssh_cidr
        self.endpoint_url = endpoint_url
        self._explicit_credentials = credentials  # a dict or an rh.provider_secret(...)
        self._cloud: Cloud | None = None
        self._image: Any = None
        #: What the last teardown deleted (also printed).
        self.deleted: list[str] = []

    @staticmethod
    def _check_hosts(host: str | Sequence[str]) -> list[str]:
        return [] if not host else SSHCluster._check_hosts(host)  # [] until allocated

    def config(self) -> dict[str, Any]:
        config = super().config()
        for key in ("host", "ssh_creds", "tunnel_workers"):
            config.pop(key)
        config.update(
            instance_type=self.instance_type,
            provider=self.provider,
            region=self.region,
            num_nodes=self.num_nodes,
            use_spot=self.use_spot,
            image_id=self.image_id,
            disk_size=self.disk_size,
            endpoint_url=self.endpoint_url,
            ssh_user=self.ssh_user,
            ssh_cidr=self.ssh_cidr,
            allocation=self.allocation,  # ids, addresses, size, price, times: no credentials
        )
        return config

    # -- the provider ---------------------------------------------------------------------------

    def credentials(self) -> Credentials:
        return credentials(self.provider, self._explicit_credentials, self.endpoint_url)

    def cloud(self) -> Cloud:
        if self._cloud is None:
            self._cloud = Cloud.of(self.provider, self.credentials(), self.region)
        return self._cloud

    @property
    def node_ids(self) -> list[str]:
        return list(self.allocation.get("node_ids") or [])

    def _ssh_key(self) -> Path:
        """The cluster's own SSH key (made once, owner-only, next to its CURVE keys)."""
        path = self._keys.directory() / "ssh_key"
        if not path.exists():
            key = asyncssh.generate_private_key("ssh-rsa", key_size=3072)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key.export_private_key())
            path.with_suffix(".pub").write_bytes(key.export_public_key())
        return path

    def _known_hosts(self) -> Path:
        return self._keys.directory() / "known_hosts"

    # -- lifecycle -------------------------------------------------------------------------------

    async def aup_if_not(self, *, restart: bool = False) -> OnDemandCluster:
        """Allocate the nodes unless the saved ones run, then bootstrap them; returns self."""
        await transport.on_portal(self._aallocate())
        await super().aup_if_not(restart=restart)
        return self

    async def _alive(self) -> list[Any]:
        if not self.node_ids:
            return []
        return await anyio.to_thread.run_sync(self.cloud().refresh, self.node_ids)

    async def _aallocate(self) -> None:
        alive = await self._alive()
        if alive and len(alive) == len(self.node_ids):
            states = {state(n) for n in alive}
            if states == {"running"} and self.allocation.get("status") == "up" and self.hosts:
                return  # a saved, running cluster: reconnect (SSHCluster's up does)
            if states <= _RESTARTABLE:  # stopped (by stop(), or by hand): the same machines
                await self._aconnectable(await self._astart_nodes(alive))
                return
        nodes = await self.aprovision()
        await self._aconnectable(nodes)

    # -- stop and start ----------------------------------------------------------------------------

    def _check_stoppable(self) -> Cloud:
        cloud = self.cloud()
        if not cloud.can_stop():
            raise ClusterError(
                f"cluster {self.name!r}: provider {self.provider} cannot stop and start machines "
                "(its libcloud driver has no stop_node/start_node); teardown() ends the cluster "
                "and up_if_not() makes a new one"
            )
        return cloud

    def stop(self) -> None:
        """Stop the daemons and the machines, keeping them and their disks (which still cost
        what disks cost); ``start()`` or ``up_if_not()`` starts the same machines again."""
        run_sync(self.astop, hint="`await cluster.astop()`")

    async def astop(self) -> None:
        await transport.on_portal(self._astop())

    async def _astop(self) -> None:
        cloud = self._check_stoppable()
        if not self.node_ids:
            raise ClusterError(f"cluster {self.name!r} has no machines to stop (not allocated)")
        if self.hosts:
            try:
                await self._ateardown()
            except (ClusterError, ClusterNotRunning, OSError) as exc:
                say(self.name, f"daemons not stopped ({exc}); stopping the machines anyway")
        self._disconnect()
        alive = await self._alive()
        running = [n for n in alive if state(n) not in ("stopped", "stopping")]
        for n in running:
            say(n.name, "stopping (its disk is kept)")
        await gather(*(anyio.to_thread.run_sync(cloud.stop, n) for n in running))
        ids = [n.id for n in alive]
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            now = await anyio.to_thread.run_sync(cloud.refresh, ids)
            if all(state(n) == "stopped" for n in now) or time.monotonic() > deadline:
                break
            await anyio.sleep(2.0)
        launched = self.allocation.get("launched_at")
        billed = float(self.allocation.get("billed_secs") or 0.0)
        if launched:
            billed += time.time() - float(launched)
        self.allocation.update(
            status="stopped", hosts=[], launched_at=None, billed_secs=billed, stopped_at=time.time()
        )
        self.hosts = []
        self.save()
        say(self.name, f"stopped {len(alive)} node(s); start() or up_if_not() starts them again")

    def start(self) -> OnDemandCluster:
        """Start a stopped cluster's machines again and bootstrap them (``up_if_not()``)."""
        run_sync(self.astart, hint="`await cluster.astart()`")
        return self

    async def astart(self) -> OnDemandCluster:
        self._check_stoppable()
        return await self.aup_if_not()

    async def _astart_nodes(self, nodes: list[Any]) -> list[Any]:
        """Start the stopped ones of ``nodes`` (waiting out a 'stopping'); returns them."""
        cloud = self._check_stoppable()
        deadline = time.monotonic() + READY_TIMEOUT
        while any(state(n) == "stopping" for n in nodes) and time.monotonic() < deadline:
            await anyio.sleep(2.0)
            nodes = await anyio.to_thread.run_sync(cloud.refresh, [n.id for n in nodes])
        stopped = [n for n in nodes if state(n) == "stopped"]
        for n in stopped:
            say(n.name, "starting again (same machine, same disk)")
        await gather(*(anyio.to_thread.run_sync(cloud.start, n) for n in stopped))
        self.allocation["status"] = "starting"
        if stopped:
            self.allocation["launched_at"] = time.time()
        self.save()
        order = {i: k for k, i in enumerate(self.node_ids)}
        return sorted(nodes, key=lambda n: order.get(n.id, 1 << 30))

    def provision(self) -> list[Any]:
        """Create the nodes (the first half of ``up_if_not()``: no waiting, no bootstrap);
        returns libcloud's nodes. Nodes of an earlier allocation still alive are replaced."""
        return run_sync(self.aprovision, hint="`await cluster.aprovision()`")

    async def aprovision(self) -> list[Any]:
        return await transport.on_portal(self._aprovision())

    async def _aprovision(self) -> list[Any]:
        alive = await self._alive()
        if alive:  # some gone (a spot reclaimed, stopped by hand): start afresh
            say(self.name, f"{len(alive)} of {len(self.node_ids)} nodes left: replacing them all")
            await self._aterminate(alive)
        cloud = self.cloud()
        choice = sizes.resolve(
            sizes.parse(self.instance_type),
            await anyio.to_thread.run_sync(cloud.sizes),
            canonical(self.provider),
            self.region,
            self.num_nodes,
        )
        image = await anyio.to_thread.run_sync(cloud.image, self.image_id)
        print(f"[{self.name}] {canonical(self.provider)} {choice.describe()}", file=sys.stderr)
        public_key = self._ssh_key().with_suffix(".pub").read_text().strip()
        imported = await anyio.to_thread.run_sync(cloud.import_key, self.name, public_key)
        firewall = await anyio.to_thread.run_sync(
            cloud.open_ssh, self.name, self.ssh_cidr, self.server_port
        )
        if firewall is None:
            say(self.name, f"{self.provider}: the provider's default firewall applies")
        else:
            say(self.name, f"firewall {firewall}: SSH from {self.ssh_cidr} only")

        async def create(i: int) -> Any:
            say(node_name(self.name, i), f"creating ({choice.size.id})")
            return await anyio.to_thread.run_sync(
                lambda: cloud.create_node(
                    self.name,
                    i,
                    choice.size,
                    image,
                    public_key=public_key,
                    key_imported=imported,
                    firewall=firewall,
                    spot=self.use_spot,
                    disk_size=self.disk_size,
                )
            )

        nodes = await gather(*(create(i) for i in range(self.num_nodes)))
        self.allocation = {
            "node_ids": [n.id for n in nodes],
            "size": choice.size.id,
            "hourly_price": choice.total,
            "image_id": image.id,
            "launched_at": time.time(),
            "status": "allocating",
            "host_keys": {},  # node id -> its pinned host key, kept across stop/start
        }
        self.image_id = self.image_id or image.id
        self.save()  # from now on there is something to tear down: make it findable
        self._image = image
        return list(nodes)

    async def _aconnectable(self, nodes: list[Any]) -> None:
        """Wait for every node to run and answer SSH; set the hosts and logins from them."""
        cloud = self.cloud()
        ready = await gather(*(self._await_ready(n) for n in nodes))
        saved = (self.allocation.get("ssh_creds") or {}).get("user")
        user = self.ssh_user or saved or cloud.default_user(self._image)
        port = int((ready[0].extra or {}).get("ssh_port") or 22)
        self.hosts = [_public_ip(n) for n in ready]
        self.creds = transport.SSHCreds(
            user=user, key=str(self._ssh_key()), port=port, known_hosts=str(self._known_hosts())
        )
        self.allocation.update(
            hosts=self.hosts,
            private_ips=[_private_ip(n) for n in ready],
            ssh_creds=self.creds.to_dict(),
            status="up",
        )
        self.save()

    async def _await_ready(self, node: Any) -> Any:
        """Wait until ``node`` runs and answers SSH, then pin its host key; returns it fresh."""
        cloud = self.cloud()
        deadline = time.monotonic() + READY_TIMEOUT
        started, last = time.monotonic(), ""
        while True:
            found = await anyio.to_thread.run_sync(cloud.refresh, [node.id])
            current = found[0] if found else None
            now = state(current) if current is not None else "terminated"
            if now == "terminated" or (current is None and time.monotonic() > deadline):
                raise ClusterError(
                    f"node {node.name} ({node.id}) was terminated while starting (a spot "
                    "machine reclaimed, or a quota): tear the cluster down and retry"
                )
            if now != last:
                say(node.name, f"{now} ({time.monotonic() - started:.0f} s)")
                last = now
            if now == "running" and current is not None and _public_ip(current):
                port = int((current.extra or {}).get("ssh_port") or 22)
                presented = await _server_key(_public_ip(current), port)
                if presented is not None:
                    await anyio.to_thread.run_sync(self._pin, current, port, presented)
                    say(node.name, f"answers SSH at {_public_ip(current)}")
                    return current
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"node {node.name} ({node.id}) did not run and answer SSH within "
                    f"{READY_TIMEOUT:g} s (state: {now}); see the provider's console"
                )
            await anyio.sleep(2.0)

    def _pin(self, node: Any, port: int, presented: asyncssh.SSHKey) -> None:
        key = presented.export_public_key().decode().split()
        line = f"{key[0]} {key[1]}"
        pinned: dict[str, str] = self.allocation.setdefault("host_keys", {})
        before = pinned.get(node.id)
        if before is not None:
            # The same machine (stopped and started, perhaps at a new address): the key it was
            # pinned with, and no other, whatever its console shows now.
            if line != before:
                raise ClusterError(
                    f"node {node.name} ({node.id}) presents another SSH host key than the one "
                    "pinned when it was created: someone may be between you and it. Nothing "
                    "was sent; tear the cluster down"
                )
            how = "the key pinned at creation (same node id)"
        else:
            shown = self.cloud().host_keys(node)
            if shown and line not in shown:
                raise ClusterError(
                    f"node {node.name} presents an SSH host key its console does not show: "
                    "someone may be between you and it. Nothing was sent; tear the cluster down"
                )
            how = "from the provider's console" if shown else "trusted on first use (no console)"
        host = _public_ip(node)
        name = host if port == 22 else f"[{host}]:{port}"
        path = self._known_hosts()
        with _PINNING:  # the nodes are pinned from parallel threads: one file, one writer
            kept = [
                entry
                for entry in (path.read_text().splitlines() if path.exists() else [])
                # A new machine may reuse an old address; this machine's old address goes.
                if entry.split(" ", 1)[0] != name
                and (before is None or not entry.endswith(f" {before}"))
            ]
            path.write_text("\n".join([*kept, f"{name} {line}"]) + "\n")
            os.chmod(path, 0o600)
        pinned[node.id] = line
        if before is None:
            say(node.name, f"host key {key[0]} pinned, {how}")
        else:
            say(node.name, f"host key {key[0]} re-pinned at {name}: {how}")

    # -- the head's autostop ---------------------------------------------------------------------

    def _daemon_args(self, index: int) -> DaemonArgs:
        args = super()._daemon_args(index)
        if index == 0:
            from dataclasses import replace

            return replace(args, on_autostop=REAPER)
        return args

    def _head_endpoint(self) -> str:
        private = self.allocation.get("private_ips") or self.hosts
        if self.tunnel_workers:
            return super()._head_endpoint()
        return f"tcp://{private[0]}:{self.server_port}"

    async def _start(self, conns: Sequence[asyncssh.SSHClientConnection], index: int) -> None:
        if index == 0:
            await self._put_reaper(conns[0])
        await super()._start(conns, index)

    def reaper_spec(self) -> dict[str, Any]:
        """What the head's reaper is given (credentials included: only ever written to an
        owner-only file on the head)."""
        return {
            "cluster": self.name,
            "provider": self.provider,
            "region": self.region,
            "nodes": self.node_ids,
            "credentials": self.credentials().to_dict(),
        }

    async def _put_reaper(self, conn: asyncssh.SSHClientConnection) -> None:
        """What the head's reaper needs, in owner-only files (see :mod:`.reaper`)."""
        where = await transport.remote_home(conn)
        root = f"{where.local}/ondemand"
        files = {SPEC: json.dumps(self.reaper_spec()).encode()}
        module = _provider_module(self.provider)
        if module is not None:
            files[f"providers/{module.name}"] = module.read_bytes()
        async with conn.start_sftp_client() as sftp:
            await sftp.makedirs(f"{root}/providers", exist_ok=True)
            for d in (where.rhzmq, where.local, root, f"{root}/providers"):
                await sftp.chmod(d, 0o700)
            for rel, data in files.items():
                # Created 0600 before a byte is written: the credentials are never readable.
                async with sftp.open(
                    f"{root}/{rel}", "wb", asyncssh.SFTPAttrs(permissions=0o600)
                ) as f:
                    await f.write(data)
                await sftp.chmod(f"{root}/{rel}", 0o600)

    # -- teardown and status ---------------------------------------------------------------------

    async def ateardown(self) -> None:
        """Stop the daemons, terminate every node, delete the key pair and firewall; prints
        what it deleted."""
        await transport.on_portal(self._ateardown_all())

    async def _ateardown_all(self) -> None:
        if self.hosts:
            try:
                await self._ateardown()
            except (ClusterError, ClusterNotRunning) as exc:
                say(self.name, f"daemons not stopped ({exc}); terminating the nodes anyway")
        self._disconnect()
        cloud = self.cloud()
        nodes = await anyio.to_thread.run_sync(cloud.nodes, self.name)
        nodes += [n for n in await self._alive() if n.id not in {m.id for m in nodes}]
        deleted = await self._aterminate(nodes)
        for group in await self._aretry(cloud.delete_firewall, self.name):
            deleted.append(group)
        if await anyio.to_thread.run_sync(cloud.delete_key, self.name):
            deleted.append(f"key pair rhzmq-{self.name}")
        self._known_hosts().unlink(missing_ok=True)
        print(
            f"[{self.name}] deleted: {', '.join(deleted) if deleted else 'nothing (none left)'}",
            file=sys.stderr,
        )
        self.deleted = deleted
        self._forget("torn down")

    async def _aterminate(self, nodes: list[Any]) -> list[str]:
        cloud = self.cloud()
        await gather(*(anyio.to_thread.run_sync(cloud.destroy, n) for n in nodes))
        # Firewalls in use cannot be deleted: wait (bounded) until the nodes are gone.
        ids = [n.id for n in nodes]
        deadline = time.monotonic() + READY_TIMEOUT
        while ids and await anyio.to_thread.run_sync(cloud.refresh, ids):
            if time.monotonic() > deadline:
                break
            await anyio.sleep(2.0)
        return [f"node {n.name} ({n.id})" for n in nodes]

    async def _aretry(self, fn: Any, *args: Any) -> Any:
        """Deleting a firewall right after its nodes fails for a while on some providers."""
        for attempt in range(30):
            try:
                return await anyio.to_thread.run_sync(fn, *args)
            except ClusterError:
                if attempt == 29:
                    raise
                await anyio.sleep(2.0)
        return None

    def _forget(self, status: str) -> None:
        self.allocation = {"status": status, "ended_at": time.time()}
        self.hosts = []
        self.save()

    async def asummary(self) -> dict[str, Any]:
        """Status from the provider (no SSH): nodes running, size, uptime, cost so far."""
        summary: dict[str, Any] = {"name": self.name, "kind": self.kind}
        alive: list[Any] = []
        try:
            alive = await transport.on_portal(self._alive())
        except ClusterError as exc:
            status = f"unknown ({exc})"
        else:
            if self.node_ids and not alive:
                self._forget("torn down")  # autostop (or someone) terminated them
            status = (
                "up"
                if alive and all(state(n) == "running" for n in alive)
                else (
                    ", ".join(sorted({state(n) for n in alive}))
                    if alive
                    else self.allocation.get("status", "not allocated")
                )
            )
        launched = self.allocation.get("launched_at")
        price = self.allocation.get("hourly_price")
        billed = self.allocation.get("billed_secs")  # running time before a stop()
        running = time.time() - launched if launched and alive else None
        hours = (
            ((running or 0.0) + float(billed or 0.0)) / 3600
            if alive and (running is not None or billed is not None)
            else None
        )
        summary.update(
            status=status,
            nodes=len(alive),
            instance_type=f"{self.instance_type} ({self.allocation.get('size', '?')})",
            uptime=running,
            cost=price * hours if price is not None and hours is not None else None,
        )
        return summary

    def summary(self) -> dict[str, Any]:
        """This cluster's line of ``rh.Cluster.list()`` (asks the provider, not the nodes)."""
        return run_sync(self.asummary, hint="`await cluster.asummary()`")

    def __repr__(self) -> str:
        return (
            f"<OnDemandCluster {self.name!r} {self.provider} {self.instance_type} "
            f"x{self.num_nodes} hosts={self.hosts}>"
        )


def _public_ip(node: Any) -> str:
    return str((node.public_ips or node.private_ips or [""])[0])


def _private_ip(node: Any) -> str:
    return str((node.private_ips or node.public_ips or [""])[0])


async def _server_key(host: str, port: int) -> asyncssh.SSHKey | None:
    """The host key ``host:port`` presents, or None while it does not answer SSH yet."""
    try:
        with anyio.fail_after(10):
            return await asyncssh.get_server_host_key(host, port)
    except (OSError, asyncssh.Error, TimeoutError):
        return None


def _provider_module(provider: str) -> Path | None:
    """A custom provider's one-file module (shipped to the head), or None for libcloud's and
    for modules the head has anyway (rhzmq's own, installed packages)."""
    if ":" not in provider:
        return None
    name = provider.partition(":")[0]
    if name.split(".")[0] in ("rhzmq", "libcloud"):
        return None
    module = importlib.import_module(name)
    path = Path(getattr(module, "__file__", "") or "")
    if "." in name or path.name == "__init__.py" or not path.is_file():
        raise ClusterError(
            f"provider {provider!r}: autostop runs it on the head, and rhzmq ships only a "
            "top-level one-file module there; install your package on the image instead"
        )
    return path
