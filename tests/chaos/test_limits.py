"""Limits on a daemon of its own, started with low values: each is exceeded with LimitExceeded
naming the limit and the variable that raises it, and the daemon keeps serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import asyncio, json, sys
sys.path.insert(0, {tests!r})
import rhzmq as rh
import remote_objects as ro
c = rh.cluster("local", gateway_port=None).up_if_not()
out = {{}}
def catch(key, fn):
    try:
        fn(); out[key] = None
    except rh.LimitExceeded as exc:
        out[key] = str(exc)
try:
    echo = rh.function(ro.echo).to(c)
    catch("message", lambda: echo(b"x" * 200_000))
    big = rh.function(ro.big_result).to(c)
    catch("result", lambda: big(200_000))
    out["small_ok"] = echo(b"x" * 1000) == b"x" * 1000
    sleeps = rh.function(ro.sleeps).to(c)
    async def flood():
        results = await asyncio.gather(*(sleeps.acall(0.5) for _ in range(6)), return_exceptions=True)
        return [type(r).__name__ if isinstance(r, BaseException) else r for r in results]
    out["flood"] = asyncio.run(flood())
    for name in ("a", "b"):
        c.put(name, 1)
    catch("objects", lambda: c.put("c", 1))
    out["after"] = echo("still serving")
finally:
    st = c.status()
    out["inflight"] = st["inflight"]
    c.teardown()
print(json.dumps(out))
"""


def test_limits_are_specific_errors(tmp_path: Path) -> None:
    script = tmp_path / "limits.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parents[1])))
    env = {
        **os.environ,
        "RHZMQ_HOME": str(tmp_path / "home"),
        "RHZMQ_MAX_MESSAGE_BYTES": "100000",
        "RHZMQ_MAX_INFLIGHT": "4",
        "RHZMQ_MAX_OBJECTS": "5",
    }
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert (
        "100,000-byte message limit" in out["message"]
        and "RHZMQ_MAX_MESSAGE_BYTES" in out["message"]
    )
    assert "the result is" in out["result"]
    assert out["small_ok"] is True
    assert sorted(out["flood"]) == [
        "LimitExceeded",
        "LimitExceeded",
        "slept",
        "slept",
        "slept",
        "slept",
    ]
    assert "already holds 5 objects" in out["objects"] and "RHZMQ_MAX_OBJECTS" in out["objects"]
    assert out["after"] == "still serving" and out["inflight"] == 0
