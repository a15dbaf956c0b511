"""Autostop on an on-demand cluster's head: terminate every node through the provider's API.

The head's daemon runs ``python -m rhzmq.clusters.ondemand.reaper`` once autostop stopped it
(``DaemonArgs.on_autostop``; the daemon never imports this module). What it needs was written by
the client before the daemon started, into ``$RHZMQ_HOME/local/ondemand/`` on the head (mode
0700, files 0600, over SFTP — never argv, never the log):

* ``reaper.json``: the cluster's name, the provider (a name, or ``module:Class``), the region,
  the node ids (the head's first) and the driver's credentials;
* ``providers/<module>.py``: a custom provider's one-file module, put on ``sys.path`` here.

It terminates the other nodes first and the head last (terminating the machine it runs on), and
logs what it terminated (ids and names, never credentials). The key pair and the security group
stay (they cost nothing): ``rhzmq down NAME`` or the next ``up_if_not()`` deals with them.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from ...wire import config as _config
from .cloud import Cloud, state
from .providers import Credentials

log = logging.getLogger("rhzmq.ondemand")

SPEC = "reaper.json"


def spec_dir() -> Path:
    """Where a head keeps what its reaper needs (under the owner-only ``local/``)."""
    return _config.home() / "local" / "ondemand"


def terminate(spec: dict[str, Any]) -> list[str]:
    """Terminate the spec's nodes, the head (the first id) last; returns what was terminated
    as ``name (id)``. Nodes already gone are skipped."""
    cloud = Cloud.of(
        str(spec["provider"]), Credentials.from_dict(spec["credentials"]), spec.get("region")
    )
    ids = [str(i) for i in spec["nodes"]]
    alive = {n.id: n for n in cloud.refresh(ids) if state(n) != "terminated"}
    done = []
    for node_id in [*ids[1:], *ids[:1]]:
        node = alive.get(node_id)
        if node is None:
            continue
        log.info("autostop: terminating %s (%s)", node.name, node.id)
        done.append(f"{node.name} ({node.id})")
        cloud.destroy(node)
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
    log.info("autostop: terminated %s", ", ".join(done) or "nothing (already gone)")


if __name__ == "__main__":
    main()
