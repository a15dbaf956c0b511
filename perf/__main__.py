"""Run the benchmarks and their baselines in one sitting; write JSON and a markdown table.

    python -m perf [--quick] [--only core,gateway,baselines]

Results go to ``perf/results/<UTC timestamp>.json`` and ``.md``. Run with nothing else busy on the
machine: every figure is the median of several rounds, with the range beside it.
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

from . import baselines, bench

RESULTS = Path(__file__).parent / "results"


def _fmt(v: Any) -> str:
    if isinstance(v, dict):
        return f"{v['median']:,.0f} ({v['min']:,.0f} to {v['max']:,.0f})"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m perf")
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds (a smoke run)")
    parser.add_argument("--only", default="baselines,core,replicas,gateway")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    rounds = 1 if args.quick else 3
    wanted = set(args.only.split(","))
    report: dict[str, Any] = {
        "version": __version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
    }
    if "baselines" in wanted:
        print("baselines: zmq.proxy blocking echo ...", flush=True)
        report["zmq_proxy"] = bench.summarize(_rounds(lambda: baselines.zmq_proxy(), rounds))
    if "core" in wanted:
        print("rhzmq core: latency and calls in flight ...", flush=True)
        report["rhzmq_core"] = bench.core(rounds, int(3000 * scale), int(40000 * scale))
    if "replicas" in wanted:
        print("replicas: CPU-bound function on 1 and 2 workers ...", flush=True)
        report["replicas"] = bench.replicas(rounds, int(2000 * scale))
    if "gateway" in wanted:
        print("gateway vs bare Starlette ...", flush=True)
        report["gateway"] = bench.gateway(rounds, int(20000 * scale))
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    (RESULTS / f"{stamp}.json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# rhzmq {__version__} perf, {report['date']}, {report['machine']['cpus']} CPUs, Python {report['machine']['python']}",
        "",
        "| scenario | figure | median (min to max) |",
        "|---|---|---|",
    ]
    for section, values in report.items():
        if isinstance(values, dict) and section not in ("machine",):
            for key, value in values.items():
                lines.append(f"| {section} | {key} | {_fmt(value)} |")
    table = "\n".join(lines) + "\n"
    (RESULTS / f"{stamp}.md").write_text(table)
    print(table)


def _rounds(fn: Any, rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for _ in range(rounds):
        for k, v in fn().items():
            out.setdefault(k, []).append(v)
    return out


if __name__ == "__main__":
    main()
