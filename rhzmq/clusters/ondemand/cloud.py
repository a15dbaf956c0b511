"""What an on-demand cluster asks of a provider, over a libcloud ``NodeDriver``: sizes, an image,
the cluster's key pair and firewall, nodes made, listed and destroyed, host keys from the
console. Blocking calls (libcloud speaks HTTP synchronously); the cluster runs them in threads.

Everything made is named ``rhzmq-<cluster>`` (nodes ``rhzmq-<cluster>-<i>``) and, where the
provider has tags, tagged ``rhzmq-cluster=<cluster>``: nodes and firewalls are found again by
tag, so a teardown from another process (or the head's autostop) finds what to delete.

:class:`Cloud` is the generic path, for any libcloud driver: nodes with the cluster's key
(imported where the driver can, else as the node's auth), found by tag or name, destroyed; the
firewall is the provider's default (said so at creation). :class:`EC2Cloud` adds what EC2 has: a
security group opening SSH only (and the broker port to the group's own members), tags on the
group, spot instances, a root disk size, instance-initiated shutdown that terminates, and host
keys read from the console output.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar

from ...wire.exceptions import ClusterError
from .providers import Credentials, canonical, make_driver

T = TypeVar("T")

TAG = "rhzmq-cluster"
#: Canonical's AWS account: where the default Ubuntu images come from.
CANONICAL = "099720109477"
DEFAULT_IMAGES = {"aws": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"}
#: The login user of an image family (cloud images have one, with sudo and the key installed).
DEFAULT_USERS = {"aws": "ubuntu", "gcp": "ubuntu", "azure": "azureuser"}

_HOST_KEYS = re.compile(
    r"-----BEGIN SSH HOST KEY KEYS-----\s*(.*?)-----END SSH HOST KEY KEYS-----", re.S
)


def resource_name(cluster: str) -> str:
    return f"rhzmq-{cluster}"


def node_name(cluster: str, index: int) -> str:
    return f"rhzmq-{cluster}-{index}"


def host_keys_from_console(text: str) -> list[str]:
    """Host public keys (``type base64``) printed by cloud-init on the console, if it did."""
    found = _HOST_KEYS.search(text or "")
    if not found:
        return []
    keys = []
    for line in found.group(1).splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(("ssh-", "ecdsa-")):
            keys.append(f"{parts[0]} {parts[1]}")
    return keys


def state(node: Any) -> str:
    """A node's state as a plain word: running, pending, stopped, terminated..."""
    return str(getattr(node.state, "value", node.state)).lower()


class Cloud:
    """A provider's driver, with our names, tags and errors (see the module docstring)."""

    def __init__(self, provider: str, creds: Credentials, region: str | None) -> None:
        self.provider = provider
        self.creds = creds
        self.region = region
        self.driver = make_driver(provider, creds, region)

    @staticmethod
    def of(provider: str, creds: Credentials, region: str | None) -> Cloud:
        cls = EC2Cloud if canonical(provider) == "aws" else Cloud
        return cls(provider, creds, region)

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with libcloud's errors as ClusterErrors that say what to do."""
        from libcloud.common.exceptions import BaseHTTPError
        from libcloud.common.types import InvalidCredsError, LibcloudError

        try:
            return fn(*args, **kwargs)
        except InvalidCredsError as exc:
            raise ClusterError(
                f"{self.provider} refused the credentials from {self.creds.source} while trying "
                f"to {what} ({_message(exc)}). Check them (for AWS: `aws sts "
                "get-caller-identity`), or set the right ones where rhzmq looks (see "
                "docs/security.md, 'On-demand clusters')"
            ) from None
        except (LibcloudError, BaseHTTPError, OSError) as exc:
            raise ClusterError(f"{self.provider}: could not {what}: {_message(exc)}") from None

    # -- sizes and images -------------------------------------------------------------------------

    def sizes(self) -> list[Any]:
        return list(self.call("list sizes", self.driver.list_sizes))

    def image(self, image_id: str | None) -> Any:
        images = self.call("list images", self.driver.list_images)
        if image_id is not None:
            for image in images:
                if image.id == image_id:
                    return image
            raise ClusterError(f"{self.provider}: no image {image_id!r} in this region")
        if len(images) == 1:
            return images[0]
        raise ClusterError(
            f"{self.provider}: rhzmq has no default image here; pass image_id= (one of "
            f"{', '.join(i.id for i in images[:8])}{', ...' if len(images) > 8 else ''})"
        )

    def default_user(self, image: Any) -> str:
        extra = getattr(image, "extra", None) or {}
        return str(extra.get("ssh_user") or DEFAULT_USERS.get(canonical(self.provider), "root"))

    # -- key pair and firewall ----------------------------------------------------------------

    def _accepts(self, method: Callable[..., Any], name: str) -> bool:
        try:
            return name in inspect.signature(method).parameters
        except (TypeError, ValueError):
            return False

    def import_key(self, cluster: str, public_key: str) -> bool:
        """Register the cluster's public key as ``rhzmq-<cluster>``; False where the driver has
        no key pairs (then each node gets it as its auth)."""
        if not hasattr(self.driver, "import_key_pair_from_string"):
            return False
        self.delete_key(cluster)  # a key of an earlier allocation: ours to replace
        self.call(
            "import the key pair",
            self.driver.import_key_pair_from_string,
            resource_name(cluster),
            public_key,
        )
        return True

    def delete_key(self, cluster: str) -> bool:
        if not hasattr(self.driver, "list_key_pairs"):
            return False
        for key in self.call("list key pairs", self.driver.list_key_pairs):
            if key.name == resource_name(cluster):
                self.call("delete the key pair", self.driver.delete_key_pair, key)
                return True
        return False

    def open_ssh(self, cluster: str, ssh_cidr: str, broker_port: int) -> str | None:
        """A firewall letting SSH in (and the broker port between the cluster's own nodes);
        None where rhzmq does not manage the provider's firewall."""
        return None

    def delete_firewall(self, cluster: str) -> list[str]:
        return []

    def leave_firewall(self, node: Any) -> bool:
        """Take ``node`` out of the cluster's firewall (so it can be deleted while the node
        still runs: the head's reaper, before terminating its own machine); False where
        rhzmq manages no firewall."""
        return False

    # -- nodes ------------------------------------------------------------------------------------

    def create_node(
        self,
        cluster: str,
        index: int,
        size: Any,
        image: Any,
        *,
        public_key: str,
        key_imported: bool,
        firewall: str | None,
        spot: bool,
        disk_size: int | None,
    ) -> Any:
        kwargs: dict[str, Any] = {}
        create = self.driver.create_node
        if key_imported and self._accepts(create, "ex_keyname"):
            kwargs["ex_keyname"] = resource_name(cluster)
        else:
            from libcloud.compute.base import NodeAuthSSHKey

            kwargs["auth"] = NodeAuthSSHKey(public_key)
        if self._accepts(create, "ex_metadata"):
            kwargs["ex_metadata"] = {TAG: cluster}
        if spot:
            raise ClusterError("use_spot=True: rhzmq asks for spot machines on aws only")
        return self.call(
            f"create node {node_name(cluster, index)}",
            create,
            name=node_name(cluster, index),
            size=size,
            image=image,
            **kwargs,
        )

    def nodes(self, cluster: str) -> list[Any]:
        """The cluster's nodes that are not terminated, in index order."""
        found = [
            n
            for n in self.call("list nodes", self.driver.list_nodes)
            if (n.extra or {}).get("tags", {}).get(TAG) == cluster
            or str(n.name).startswith(f"{resource_name(cluster)}-")
        ]
        return _by_index([n for n in found if state(n) != "terminated"])

    def refresh(self, node_ids: list[str]) -> list[Any]:
        """The nodes with these ids, as the provider sees them now (terminated ones left out)."""
        wanted = set(node_ids)
        nodes = [n for n in self.call("list nodes", self.driver.list_nodes) if n.id in wanted]
        return [n for n in nodes if state(n) != "terminated"]

    def destroy(self, node: Any) -> None:
        self.call(f"terminate {node.name}", self.driver.destroy_node, node)

    # -- stop and start (machines kept, disks kept) -----------------------------------------

    def can_stop(self) -> bool:
        """Whether the driver stops and starts machines (libcloud's ``stop_node`` and
        ``start_node``, which the base ``NodeDriver`` leaves unimplemented)."""
        from libcloud.compute.base import NodeDriver

        kind = type(self.driver)
        return (
            getattr(kind, "stop_node", None) is not NodeDriver.stop_node
            and getattr(kind, "start_node", None) is not NodeDriver.start_node
        )

    def stop(self, node: Any) -> None:
        self.call(f"stop {node.name}", self.driver.stop_node, node)

    def start(self, node: Any) -> None:
        self.call(f"start {node.name}", self.driver.start_node, node)

    def host_keys(self, node: Any) -> list[str]:
        """The node's SSH host keys from its console output, where the provider shows it."""
        console = getattr(self.driver, "ex_get_console_output", None)
        if console is None:
            return []
        try:
            output = console(node)
        except Exception:  # no console (yet): the caller falls back to trust on first use
            return []
        text = output.get("output", "") if isinstance(output, dict) else str(output or "")
        return host_keys_from_console(text)


class EC2Cloud(Cloud):
    """EC2: security groups, tags, spot, disks, console output (see the module docstring)."""

    def image(self, image_id: str | None) -> Any:
        if image_id is not None:
            found = self.call("find the image", self.driver.list_images, ex_image_ids=[image_id])
            if not found:
                raise ClusterError(f"aws: no image {image_id!r} in region {self.region}")
            return found[0]
        images = self.call(
            "find the default Ubuntu image",
            self.driver.list_images,
            ex_owner=CANONICAL,
            ex_filters={"name": DEFAULT_IMAGES["aws"]},
        )
        if not images:
            raise ClusterError(
                f"aws: no Ubuntu 24.04 image from Canonical in region {self.region}; pass image_id="
            )
        return max(images, key=lambda i: str(i.extra.get("creation_date") or i.name))

    def _tag(self, resource_id: str, tags: dict[str, str]) -> None:
        # 1-based list indices, as the EC2 API documents them (libcloud's ex_create_tags counts
        # from 0, which EC2 tolerates and stricter implementations refuse).
        params: dict[str, str] = {"Action": "CreateTags", "ResourceId.1": resource_id}
        for i, (key, value) in enumerate(tags.items(), start=1):
            params[f"Tag.{i}.Key"], params[f"Tag.{i}.Value"] = key, value
        self.call("tag", self.driver.connection.request, self.driver.path, params=params)

    def _groups(self, cluster: str) -> list[Any]:
        return list(
            self.call(
                "list security groups",
                self.driver.ex_get_security_groups,
                filters={f"tag:{TAG}": cluster},
            )
        )

    def open_ssh(self, cluster: str, ssh_cidr: str, broker_port: int) -> str | None:
        name = resource_name(cluster)
        for old in self._groups(cluster):
            # Made by an earlier allocation of this cluster: reuse it, with today's rules only.
            self._reconcile(old, ssh_cidr, broker_port)
            return str(old.name)
        group = self.call(
            "create the security group",
            self.driver.ex_create_security_group,
            name,
            f"rhzmq cluster {cluster}: SSH in, broker between its nodes",
        )
        group_id = group["group_id"]
        self._tag(group_id, {TAG: cluster, "Name": name})
        self.call(
            "open SSH",
            self.driver.ex_authorize_security_group_ingress,
            group_id,
            22,
            22,
            [ssh_cidr],
        )
        # The other nodes reach the head's broker (CURVE) from inside the group only.
        self.call(
            "let nodes reach the head",
            self.driver.ex_authorize_security_group_ingress,
            group_id,
            broker_port,
            broker_port + 1,
            None,
            [{"group_id": group_id}],
        )
        return name

    def _reconcile(self, group: Any, ssh_cidr: str, broker_port: int) -> None:
        """Make a reused group's ingress exactly what ``open_ssh`` would create now: revoke the
        rules not asked for (a wider SSH range of an earlier ``up``, an old broker port), then
        authorize the missing ones."""
        want_cidr = {("tcp", 22, 22, ssh_cidr)}
        want_pair = {("tcp", broker_port, broker_port + 1, str(group.id))}
        have_cidr, have_pair = set(), set()
        for rule in group.ingress_rules or []:
            proto = str(rule.get("protocol") or "tcp")
            ports = (int(rule.get("from_port") or 0), int(rule.get("to_port") or 0))
            for cidr in rule.get("cidr_ips") or []:
                have_cidr.add((proto, *ports, str(cidr)))
            for pair in rule.get("group_pairs") or []:
                if pair.get("group_id"):
                    have_pair.add((proto, *ports, str(pair["group_id"])))
        for proto, low, high, cidr in sorted(have_cidr - want_cidr):
            self.call(
                f"revoke {cidr} on ports {low}-{high} of {group.name}",
                self.driver.ex_revoke_security_group_ingress,
                group.id,
                low,
                high,
                [cidr],
                None,
                proto,
            )
        for proto, low, high, other in sorted(have_pair - want_pair):
            self.call(
                f"revoke group {other} on ports {low}-{high} of {group.name}",
                self.driver.ex_revoke_security_group_ingress,
                group.id,
                low,
                high,
                None,
                [{"group_id": other}],
                proto,
            )
        for proto, low, high, cidr in sorted(want_cidr - have_cidr):
            self.call(
                "open SSH",
                self.driver.ex_authorize_security_group_ingress,
                group.id,
                low,
                high,
                [cidr],
                None,
                proto,
            )
        for proto, low, high, other in sorted(want_pair - have_pair):
            self.call(
                "let nodes reach the head",
                self.driver.ex_authorize_security_group_ingress,
                group.id,
                low,
                high,
                None,
                [{"group_id": other}],
                proto,
            )

    def delete_firewall(self, cluster: str) -> list[str]:
        deleted = []
        for group in self._groups(cluster):
            self.call(
                f"delete security group {group.name}",
                self.driver.ex_delete_security_group_by_id,
                group.id,
            )
            deleted.append(f"security group {group.name} ({group.id})")
        return deleted

    def leave_firewall(self, node: Any) -> bool:
        """Move ``node`` into its VPC's ``default`` group (a VPC instance's groups can change
        while it runs), out of the cluster's, which can then be deleted."""
        vpc = (node.extra or {}).get("vpc_id")
        filters = {"group-name": "default", **({"vpc-id": vpc} if vpc else {})}
        groups = self.call(
            "find the default security group", self.driver.ex_get_security_groups, filters=filters
        )
        if not groups:
            return False
        self.call(
            f"move {node.name} to the default security group",
            self.driver.ex_modify_instance_attribute,
            node,
            {"GroupId.1": groups[0].id},
        )
        return True

    def create_node(
        self,
        cluster: str,
        index: int,
        size: Any,
        image: Any,
        *,
        public_key: str,
        key_imported: bool,
        firewall: str | None,
        spot: bool,
        disk_size: int | None,
    ) -> Any:
        kwargs: dict[str, Any] = {}
        if disk_size:
            device = (image.extra or {}).get("root_device_name") or "/dev/sda1"
            kwargs["ex_blockdevicemappings"] = [
                {
                    "DeviceName": device,
                    "Ebs": {
                        "VolumeSize": int(disk_size),
                        "VolumeType": "gp3",
                        "DeleteOnTermination": "true",
                    },
                }
            ]
        return self.call(
            f"create node {node_name(cluster, index)}",
            self.driver.create_node,
            name=node_name(cluster, index),
            size=size,
            image=image,
            ex_keyname=resource_name(cluster),
            ex_securitygroup=[firewall] if firewall else None,
            ex_metadata={TAG: cluster},
            ex_spot=spot,
            # `shutdown` on the machine terminates it too: nothing idles on the bill.
            ex_terminate_on_shutdown=True,
            **kwargs,
        )

    def nodes(self, cluster: str) -> list[Any]:
        found = self.call("list nodes", self.driver.list_nodes, ex_filters={f"tag:{TAG}": cluster})
        return _by_index([n for n in found if state(n) != "terminated"])

    def refresh(self, node_ids: list[str]) -> list[Any]:
        if not node_ids:
            return []
        found = self.call("list nodes", self.driver.list_nodes, ex_node_ids=list(node_ids))
        return [n for n in found if state(n) != "terminated"]


def _by_index(nodes: list[Any]) -> list[Any]:
    def index(node: Any) -> int:
        tail = str(node.name).rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else 1 << 30

    return sorted(nodes, key=index)


def _message(exc: BaseException) -> str:
    text = str(getattr(exc, "message", "") or exc or type(exc).__name__)
    return text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
