"""Autostop on an on-demand cluster's head: terminate every node through the provider's API.

The head's daemon runs ``python -m rhzmq.clusters.ondemand.reaper`` once autostop stopped it
(``DaemonArgs.on_autostop``; the daemon never imports this module). What it needs was written by
the client before the daemon started, into ``$RHZMQ_HOME/local/ondemand/`` on the head (mode
0700, files 0600, over SFTP — never argv, never the log):

* ``reaper.json``: the cluster's name, the provider (a name, or ``module:Class``), the region,
  the node ids (the head's first) and the driver's credentials;
* ``providers/<module>.py``: a custom provider's one-file module, put on ``sys.path`` here.

Nothing is left behind. It terminates the other nodes first and waits until the provider reads
them terminated; takes its own machine out of the cluster's security group (EC2: into the VPC's
``default`` group) and deletes the group — retrying while the provider still counts it in use —
and the cluster's key pair; then terminates the head (the machine it runs on). It logs what it
did (ids and names, never credentials). A step that fails is logged and the rest still runs:
the machines end in any case. The client's saved cluster reads as torn down the next time it is
looked at (``rh.Cluster.list()``, ``rhzmq clusters``, ``up_if_not()``): the head cannot write it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from ...wire import config as _config
from ...wire.exceptions import ClusterError
from .cloud import Cloud, resource_name, state
from .providers import Credentials

log = logging.getLogger("rhzmq.ondemand")

SPEC = "reaper.json"


def spec_dir() -> Path:
    """Where a head keeps what its reaper needs (under the owner-only ``local/``)."""
    return _config.home() / "local" / "ondemand"


def terminate(spec: dict[str, Any], *, poll: float = 2.0, timeout: float = 600.0) -> list[str]:
    """Terminate the spec's nodes, the head (the first id) last, deleting the cluster's security
    group and key pair before the head goes (see the module docstring); returns what was
    terminated and deleted, as ``name (id)`` / ``security group ...`` / ``key pair ...``. Nodes
    already gone are skipped."""
    cluster = str(spec["cluster"])
    cloud = Cloud.of(
        str(spec["provider"]), Credentials.from_dict(spec["credentials"]), spec.get("region")
    )
    ids = [str(i) for i in spec["nodes"]]
    alive = {n.id: n for n in cloud.refresh(ids) if state(n) != "terminated"}
    done = []
    for node_id in ids[1:]:
        node = alive.get(node_id)
        if node is not None:
            log.info("autostop: terminating %s (%s)", node.name, node.id)
            done.append(f"{node.name} ({node.id})")
            cloud.destroy(node)
    deadline = time.monotonic() + timeout
    while cloud.refresh(ids[1:]) and time.monotonic() < deadline:
        time.sleep(poll)  # a group in use by a node cannot be deleted: wait until they are gone
    head = alive.get(ids[0]) if ids else None
    done += _delete_leftovers(cloud, cluster, head, poll, deadline)
    if head is not None:
        log.info("autostop: terminating %s (%s), this machine", head.name, head.id)
        done.append(f"{head.name} ({head.id})")
        cloud.destroy(head)
    return done


def _delete_leftovers(
    cloud: Cloud, cluster: str, head: Any, poll: float, deadline: float
) -> list[str]:
    done: list[str] = []
    try:
        if head is not None and cloud.leave_firewall(head):
            log.info("autostop: %s left the cluster's security group", head.name)
        while True:
            try:
                groups = cloud.delete_firewall(cluster)
                break
            except ClusterError as exc:  # still in use (EC2: DependencyViolation) for a while
                if time.monotonic() > deadline:
                    raise
                log.info("autostop: security group not deleted yet (%s); retrying", exc)
                time.sleep(poll)
        done += groups
        if cloud.delete_key(cluster):
            done.append(f"key pair {resource_name(cluster)}")
    except Exception:
        log.exception("autostop: could not delete the key pair and group of %s", cluster)
    for what in done:
        log.info("autostop: deleted %s", what)
    return done


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s reaper %(message)s")
    where = spec_dir()
    sys.path.insert(0, str(where / "providers"))
    spec = json.loads((where / SPEC).read_text())
    try:
        done = terminate(spec)
    except Exception:
        log.exception("autostop: could not terminate the nodes of %s", spec.get("cluster"))
        sys.exit(1)
    log.info("autostop: done: %s", ", ".join(done) or "nothing (already gone)")


if __name__ == "__main__":
    main()
