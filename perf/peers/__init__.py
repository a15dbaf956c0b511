"""Peers in the same sitting as rhzmq: a Ray actor, a Pyro5 proxy and a zerorpc client.

    python -m perf peers [--quick] [--rebuild-peers]

Optional and slow the first time: never part of the default run or of CI. The peers live in a
throwaway virtualenv of their own (``~/.cache/rhzmq-perf-peers/venv``, or
``$RHZMQ_PERF_PEERS_CACHE/venv``), built once with pip and reused; ``--rebuild-peers`` makes it
anew. Each peer's workloads are a module of this package run by that venv's Python from the
repository's root (``python -m perf.peers.ray_peer '{"rounds": 1}'``), printing one JSON object
on stdout; from rhzmq's tree they import only this package's ``_common`` (standard library
only), so none of the peers' dependencies (gevent, Ray's pins) meet rhzmq's environment.

The three workloads, the same for every system including rhzmq:

* sequential p50 of a no-op through the system's ordinary blocking call;
* calls/s with 64 calls in flight;
* echo of 1 MiB of random bytes, 4 in flight, MiB/s each way.

The systems run one after another, never at the same time. Side effect worth knowing: Ray 2.60
turns on token authentication by default and saves the token in ``~/.ray/auth_token``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: Pinned, so a rerun measures the same peers (these are the versions on PyPI as of writing).
REQUIREMENTS = ("ray==2.60.0", "Pyro5==5.17", "zerorpc==0.6.3", "msgpack>=1.0")


def cache_dir() -> Path:
    return Path(os.environ.get("RHZMQ_PERF_PEERS_CACHE", "~/.cache/rhzmq-perf-peers")).expanduser()


def ensure_venv(rebuild: bool = False) -> Path:
    """The peers' venv's Python, built (or rebuilt) if needed; RuntimeError with pip's last lines
    if the install fails. A venv whose recorded requirements differ from REQUIREMENTS is rebuilt."""
    venv = cache_dir() / "venv"
    python = venv / "bin" / "python"
    marker = venv / "rhzmq-perf-requirements.txt"
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if not rebuild and python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    print(f"peers: building {venv} ({', '.join(REQUIREMENTS)}); takes minutes the first time")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            *REQUIREMENTS,
        ],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        tail = "\n  ".join((pip.stdout + pip.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"pip could not install the peers into {venv}:\n  {tail}")
    marker.write_text(wanted)
    return python


#: The peers and their scripts (in this folder), in the order they run.
SCRIPTS = {"ray": "ray_peer", "pyro5": "pyro5_peer", "zerorpc": "zerorpc_peer"}
ROOT = Path(__file__).resolve().parents[2]  # the repository: perf.peers.* import from here
FIGURES = ("sequential_p50_us", "calls_per_s_64_in_flight", "echo_1MiB_MiB_per_s")


def sizes(quick: bool) -> dict[str, int]:
    """How many calls each workload makes, and how many rounds (the same for every system)."""
    if quick:
        return {"rounds": 1, "seq": 200, "tput": 2000, "echo": 16, "width": 64, "echo_width": 4}
    return {"rounds": 3, "seq": 3000, "tput": 20000, "echo": 256, "width": 64, "echo_width": 4}


def run_peer(
    python: Path, script: str, params: dict[str, int], timeout: float = 900
) -> dict[str, Any]:
    """Run one peer's script in its own session (so whatever it leaves running can be stopped by
    its process group, whose id is the script's PID) and return its JSON, or ``{"error": ...}``."""
    proc = subprocess.Popen(
        [str(python), "-m", f"perf.peers.{script}", json.dumps(params)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"error": f"{script} did not finish in {timeout:.0f} s"}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # a server child left behind by a crash
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = "\n  ".join(err.strip().splitlines()[-8:])
        return {"error": f"{script} exited with {proc.returncode}:\n  {tail}"}
    return dict(json.loads(lines[-1]))


def rhzmq_workloads(params: dict[str, int]) -> dict[str, Any]:
    """The same three workloads through rhzmq on a fresh local daemon: the blocking stub
    ``fn(1)`` for sequential (``await fn.acall(1)``'s p50 beside it), ``acall`` from one
    asyncio loop in flight, as perf.bench measures them."""
    import uvloop

    import rhzmq as rh

    from .. import bench, targets
    from ._common import MIB, sequential_p50_us

    with bench.local_cluster() as c:
        noop = rh.function(targets.noop).to(c)
        echo = rh.function(targets.echo).to(c)
        data = os.urandom(MIB)
        if echo(data) != data:
            raise RuntimeError("rhzmq's echo changed the bytes")

        async def acall_p50() -> float:
            lat = []
            for _ in range(params["seq"]):
                t = time.perf_counter()
                await noop.acall(1)
                lat.append(time.perf_counter() - t)
            return statistics.median(lat) * 1e6

        async def echo_rate() -> float:
            per = max(1, params["echo"] // params["echo_width"])

            async def worker() -> None:
                for _ in range(per):
                    await echo.acall(data)

            await echo.acall(data)
            t = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(params["echo_width"])))
            return per * params["echo_width"] / (time.perf_counter() - t)

        rounds = [
            {
                "sequential_p50_us": sequential_p50_us(lambda: noop(1), params["seq"]),
                "acall_p50_us": uvloop.run(acall_p50()),
                "calls_per_s_64_in_flight": uvloop.run(
                    bench.in_flight(noop, params["tput"], params["width"])
                ),
                "echo_1MiB_MiB_per_s": uvloop.run(echo_rate()),
            }
            for _ in range(params["rounds"])
        ]
    return {
        "system": "rhzmq",
        "version": rh.__version__,
        "how": "blocking stub for sequential (acall p50 beside it); acall from one uvloop in flight",
        "rounds": rounds,
    }


def peers(quick: bool = False, rebuild: bool = False) -> dict[str, Any]:
    """rhzmq and each peer, one after another in this sitting; the report section: for each
    system its version, how it was called, and each figure's median and range over rounds
    (keys ``<system> <figure>``), or ``<system> error``."""
    from .. import bench

    params = sizes(quick)
    try:
        python = ensure_venv(rebuild)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        return {"skipped": f"the peers' venv could not be built: {exc}"}
    results = [rhzmq_workloads(params)]
    for system, script in SCRIPTS.items():
        print(f"peers: {system} ...", flush=True)
        results.append({"system": system, **run_peer(python, script, params)})
    section: dict[str, Any] = {}
    for r in results:
        name = r["system"]
        if "error" in r:
            section[f"{name} error"] = r["error"]
            continue
        section[f"{name} version"] = r["version"]
        section[f"{name} how"] = r["how"]
        per: dict[str, list[float]] = {}
        for one in r["rounds"]:
            for k, v in one.items():
                per.setdefault(k, []).append(v)
        section.update({f"{name} {k}": v for k, v in bench.summarize(per).items()})
    return section


def table(section: dict[str, Any]) -> list[str]:
    """The peers section as one markdown table, a row per system (medians)."""
    systems = [
        k.split(" ", 1)[0] for k in section if k.endswith(" version") or k.endswith(" error")
    ]
    lines = [
        "| system | version | sequential p50 (µs) | calls/s, 64 in flight | 1 MiB echo, MiB/s | how |",
        "|---|---|---|---|---|---|",
    ]
    for s in systems:
        if f"{s} error" in section:
            lines.append(f"| {s} | | | | | error: {section[f'{s} error'].splitlines()[0]} |")
            continue
        med = [f"{section[f'{s} {f}']['median']:,.0f}" for f in FIGURES]
        how = section[f"{s} how"]
        if f"{s} acall_p50_us" in section:
            how += f" (acall p50 {section[f'{s} acall_p50_us']['median']:,.0f} µs)"
        lines.append(f"| {s} | {section[f'{s} version']} | {' | '.join(med)} | {how} |")
    return lines
