"""Clusters on machines reached over SSH (``rh.cluster(name, host=[...], ssh_creds={...})``),
split by concept:

==============  ===============================================================
``cluster``     :class:`SSHCluster`: lifecycle, placement, code shipping, hosts
``keys``        CURVE keys and the gateway token a cluster's client holds
``bootstrap``   one host: probe, install this build, start and stop its daemon
``tunnel``      the client's SSH forwards to the head's broker and gateway
``code_sync``   mirroring the user's project onto every host
``transport``   asyncssh: connections, commands, files, forwards, where homes are
==============  ===============================================================
"""

from .cluster import SSHCluster

__all__ = ["SSHCluster"]
