"""Clusters: where objects live. Siblings under one abstract base (:mod:`.base`): the local
daemon (:mod:`.local`), machines over SSH (:mod:`.ssh`); ``rh.cluster`` (:mod:`.factory`)
returns the right one."""

from .base import Cluster
from .factory import cluster
from .local import LocalCluster

__all__ = ["Cluster", "LocalCluster", "cluster"]
