"""The timing shapes real programs have (issue 11): idle gaps before long calls, a client process
that was stopped or slept, and the window right after a worker dies, during which the cluster
must keep answering for what it holds (calls wait for the rebuild; nothing is "not found")."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
import remote_objects as ro
from helpers import kill_worker, worker_pid

import rhzmq as rh

TESTS = str(Path(__file__).parents[1])


# -- idle gaps and long calls ------------------------------------------------------------------


def test_idle_gap_then_long_call_from_a_script(cluster: rh.Cluster) -> None:
    sleeps = rh.function(ro.sleeps).to(cluster, name="idle_sleeps")
    assert sleeps(1.5) == "slept"
    time.sleep(4)  # longer than the liveness period, nothing pending
    t = time.monotonic()
    assert sleeps(1.5) == "slept"  # failed with "nothing heard for 3 s" after 1 s before
    assert time.monotonic() - t >= 1.5
    add = rh.function(ro.add).to(cluster, name="idle_add")
    time.sleep(4)
    assert [add(i, i) for i in range(200)] == [2 * i for i in range(200)]  # many short calls


def test_idle_gap_then_long_call_from_asyncio(cluster: rh.Cluster) -> None:
    sleeps = rh.function(ro.asleeps).to(cluster, name="idle_asleeps")

    async def main() -> list[str]:
        first = await sleeps.acall(1.2)
        await asyncio.sleep(4)
        rest = await asyncio.gather(sleeps.acall(2.5), sleeps.acall(0.1))
        return [first, *rest]

    assert asyncio.run(main()) == ["slept", "slept", "slept"]


def test_idle_gap_then_long_call_over_http(cluster: rh.Cluster) -> None:
    rh.function(ro.sleeps).to(cluster, name="http_sleeps")
    url = f"{cluster.gateway_url}/http_sleeps"
    auth = cluster.gateway_headers()
    assert httpx.post(url, json={"args": [1.2]}, headers=auth, timeout=30).json() == {
        "result": "slept"
    }
    time.sleep(4)  # the gateway's own broker client sat idle too
    answer = httpx.post(url, json={"args": [1.5]}, headers=auth, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"result": "slept"}


STOPPED_CLIENT = """
import asyncio, sys, time
sys.path.insert(0, {tests!r})
import rhzmq as rh
c = rh.cluster("local")
sleeps = c.get("stopped_sleeps", remote=True)
print("READY", flush=True)
sys.stdin.readline()                       # stopped (SIGSTOP) while idle, then resumed
print(sleeps(1.5), flush=True)
async def main():
    task = asyncio.ensure_future(sleeps.acall(2.0))
    await asyncio.sleep(0.3)
    print("CALLING", flush=True)
    print(await task, flush=True)          # stopped for longer than the liveness period mid-call
asyncio.run(main())
"""


def test_a_client_that_was_stopped_keeps_working(cluster: rh.Cluster, tmp_path: Path) -> None:
    """A laptop that slept, or a script suspended with Ctrl-Z: the client wakes up to silent
    intervals, not to a dead broker, and the broker kept its call running."""
    rh.function(ro.sleeps).to(cluster, name="stopped_sleeps")
    script = tmp_path / "client.py"
    script.write_text(STOPPED_CLIENT.format(tests=TESTS))
    with subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        try:
            assert proc.stdout.readline().strip() == "READY"
            proc.send_signal(signal.SIGSTOP)
            time.sleep(4)
            proc.send_signal(signal.SIGCONT)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "slept"
            assert proc.stdout.readline().strip() == "CALLING"
            proc.send_signal(signal.SIGSTOP)
            time.sleep(4.5)  # the call (2 s) finishes on the worker while the client is stopped
            proc.send_signal(signal.SIGCONT)
            assert proc.stdout.readline().strip() == "slept"
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
        finally:
            if proc.poll() is None:
                proc.kill()


# -- no blind window after a worker dies ---------------------------------------------------------


def test_the_cluster_keeps_answering_while_a_worker_restarts(cluster: rh.Cluster) -> None:
    slow = rh.module(ro.SlowStart).to(cluster)(1.0, name="slow_start")
    assert slow.incr() == 1
    pid = worker_pid(cluster)
    os.kill(pid, signal.SIGKILL)
    t = time.monotonic()
    # From the kill until it is rebuilt (>= 1 s: the constructor sleeps), the object is listed,
    # marked as rebuilding once the death is known, and a call waits for it instead of "no
    # object named ...".
    while True:
        assert "slow_start" in cluster.keys()
        status = cluster.status()
        assert "slow_start" in status["objects"]
        if pid not in [w["pid"] for w in status["workers"]]:
            break  # the broker knows the worker died
        assert time.monotonic() - t < 5
    assert "slow_start" in status["rebuilding"], status
    assert status["rebuilding"]["slow_start"]["reason"] == "killed by SIGKILL"
    assert slow.incr() == 1  # rebuilt: its state starts afresh
    assert time.monotonic() - t >= 1.0
    assert "slow_start" not in cluster.status()["rebuilding"]
    # .to() and delete during the window wait for the default worker likewise.
    kill_worker(cluster)
    assert rh.function(ro.add).to(cluster, name="window_add")(2, 3) == 5
    kill_worker(cluster)
    cluster.delete("slow_start")  # being rebuilt: deleted, and it does not come back
    assert "slow_start" not in cluster.keys()
    with pytest.raises(rh.ObjectNotFound):
        slow.incr()
    assert cluster.get("window_add", remote=True)(1, 1) == 2
    cluster.delete("window_add")


def test_a_failed_rebuild_is_a_worker_died_error_that_says_why(
    cluster: rh.Cluster, tmp_path: Path
) -> None:
    once = rh.module(ro.BuildsOnce).to(cluster)(str(tmp_path / "built"), name="builds_once")
    assert once.ping() == "pong"
    kill_worker(cluster)
    with pytest.raises(rh.WorkerDiedError, match=r"rebuilding it failed: .*cannot be built twice"):
        once.ping(timeout=20)
    with pytest.raises(rh.ObjectNotFound):
        once.ping()  # it stays gone, and says so at once


def test_kill_loop_while_clients_call_deploy_and_delete(cluster: rh.Cluster) -> None:
    """Workers killed again and again while clients call, deploy and delete: calls in flight at a
    kill fail with WorkerDiedError, nothing else fails, nothing is 'not found', nothing hangs."""
    counter = rh.module(ro.Counter).to(cluster)(0, name="loop_counter")
    stop = threading.Event()
    errors: list[BaseException] = []
    done = {"calls": 0, "deploys": 0, "died": 0}

    def caller() -> None:
        while not stop.is_set():
            try:
                counter.incr(timeout=30)
                done["calls"] += 1
            except rh.WorkerDiedError:
                done["died"] += 1
            except BaseException as exc:
                errors.append(exc)
                return

    def deployer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            name = f"loop_fn_{i}"
            try:
                fn = rh.function(ro.add).to(cluster, name=name)
                assert fn(i, 1, timeout=30) == i + 1
                cluster.delete(name)
                done["deploys"] += 1
            except rh.WorkerDiedError:
                done["died"] += 1
                try:
                    cluster.delete(name)
                except rh.ObjectNotFound:
                    pass  # the kill took the PUT with it: nothing to delete
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=caller), threading.Thread(target=deployer)]
    for t in threads:
        t.start()
    try:
        for _ in range(5):  # the supervisor's back-off doubles per kill: 5 is ~3 s of it
            time.sleep(0.5)
            os.kill(worker_pid(cluster), signal.SIGKILL)
    finally:
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert errors == [], errors
    assert done["calls"] > 20 and done["deploys"] > 3, done
    assert counter.incr() >= 1
    cluster.delete("loop_counter")


OUTAGE = """
import os, sys, time
sys.path.insert(0, {tests!r})
import remote_objects as ro
import rhzmq as rh
from helpers import kill_worker, worker_pid
c = rh.cluster("local", gateway_port=None).up_if_not()
try:
    add = rh.function(ro.add).to(c)
    assert add(1, 2) == 3
    open({marker!r}, "w").close()          # from now on a default worker dies at start-up
    kill_worker(c)
    t = time.monotonic()
    try:
        add(1, 2)
    except rh.WorkerDiedError as exc:
        print("CALL", round(time.monotonic() - t), exc, flush=True)
    try:
        rh.function(ro.echo).to(c)
    except rh.WorkerDiedError as exc:
        print("PUT", exc, flush=True)
    try:
        add(1, 2)
    except rh.WorkerDiedError as exc:      # past the limit: fails at once, still listed
        print("FAST", round(time.monotonic() - t), "add" in c.keys(), flush=True)
    os.remove({marker!r})                  # the next restart succeeds; add is rebuilt
    deadline = time.monotonic() + 30
    while True:
        try:
            print("AGAIN", add(2, 2), flush=True)
            break
        except rh.WorkerDiedError:
            assert time.monotonic() < deadline, "the worker did not come back"
            time.sleep(0.2)
finally:
    c.teardown()
"""


def test_a_worker_that_does_not_come_back_fails_calls_after_the_limit(tmp_path: Path) -> None:
    marker = tmp_path / "broken"
    site = tmp_path / "site"
    site.mkdir()
    # Python runs sitecustomize at start-up: a worker (and only a worker) exits while the
    # marker exists, as one whose environment broke would.
    (site / "sitecustomize.py").write_text(
        textwrap.dedent(
            f"""
            import os, sys
            if "--parent-pid" in sys.argv and os.path.exists({str(marker)!r}):
                os._exit(7)
            """
        )
    )
    script = tmp_path / "outage.py"
    script.write_text(OUTAGE.format(tests=TESTS, marker=str(marker)))
    env = {
        **os.environ,
        "RHZMQ_HOME": str(tmp_path / "home"),
        "RHZMQ_REBUILD_TIMEOUT": "2",
        "PYTHONPATH": str(site),
    }
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    call = next(line for line in lines if line.startswith("CALL "))
    assert call.startswith(("CALL 2 ", "CALL 3 ")), call  # waited for the limit, not forever
    assert "exited with code 7" in call and "RHZMQ_REBUILD_TIMEOUT=2" in call, call
    assert any(line.startswith("PUT ") and "default" in line for line in lines), lines
    assert any(line.startswith("FAST ") and line.endswith(" True") for line in lines), lines
    assert "AGAIN 4" in lines, lines
