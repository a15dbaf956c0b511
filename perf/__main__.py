"""Run every benchmark and its baselines in one sitting; write JSON, a markdown table and charts.

    python -m perf [--quick] [--only baselines,core,clients,payloads,logs,memory,replicas,gateway,ssh,data]
    python -m perf [--quick] --only scaling,tails     # issue 20: not in the default run
    python -m perf peers [--quick] [--rebuild-peers]  # Ray, Pyro5, zerorpc beside rhzmq

Results go to ``perf/results/<UTC timestamp>.json``, ``.md`` and ``-*.png``. Run with nothing
else busy on the machine: every figure is the median of several rounds with the range beside it,
and the table warns where the rounds disagree by more than 25 % (a noisy machine).

Sections only run when named, because they take long (see ``EXTRA``): ``scaling`` (its six
parts, perf.scaling; each can be named alone, e.g. ``scaling.objects``), ``tails`` (64 in flight
for 60 s) and ``peers`` (perf.peers: builds a throwaway venv with Ray, Pyro5 and zerorpc the
first time). Naming sections as arguments (``python -m perf peers``) is the same as ``--only``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from rhzmq import __version__

from . import baselines, bench, charts, data, goals, peers, scaling

RESULTS = Path(__file__).parent / "results"
NOISY = 0.25
ALL = "baselines,core,clients,payloads,logs,memory,replicas,gateway,ssh,data"
#: Sections run only when named, with how long each should take in full on the 2-core machine
#: (estimated from the smoke runs' rates: they have not been run in full yet).
EXTRA = {
    "scaling": "all six scaling.* parts below (perf/scaling.py), about 7 minutes (estimated)",
    "scaling.replicas": "worker replicas of a no-op, 1 -> 64 (~1 min)",
    "scaling.clients": "client processes, 1 -> 64 (~1 min)",
    "scaling.objects": "named objects on one worker, 1 -> 100,000 (~3 min: 100,000 puts)",
    "scaling.payload": "echo 64 B -> 64 MiB, MiB/s and peak RSS per process (~30 s)",
    "scaling.inflight": "calls in flight from one client, 1 -> 4,096 (~30 s)",
    "scaling.hosts": "SSH-cluster hosts on loopback sshd, 1 -> 6 (~1.5 min, mostly bootstrap)",
    "tails": "64 in flight for 60 s, per-call p50/p99/p99.9 (~1 min)",
    "peers": "Ray, Pyro5, zerorpc and rhzmq, same workloads (~2 min; the first run builds a venv)",
}


def _num(v: float) -> str:
    return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"


def _fmt(v: Any) -> str:
    if isinstance(v, dict):
        return f"{_num(v['median'])} ({_num(v['min'])} to {_num(v['max'])})"
    return _num(v) if isinstance(v, float) else str(v)


def _rounds(fn: Any, rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for _ in range(rounds):
        for k, v in fn().items():
            out.setdefault(k, []).append(v)
    return out


def render(report: dict[str, Any], pngs: list[str]) -> str:
    """The markdown table of a report, with a warning where its rounds disagree."""
    m = report["machine"]
    lines = [
        f"# rhzmq {report['version']} perf, {report['date']}, {m['cpus']} CPUs, Python {m['python']}, {m['platform']}",
        "",
        "| scenario | figure | median (min to max) |",
        "|---|---|---|",
    ]
    noisy = []
    for section, values in report.items():
        if isinstance(values, dict) and section != "machine":
            for key, value in values.items():
                lines.append(f"| {section} | {key} | {_fmt(value)} |")
                if (
                    isinstance(value, dict)
                    and value["median"]
                    and (value["max"] - value["min"]) / value["median"] > NOISY
                ):
                    noisy.append(f"{section}.{key}")
    if noisy:
        lines += [
            "",
            f"**Warning: noisy machine** — rounds differ by more than {NOISY:.0%} for: {', '.join(noisy)}.",
        ]
    goals_table = goals.check(report)
    if goals_table:
        lines += ["", "## Targets, against figures of this run", "", *goals_table]
    if isinstance(report.get("peers"), dict) and "skipped" not in report["peers"]:
        lines += ["", "## Peers, same sitting", "", *peers.table(report["peers"])]
    lines += ["", *[f"![{Path(p).stem}]({p})" for p in pngs]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m perf",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="sections run only when named (--only or as arguments):\n"
        + "\n".join(f"  {k:18} {v}" for k, v in EXTRA.items()),
    )
    parser.add_argument("sections", nargs="*", help="sections to run (the same as --only)")
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds (a smoke run)")
    parser.add_argument("--only", default=None, help=f"comma-separated sections (default: {ALL})")
    parser.add_argument(
        "--rebuild-peers", action="store_true", help="make the peers' venv anew (peers section)"
    )
    args = parser.parse_args()
    quick = args.quick
    scale = 0.1 if quick else 1.0
    rounds = 1 if quick else 3
    named = [s for part in [args.only or "", *args.sections] for s in part.split(",") if s]
    wanted = set(named or ALL.split(","))
    if "scaling" in wanted:
        wanted |= set(scaling.SECTIONS)
    unknown = wanted - set(ALL.split(",")) - set(EXTRA)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    report: dict[str, Any] = {
        "version": __version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
    }

    def step(name: str, what: str, fn: Any) -> None:
        if name in wanted:
            print(f"{name}: {what} ...", flush=True)
            t = time.monotonic()
            report[name] = fn()
            print(f"{name}: done in {time.monotonic() - t:.0f} s", flush=True)

    step(
        "baselines",
        "zmq.proxy and raw asyncio TCP echo",
        lambda: {
            **{
                f"zmq_proxy_{k}": v
                for k, v in bench.summarize(_rounds(baselines.zmq_proxy, rounds)).items()
            },
            **{
                f"asyncio_tcp_{k}": v
                for k, v in bench.summarize(_rounds(baselines.asyncio_tcp, rounds)).items()
            },
            **{
                f"zmq_proxy_{bench._size_label(s)}_MiB_per_s": baselines.zmq_proxy_payload(
                    s, max(4, int(min(2000, (256 << 20) // s) * scale))
                )
                for s in bench.PAYLOADS
            },
        },
    )
    step(
        "core",
        "sequential latency, calls in flight 1/8/64/256",
        lambda: bench.core(rounds, int(3000 * scale), int(40000 * scale)),
    )
    step(
        "clients",
        "8 client processes at once",
        lambda: bench.many_clients(rounds, 8, int(10000 * scale)),
    )
    step(
        "payloads",
        "echo 100 B to 64 MiB, bytes and NumPy",
        lambda: bench.payloads(rounds, budget=int((256 << 20) * scale)),
    )
    step(
        "logs",
        "10 printed lines per call, streamed vs not",
        lambda: bench.log_streaming(rounds, int(2000 * scale)),
    )
    step(
        "memory",
        "daemon and worker RSS after 100 and 10,000 calls",
        lambda: bench.memory(int(10_000 * max(scale, 0.5))),
    )
    step(
        "replicas",
        "CPU-bound function on 1 and 2 workers",
        lambda: bench.replicas(rounds, int(2000 * scale)),
    )
    step(
        "gateway",
        "HTTP vs bare Starlette, 64 concurrent",
        lambda: bench.gateway(rounds, int(20000 * scale)),
    )
    step(
        "ssh",
        "SSH cluster on a loopback sshd vs the local daemon",
        lambda: bench.ssh_cluster(rounds, int(2000 * scale), int(20000 * scale)),
    )
    step(
        "data",
        "folder copies: local -> SSH cluster vs rsync/scp, cluster -> S3 vs plain libcloud",
        lambda: data.data_copies(rounds, files=int(64 * max(scale, 0.25))),
    )

    # -- issue 20, only when named (perf.scaling); --quick: seconds each, a smoke run -----------
    step(
        "scaling.replicas",
        "a no-op on 1 -> 64 worker replicas, 64 in flight",
        lambda: scaling.replicas(rounds, (1, 4) if quick else scaling.REPLICAS, int(20000 * scale)),
    )
    step(
        "scaling.clients",
        "1 -> 64 client processes, 64 in flight each",
        lambda: scaling.clients(rounds, (1, 4) if quick else scaling.CLIENTS, int(40000 * scale)),
    )
    step(
        "scaling.objects",
        "calls to one of 1 -> 100,000 named objects on one worker",
        lambda: scaling.objects(
            rounds,
            (1, 100, 2000) if quick else scaling.OBJECTS,
            int(20000 * scale),
            int(2000 * scale),
        ),
    )
    step(
        "scaling.payload",
        "echo 64 B -> 64 MiB, MiB/s and peak RSS per process",
        lambda: scaling.payload(
            rounds,
            (64, 16 << 10, 1 << 20, 4 << 20) if quick else scaling.PAYLOADS,
            (16 << 20) if quick else (512 << 20),
        ),
    )
    step(
        "scaling.inflight",
        "1 -> 4,096 calls in flight from one client",
        lambda: scaling.inflight(
            rounds, (1, 16, 256, 1024) if quick else scaling.IN_FLIGHT, int(20000 * scale)
        ),
    )
    step(
        "scaling.hosts",
        "SSH cluster on loopback sshd, the no-op on 1 -> 6 hosts",
        lambda: scaling.hosts(rounds, (1, 2) if quick else scaling.HOSTS, int(20000 * scale)),
    )
    step(
        "tails",
        f"64 in flight for {5 if quick else 60} s, p50/p99/p99.9",
        lambda: scaling.tails(5.0 if quick else 60.0),
    )
    step(
        "peers",
        "rhzmq, Ray, Pyro5 and zerorpc, the same three workloads",
        lambda: peers.peers(quick, args.rebuild_peers),
    )

    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    (RESULTS / f"{stamp}.json").write_text(json.dumps(report, indent=2))
    pngs = charts.draw(report, bench.LATENCIES, RESULTS / stamp) if not quick else []
    table = render(report, [p.name for p in pngs])
    (RESULTS / f"{stamp}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
