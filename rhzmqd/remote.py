"""Run on a cluster's hosts over SSH (``~/.rhzmq/venv/bin/python -m rhzmqd.remote ...``).

``probe`` prints one JSON line: this host's rhzmq build and Python, and its daemon's state if one
runs. ``stop`` stops the daemon (SIGTERM, then SIGKILL of its whole process group after a grace
period) and prints whether one was running.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from rhzmq.wire import config as _config
from rhzmq.wire.build import build_id
from rhzmq.wire.version import __version__


def _daemon() -> dict[str, object] | None:
    state = _config.read_state()
    if state and _config.pid_alive(int(state.get("pid", 0))):
        return state
    return None


def probe() -> dict[str, object]:
    return {
        "build": build_id(),
        "version": __version__,
        "python": sys.version.split()[0],
        "home": str(_config.home()),
        "daemon": _daemon(),
    }


def stop(grace: float = 10.0) -> dict[str, object]:
    state = _daemon()
    if state is None:
        return {"stopped": False}
    pid = int(str(state["pid"]))
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _config.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _config.pid_alive(pid):
        # The daemon leads its own session (setsid): its workers are in its process group.
        os.killpg(pid, signal.SIGKILL)
    _config.state_file().unlink(missing_ok=True)
    return {"stopped": True, "pid": pid}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["probe"]:
        print(json.dumps(probe()))
    elif args[:1] == ["stop"]:
        print(json.dumps(stop()))
    else:
        sys.exit("usage: python -m rhzmqd.remote probe|stop")


if __name__ == "__main__":
    main()
