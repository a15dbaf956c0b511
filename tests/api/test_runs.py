"""Runs: calls the cluster keeps, reattached from any process (issue 14, item 7)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import remote_objects as ro

import rhzmq as rh


def _other_process(code: str, home: Path) -> str:
    """Run ``code`` in a fresh interpreter sharing the test cluster; return its stdout."""
    env = {"RHZMQ_HOME": str(home), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).parents[1],
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_run_outlives_its_caller(cluster: rh.Cluster, rhzmq_home: Path) -> None:
    rh.function(ro.steps).to(cluster, name="run_steps").save()
    # Another process starts the run and leaves at once...
    out = _other_process(
        """
        import rhzmq as rh
        run = rh.function(name="run_steps").run(8, 0.1, run_name="train-1")
        print(run.status())
        """,
        rhzmq_home,
    )
    assert out.strip() == "running"
    # ...and this one reattaches: logs replayed from the start, then live, then the result.
    run = cluster.get_run("train-1")
    lines = list(run.logs(follow=True))
    assert [line for line in lines if line.startswith("step")] == [f"step {i}\n" for i in range(8)]
    assert "WARNING tests.remote: logged 7\n" in lines
    assert run.result() == 80 and run.status() == "completed"
    info = run.info()
    assert info["target"] == "run_steps" and info["ended"] >= info["started"]
    assert "train-1" in {r["name"] for r in cluster.runs()}


def test_rh_run_finds_the_cluster_by_name(cluster: rh.Cluster, rhzmq_home: Path) -> None:
    fn = rh.function(ro.steps).to(cluster, name="run_steps2")
    fn.run(2, 0.0, run_name="by-name")
    # Any process on this machine: rh.run(name) knows the cluster from the local store.
    out = _other_process(
        """
        import rhzmq as rh
        run = rh.run("by-name")
        print(run.result(), run.status())
        """,
        rhzmq_home,
    )
    assert out.split() == ["20", "completed"]
    with pytest.raises(rh.RunError, match=r"cluster\.get_run"):
        rh.run("never-started")
    with pytest.raises(rh.ObjectNotFound, match="no run named"):
        cluster.get_run("never-started").status()


def test_a_waited_run_shows_output_live_and_raises_like_a_call(
    cluster: rh.Cluster, capfd: pytest.CaptureFixture[str]
) -> None:
    fn = rh.function(ro.steps).to(cluster, name="run_steps3")
    assert fn(3, 0.0, run_name="waited") == 30
    out, _ = capfd.readouterr()
    assert "(waited) step 2" in out
    assert rh.run("waited").status() == "completed"

    failing = rh.function(ro.fails_after).to(cluster)
    with pytest.raises(ValueError, match="failed after 2"):
        failing(2, run_name="failing")
    run = rh.run("failing")
    assert run.status() == "failed"
    with pytest.raises(ValueError, match="failed after 2"):
        run.result()  # asked again later: the same exception
    assert "before failing 1\n" in list(run.logs())


def test_run_names_never_leave_the_runs_folder(cluster: rh.Cluster, rhzmq_home: Path) -> None:
    fn = rh.function(ro.steps).to(cluster, name="run_steps6")
    for bad in ("..", ".", "a/b", "__x"):
        with pytest.raises(ValueError):
            fn.run(1, run_name=bad)
    # Asked directly, the keeper refuses the same names, and the cluster's machinery as targets.
    for bad in ("..", "."):
        with pytest.raises(ValueError, match="directory"):
            cluster.call("rhzmq.runs", "start", bad, "run_steps6", "", [], "x")
    with pytest.raises(ValueError, match="machinery"):
        cluster.call("rhzmq.runs", "start", "ok", "rhzmq.run", "", [], "x")
    assert (rhzmq_home / "local").is_dir() and (rhzmq_home / "resources").is_dir()


def test_cancel_and_name_reuse(cluster: rh.Cluster) -> None:
    fn = rh.function(ro.steps).to(cluster, name="run_steps4")
    run = fn.run(200, 0.05, run_name="long-run")
    with pytest.raises(rh.RunError, match="still running"):
        fn.run(1, run_name="long-run")
    for line in run.logs(follow=True):
        if line.startswith("step 2"):
            break  # leaving a followed log early does not disturb the run
    assert run.status() == "running"
    assert run.cancel() is True
    deadline = time.monotonic() + 10
    while run.status() == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.status() == "cancelled"
    with pytest.raises(rh.CallCancelled):
        run.result()
    assert run.cancel() is False
    # A finished run's name can be used again: the new run replaces it.
    assert fn.run(1, 0.0, run_name="long-run").result() == 10
    run.delete()
    assert "long-run" not in {r["name"] for r in cluster.runs()}


def test_old_runs_are_pruned_within_the_budget(cluster: rh.Cluster, rhzmq_home: Path) -> None:
    """Finished runs past RHZMQ_RUNS_MAX_AGE go when the next run starts (the keeper reads the
    budget at each start, so changing it in the keeper's worker takes effect at once)."""
    fn = rh.function(ro.steps).to(cluster, name="run_steps5")
    fn.run(1, 0.0, run_name="old-run").result()
    keep = rh.function(ro.setenv).to(cluster, name="run_setenv")
    keep("RHZMQ_RUNS_MAX_AGE", "0")
    try:
        time.sleep(0.05)
        fn.run(1, 0.0, run_name="new-run").result()
        names = {r["name"] for r in cluster.runs()}
        assert "old-run" not in names and "new-run" in names
        assert not (rhzmq_home / "runs" / "old-run").exists()
        meta = json.loads((rhzmq_home / "runs" / "new-run" / "run.json").read_text())
        assert meta["status"] == "completed" and meta["bytes"] > 0
    finally:
        keep("RHZMQ_RUNS_MAX_AGE", str(7 * 86400))
