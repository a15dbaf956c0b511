"""Blocking stubs call from the caller's own thread on a pooled socket (rhzmq/wire/blocking.py),
not through the portal's loop: the same promises, tested on that path. Output, logs and remote
exceptions of blocking calls are covered by test_core.py, which now runs on it too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import remote_objects as ro
from helpers import ClosedStream

import rhzmq as rh


def test_concurrent_threads_take_sockets_from_a_pool(cluster: rh.Cluster) -> None:
    """Blocking calls from plain threads each check a socket out of the client's pool: as many
    sockets as calls ever ran at once, reused by later threads (a thread-per-request server does
    not connect anew per request)."""
    echo = rh.function(ro.echo).to(cluster)
    echo(0)  # connected: every later blocking call takes a pooled socket
    client = cluster.connected_client()
    assert client is not None
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def caller(k: int) -> None:
        try:
            start.wait(10)
            for i in range(200):
                assert echo((k, i)) == (k, i)
        except BaseException as exc:
            errors.append(exc)

    for _ in range(3):  # three waves of 8 new threads
        threads = [threading.Thread(target=caller, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert 1 <= len(client.blocking_pool) <= 9, "a socket per thread, not a pool"
    sockets = {id(b.sock) for b in client.blocking_pool}
    assert len(sockets) == len(client.blocking_pool)  # no socket twice in the pool


def test_blocking_timeout_cancels_the_call_on_the_worker(cluster: rh.Cluster) -> None:
    c = rh.module(ro.Counter).to(cluster)(name="blocking_spinner")
    t = time.monotonic()
    with pytest.raises(rh.CallTimeout, match=r"timeout=0\.3"):
        c.spin_sync(timeout=0.3)
    assert time.monotonic() - t < 2
    time.sleep(0.1)  # the CANCEL reaches the worker
    before = c.ticks
    time.sleep(0.3)
    assert c.ticks == before, "the remote thread kept running after the timeout"
    assert c.incr() == 1  # the same socket goes on with the next call
    cluster.delete("blocking_spinner")


CTRL_C = """
import sys
import rhzmq as rh
c = rh.cluster("local")
spinner = c.get("blocking_ctrl_c", remote=True)
spinner.incr()  # connected: the next call takes the blocking path
print("CALLING", flush=True)
try:
    spinner.spin_sync()
except KeyboardInterrupt:
    print("INTERRUPTED", flush=True)
"""


def test_ctrl_c_cancels_the_blocking_call(cluster: rh.Cluster, tmp_path: Path) -> None:
    c = rh.module(ro.Counter).to(cluster)(name="blocking_ctrl_c")
    script = tmp_path / "client.py"
    script.write_text(CTRL_C)
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "CALLING"
        deadline = time.monotonic() + 10
        while c.ticks < 5:
            assert time.monotonic() < deadline, "the call never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        assert "INTERRUPTED" in out
        time.sleep(0.2)  # the CANCEL reaches the worker
        before = c.ticks
        time.sleep(0.3)
        assert c.ticks == before, "Ctrl-C left the remote call running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        cluster.delete("blocking_ctrl_c")


LOST = """
import sys, time
sys.path.insert(0, {tests!r})
import remote_objects as ro
import rhzmq as rh
c = rh.cluster("local", gateway_port=None).up_if_not()
sleeps = rh.function(ro.sleeps).to(c)
sleeps(0)
st = c.status()
print("CALLING", st["pid"], *[w["pid"] for w in st["workers"]], flush=True)
t = time.monotonic()
try:
    sleeps(60)
except rh.ClusterNotRunning as exc:
    print("LOST", round(time.monotonic() - t, 1), exc, flush=True)
"""


def test_blocking_call_fails_when_the_broker_dies(tmp_path: Path) -> None:
    """SIGKILL the daemon mid-call: the caller hears ClusterNotRunning after the liveness
    intervals (3 x 1 s), instead of waiting for its 60 s call forever."""
    home = tmp_path / "home"
    script = tmp_path / "client.py"
    script.write_text(LOST.format(tests=str(Path(__file__).parents[1])))
    env = {**os.environ, "RHZMQ_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    )
    pids: list[int] = []
    try:
        assert proc.stdout is not None
        words = proc.stdout.readline().split()
        assert words[0] == "CALLING"
        pids = [int(w) for w in words[1:]]
        time.sleep(0.3)  # the call is in flight on the worker
        os.kill(pids[0], signal.SIGKILL)
        out, _ = proc.communicate(timeout=20)
        assert out.startswith("LOST"), out
        seconds = float(out.split()[1])
        assert 2.5 <= seconds < 10, out
        assert "lost the connection to the broker" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _stop(pids)


def _stop(pids: list[int]) -> None:
    """Workers leave by themselves when their daemon died; whatever is left is killed by PID."""
    deadline = time.monotonic() + 10
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def test_teardown_then_up_again_in_the_same_thread(tmp_path: Path) -> None:
    """A torn-down cluster's pooled sockets are closed with its client; the next cluster's
    first blocking call connects afresh (through the portal), later ones pool new sockets."""
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parents[1])!r})
import remote_objects as ro
import rhzmq as rh
for round in range(2):
    c = rh.cluster("local", gateway_port=None).up_if_not()
    f = rh.function(ro.echo).to(c)
    assert [f(i) for i in range(50)] == list(range(50))
    client = c.connected_client()
    pooled = list(client.blocking_pool)
    assert pooled
    c.teardown()
    assert client.closed and not client.blocking_pool and all(b.closed for b in pooled)
print("OK")
"""
    env = {**os.environ, "RHZMQ_HOME": str(tmp_path / "home")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.stdout.strip() == "OK", out.stderr[-2000:]


CHATTY_ELSEWHERE = """
import sys
sys.path.insert(0, {tests!r})
from rhzmq.wire import config
config.MACHINE_ID = "another-machine"  # as through an SSH tunnel: the broker cannot see our pid
import remote_objects as ro
import rhzmq as rh
c = rh.cluster("local")
f = rh.function(ro.chatty).to(c, name="blocking_chatty")
f("warm", 1, 0)  # connected: the next call takes the blocking path
print("RESULT", f("chat", 20, 0.25), flush=True)
"""


def test_a_chatty_blocking_call_keeps_pinging(cluster: rh.Cluster, tmp_path: Path) -> None:
    """Found in review: the blocking client pinged only after a silent interval, so a call
    printing more than once a second never pinged, and after 3 s the broker cancelled the
    call of a client whose process it cannot see (any client through an SSH tunnel). It pings
    every interval while waiting, as the async client's watchdog does."""
    script = tmp_path / "chatty.py"
    script.write_text(CHATTY_ELSEWHERE.format(tests=str(Path(__file__).parents[1])))
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=os.environ, timeout=60
    )
    assert "RESULT 20" in out.stdout, out.stderr[-2000:]
    assert out.stdout.count("(blocking_chatty) chat line") == 20
    cluster.delete("blocking_chatty")


def test_output_this_process_cannot_show_does_not_lose_the_result(cluster: rh.Cluster) -> None:
    """Found in review: on the blocking path, a local stdout that raised (closed, a broken pipe)
    lost the result and cancelled the call. It is logged; the result arrives."""

    f = rh.function(ro.prints_then_sleeps).to(cluster, name="blocking_broken_stdout")
    f(0, 0, 0)
    old = sys.stdout
    sys.stdout = ClosedStream()  # type: ignore[assignment]
    try:
        assert f(2, 0.01, 0.3) == 2  # the lines arrive as PARTIALs, before the FINAL
    finally:
        sys.stdout = old
    cluster.delete("blocking_broken_stdout")


def test_writing_bytes_to_stdout_in_a_call_is_a_type_error_not_a_hang(
    cluster: rh.Cluster, capfd: pytest.CaptureFixture[str]
) -> None:
    """Found in review: bytes written to a worker's stdout were queued as output and failed on
    the worker's loop, which then never sent the FINAL (the caller hung) and stopped the output
    tick (no more live output on that worker). The write raises TypeError, as a text stream's
    does, and output goes on."""
    f = rh.function(ro.writes_bytes).to(cluster, name="blocking_bytes")
    with pytest.raises(TypeError, match="must be str, not bytes"):
        f(False, timeout=10)
    assert f(True, timeout=10) == "done"
    out, _ = capfd.readouterr()
    assert "(blocking_bytes) refused: write() argument must be str, not bytes" in out
    assert "(blocking_bytes) still printing" in out
    # Live output still works on that worker (the output tick did not die): the line printed
    # before a 0.5 s sleep arrives long before the call ends.
    arrivals: list[tuple[float, str]] = []

    class Recorder:
        def write(self, text: str) -> int:
            arrivals.append((time.time(), text))
            return len(text)

        def flush(self) -> None:
            pass

    stamp = rh.function(ro.prints_then_sleeps).to(cluster, name="blocking_live")
    old = sys.stdout
    sys.stdout = Recorder()  # type: ignore[assignment]
    try:
        assert stamp(1, 0, 0.5) == 1
    finally:
        sys.stdout = old
    (arrived, text), *_ = [(t, x) for t, x in arrivals if "line 0" in x]
    printed = float(text.split()[1])  # "(blocking_live) <time.time()> line 0"
    assert arrived - printed < 0.2, "output waited for the FINAL: the output tick is dead"
    cluster.delete(["blocking_bytes", "blocking_live"])


RESTART = """
import asyncio, os, signal, subprocess, sys, threading, time
sys.path.insert(0, {tests!r})
import remote_objects as ro
import rhzmq as rh
from rhzmq.wire import config
c = rh.cluster("local", gateway_port=None).up_if_not()
sleeps = rh.function(ro.sleeps).to(c)
sleeps(0)
pids = []
for how in ("blocking", "async"):
    result = {{}}
    def caller():
        t = time.monotonic()
        try:
            result["r"] = sleeps(6) if how == "blocking" else asyncio.run(sleeps.acall(6))
        except rh.ClusterNotRunning as exc:
            result["r"] = f"ClusterNotRunning: {{exc}}"
        result["t"] = time.monotonic() - t
    th = threading.Thread(target=caller)
    th.start()
    time.sleep(0.5)
    state = config.read_state()
    pids += [w["pid"] for w in c.status()["workers"]]
    os.kill(int(state["pid"]), signal.SIGKILL)
    time.sleep(0.2)
    subprocess.run([sys.executable, "-c", "import rhzmq as rh; rh.cluster('local', gateway_port=None).up_if_not()"], check=True, capture_output=True)
    th.join(20)
    print(how, round(result.get("t", -1), 1), result.get("r", "STILL WAITING"), flush=True)
    sleeps = rh.function(ro.sleeps).to(c)  # the old daemon's workers went with it
    sleeps(0)
print("PIDS", *pids, flush=True)
c.teardown()
"""


def test_a_broker_restarted_within_the_liveness_window_fails_calls_in_flight(
    tmp_path: Path,
) -> None:
    """Found in review (older than the blocking path, on both paths): a broker restarted at the
    same endpoint within 3 s answers the PINGs, so the client never saw silence, and a call sent
    to the old broker waited forever. PING answers name the broker's instance; another one fails
    the calls in flight at once."""
    script = tmp_path / "restart.py"
    script.write_text(RESTART.format(tests=str(Path(__file__).parents[1])))
    env = {**os.environ, "RHZMQ_HOME": str(tmp_path / "home")}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line}
    try:
        for how in ("blocking", "async"):
            assert how in lines, out.stdout + out.stderr[-2000:]
            words = lines[how].split(maxsplit=2)
            assert "restarted while this call was in flight" in words[2], lines[how]
            assert float(words[1]) < 5, lines[how]  # not the 6 s call, nor forever
    finally:
        _stop([int(p) for p in lines.get("PIDS", "PIDS").split()[1:]])
        # Whatever daemon the script left (it stops its cluster only when it gets that far),
        # stopped by the PID its state file names, with its workers.
        state = tmp_path / "home" / "local" / "daemon.json"
        if state.exists():
            daemon = int(json.loads(state.read_text())["pid"])
            workers = subprocess.run(
                ["pgrep", "-P", str(daemon)], capture_output=True, text=True
            ).stdout.split()
            for pid in [daemon, *map(int, workers)]:
                if _alive(pid) and b"rhzmq" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            _stop([daemon, *map(int, workers)])
