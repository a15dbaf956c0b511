"""``rh.cluster(...)``: the one entry point that returns a cluster of the right kind.

* ``rh.cluster("local")`` (or ``rh.cluster()``) — the embedded daemon on this machine;
* ``rh.cluster(name, host=[...], ssh_creds={...})`` — machines reached over SSH;
* ``rh.cluster(name, instance_type=..., provider=...)`` — machines allocated from a cloud
  (:mod:`.ondemand`); a saved on-demand cluster of that name is reused, so the same line run
  again reconnects to its running nodes instead of creating new ones;
* ``rh.cluster(name)`` — a cluster saved with ``cluster.save()``, reconnected as it was saved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._store import load
from ..wire.exceptions import ClusterError
from .base import Cluster
from .local import LocalCluster


def cluster(name: str = "local", host: str | Sequence[str] | None = None, **kwargs: Any) -> Any:
    """A cluster handle (see the module docstring): ``rh.cluster("local").up_if_not()``;
    ``rh.cluster(name="gpu", host=["10.0.0.5", ...], ssh_creds={"user": ..., "key": ...},
    server_port=32301, autostop_mins=60)``; ``rh.cluster(name="gpu")`` for a saved one."""
    if host is not None:
        from .ssh import SSHCluster  # asyncssh takes ~0.1 s to import: only when used

        return SSHCluster(name, host, **kwargs)
    if "instance_type" in kwargs or "provider" in kwargs:
        from .ondemand.cluster import OnDemandCluster  # libcloud: only when used

        try:
            config, meta = load(name, "cluster")
        except KeyError:
            return OnDemandCluster(name, **kwargs)
        if config.get("kind") != OnDemandCluster.kind:
            raise ClusterError(
                f"{name!r} is a saved {config.get('kind')} cluster: choose another name for an "
                "on-demand one, or load it with rh.cluster(name)"
            )
    elif name != "local":
        try:
            config, meta = load(name, "cluster")
        except KeyError as exc:
            raise ClusterError(
                f"unknown cluster {name!r}: give its hosts (rh.cluster(name, host=[...], "
                f"ssh_creds=...)), or save it first with cluster.save(). {exc.args[0]}"
            ) from None
    if name != "local":
        config.update(kwargs)
        found = Cluster.from_config(config)
        vars(found)["_rh_saved"] = meta  # its later saves carry the loaded version's ETag
        return found
    return LocalCluster(name, **kwargs)
