"""A client killed mid-call: its call stops on the worker and the broker forgets it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import remote_objects as ro

import rhzmq as rh

CLIENT = """
import asyncio, sys
import rhzmq as rh
sys.path.insert(0, {tests!r})
c = rh.cluster("local")
spinner = c.get("chaos_spinner", remote=True)
async def main():
    task = asyncio.ensure_future(spinner.spin.acall())
    await asyncio.sleep(0.3)
    print("STARTED", flush=True)
    await task
asyncio.run(main())
"""


def test_killed_client_frees_its_calls(cluster: rh.Cluster, tmp_path: Path) -> None:
    spinner = rh.module(ro.Counter).to(cluster)(name="chaos_spinner")
    script = tmp_path / "client.py"
    script.write_text(CLIENT.format(tests=str(Path(__file__).parents[1])))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=os.environ)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"STARTED"
    assert cluster.status()["inflight"] >= 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    # The broker reaps a client silent for 3 heartbeat intervals; allow it 5 s.
    deadline = time.monotonic() + 6
    while cluster.status()["inflight"] > 0:
        assert time.monotonic() < deadline, "the dead client's call is still in flight"
        time.sleep(0.1)
    ticks = spinner.ticks
    time.sleep(0.3)
    assert spinner.ticks == ticks, "the dead client's call still runs on the worker"
    assert cluster.status()["clients"] <= 1  # only this test's own client is remembered
    cluster.delete("chaos_spinner")
