"""On-demand clusters: machines a cloud allocates when needed (``rh.cluster(name,
instance_type=..., provider=...)``), then the SSH cluster's bootstrap on them. Split by concept:

==============  ===============================================================================
``cluster``     :class:`OnDemandCluster`: allocate, wait for SSH, pin host keys, tear down
``providers``   provider names -> libcloud drivers; credentials from the providers' own places
``sizes``       ``instance_type`` (accelerator, CPU/memory, size name) -> the cheapest size
``cloud``       a driver with our names, tags, key pair, firewall and errors (EC2 in full)
``reaper``      run on the head after autostop: terminate every node through the provider
==============  ===============================================================================
"""

from __future__ import annotations

from typing import Any

from .cluster import OnDemandCluster


def ondemand_cluster(name: str, **kwargs: Any) -> OnDemandCluster:
    """``rh.ondemand_cluster(name, instance_type=..., provider=..., ...)``: the same as
    ``rh.cluster`` with those arguments (a saved cluster of that name is reused)."""
    from ..factory import cluster

    found = cluster(name, **kwargs)
    if not isinstance(found, OnDemandCluster):
        raise TypeError(f"{name!r} is a saved {found.kind} cluster, not an on-demand one")
    return found


__all__ = ["OnDemandCluster", "ondemand_cluster"]
