"""PNG charts of a perf report: latency histogram, calls/s against calls in flight, and echo
throughput against payload size (rhzmq and the zmq.proxy baseline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def draw(report: dict[str, Any], latencies: list[float], prefix: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no charts (pip install matplotlib)")
        return []
    out = []
    title = f"rhzmq {report['version']}, {report['date'][:10]}, {report['machine']['cpus']} CPUs"

    if latencies:
        fig, ax = plt.subplots(figsize=(7, 4))
        us = sorted(x * 1e6 for x in latencies)
        ax.hist(us[: int(len(us) * 0.995)], bins=80, color="#3b7dd8")
        p50 = us[len(us) // 2]
        ax.axvline(p50, color="black", linestyle="--", label=f"p50 {p50:.0f} µs")
        ax.set(xlabel="sequential call latency, blocking stub (µs)", ylabel="calls", title=title)
        ax.legend()
        out.append(_save(fig, prefix, "latency"))

    core = report.get("core", {})
    widths = sorted(
        int(k.split("_")[3])
        for k in core
        if k.startswith("calls_per_s_") and k.endswith("_in_flight")
    )
    if widths:
        fig, ax = plt.subplots(figsize=(7, 4))
        rates = [core[f"calls_per_s_{w}_in_flight"]["median"] for w in widths]
        ax.plot(widths, rates, marker="o", label="rhzmq, one asyncio client")
        base = report.get("baselines", {}).get("zmq_proxy_calls_per_s")
        if base:
            ax.axhline(
                base["median"], color="gray", linestyle="--", label="zmq.proxy echo, 64 in flight"
            )
        ax.set(xscale="log", xlabel="calls in flight", ylabel="calls/s", title=title)
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.legend()
        out.append(_save(fig, prefix, "inflight"))

    payloads = report.get("payloads", {})
    if payloads:
        fig, ax = plt.subplots(figsize=(7, 4))
        for kind in ("bytes", "numpy"):
            keys = [k for k in payloads if k.startswith(kind + "_")]
            xs = [_parse_size(k.split("_")[1]) for k in keys]
            ys = [payloads[k]["median"] for k in keys]
            ax.plot(xs, ys, marker="o", label=f"rhzmq echo, {kind}")
        base = report.get("baselines", {})
        bkeys = [k for k in base if k.startswith("zmq_proxy_") and k.endswith("_MiB_per_s")]
        if bkeys:
            ax.plot(
                [_parse_size(k.split("_")[2]) for k in bkeys],
                [base[k] for k in bkeys],
                marker="s",
                color="gray",
                linestyle="--",
                label="zmq.proxy echo",
            )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="payload (bytes)",
            ylabel="MiB/s each way",
            title=title,
        )
        ax.legend()
        out.append(_save(fig, prefix, "payloads"))
    return out


def _parse_size(label: str) -> int:
    for unit, factor in (("MiB", 1 << 20), ("KB", 1000), ("B", 1)):
        if label.endswith(unit):
            return int(label[: -len(unit)]) * factor
    raise ValueError(label)


def _save(fig: Any, prefix: Path, name: str) -> Path:
    path = prefix.with_name(f"{prefix.name}-{name}.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
