"""PNG charts of a perf report: latency histogram, calls/s against calls in flight, and echo
throughput against payload size (rhzmq and the zmq.proxy baseline); one chart per scaling
section (perf.scaling) and one for the peers (perf.peers), when the report has them."""

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
    return out + draw_scaling(report, prefix) + draw_peers(report, prefix)


def _parse_size(label: str) -> int:
    for unit, factor in (("MiB", 1 << 20), ("KB", 1000), ("B", 1)):
        if label.endswith(unit):
            return int(label[: -len(unit)]) * factor
    raise ValueError(label)


def _save(fig: Any, prefix: Path, name: str) -> Path:
    path = prefix.with_name(f"{prefix.name}-{name}.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)  # a report draws a dozen charts: free each once saved
    return path


#: The scaling sections' charts: x label, whether x is a size label, the figures on the left axis
#: (throughput) and on the right (latency, or memory per payload for the payload chart).
SCALING = {
    "scaling.replicas": (
        "worker replicas of a no-op (64 in flight)",
        ["calls_per_s_64_in_flight"],
        ["p50_us"],
    ),
    "scaling.clients": ("client processes (64 in flight each)", ["calls_per_s"], ["p50_us"]),
    "scaling.objects": (
        "named objects on the worker",
        ["calls_per_s_64_in_flight"],
        ["p50_us", "acall_p50_us"],
    ),
    "scaling.payload": (
        "payload (bytes), one call at a time",
        ["MiB_per_s"],
        [
            "client_one_call_peak_x",
            "daemon_one_call_peak_x",
            "worker_one_call_peak_x",
            "client_all_calls_peak_x",
            "daemon_all_calls_peak_x",
            "worker_all_calls_peak_x",
        ],
    ),
    "scaling.inflight": ("calls in flight, one asyncio client", ["calls_per_s"], ["p50_us"]),
    "scaling.hosts": (
        "SSH-cluster hosts holding the no-op (64 in flight)",
        ["calls_per_s_64_in_flight"],
        ["p50_us"],
    ),
}


#: Legend text of a scaling figure (the key's own name otherwise).
LABELS = {
    "calls_per_s": "calls/s",
    "calls_per_s_64_in_flight": "calls/s, 64 in flight",
    "p50_us": "p50 per call, µs",
    "acall_p50_us": "p50, sequential acall, µs",
    "MiB_per_s": "MiB/s each way",
}


def _label(figure: str) -> str:
    return LABELS.get(figure, figure.replace("_", " "))


def _series(section: dict[str, Any], figure: str) -> tuple[list[int], list[float]]:
    """(x, median) of one figure of a scaling section, in x order (keys as perf.scaling.key)."""
    from .scaling import parse, parse_size

    points = []
    for k, v in section.items():
        if " " not in k or "=" not in k.split(" ", 1)[0]:
            continue
        what, x, fig = parse(k)
        if fig == figure:
            xv = parse_size(x) if what == "size" else int(x)
            points.append((xv, v["median"] if isinstance(v, dict) else float(v)))
    points.sort()
    return [p[0] for p in points], [p[1] for p in points]


def draw_scaling(report: dict[str, Any], prefix: Path) -> list[Path]:
    """One chart per scaling section in the report: throughput on the left axis (log x where x
    spans decades), latency (or peak RSS over payload size) on the right."""
    import matplotlib.pyplot as plt

    out = []
    title = f"rhzmq {report['version']}, {report['date'][:10]}, {report['machine']['cpus']} CPUs"
    for name, (xlabel, left, right) in SCALING.items():
        section = report.get(name)
        if not isinstance(section, dict) or "skipped" in section:
            continue
        fig, ax = plt.subplots(figsize=(7, 4))
        xs_all: list[int] = []
        for figure in left:
            xs, ys = _series(section, figure)
            xs_all += xs
            ax.plot(xs, ys, marker="o", color="#3b7dd8", label=_label(figure))
        ax.set(xlabel=xlabel, ylabel="MiB/s each way" if name == "scaling.payload" else "calls/s")
        if name == "scaling.payload":
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        if xs_all and max(xs_all) / max(1, min(xs_all)) >= 16:  # a log axis: doublings or decades
            doubling = all(x & (x - 1) == 0 for x in xs_all) and name != "scaling.payload"
            ax.set_xscale("log", base=2 if doubling else 10)
        if xs_all and name != "scaling.payload":
            ticks = sorted(set(xs_all))
            ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
        ax2 = ax.twinx()
        palette = {"client": "#d8783b", "daemon": "#3bb273", "worker": "#8e44ad"}
        right_ys: list[float] = []
        for i, figure in enumerate(right):
            xs, ys = _series(section, figure)
            right_ys += ys
            color = palette.get(figure.split("_")[0], ("#d8783b", "#3bb273")[i % 2])
            style = ":" if "all_calls" in figure else "--"
            if xs:
                ax2.plot(xs, ys, marker="s", color=color, linestyle=style, label=_label(figure))
        if name == "scaling.payload":
            ax2.set_ylabel("peak RSS growth / payload size")
            ax2.set_ylim(bottom=0)
            ax2.axhline(3, color="red", linewidth=0.8, label="issue 20's limit: 3x")
        else:
            ax2.set_ylabel("µs per call")
            if right_ys and max(right_ys) / max(1e-9, min(right_ys)) >= 100:
                ax2.set_yscale("log")
            else:
                ax2.set_ylim(bottom=0)
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="best")
        ax.set_title(title)
        out.append(_save(fig, prefix, name.replace(".", "-")))
    return out


def draw_peers(report: dict[str, Any], prefix: Path) -> list[Path]:
    """Three bar panels (sequential p50, calls/s at 64 in flight, 1 MiB echo MiB/s), a bar per
    system, with each bar's min-max range as an error bar."""
    import matplotlib.pyplot as plt

    from .peers import FIGURES

    section = report.get("peers")
    if not isinstance(section, dict) or "skipped" in section:
        return []
    systems = [k.split(" ", 1)[0] for k in section if k.endswith(" version")]
    if not systems:
        return []
    labels = {
        "sequential_p50_us": "sequential p50, µs (lower is better)",
        "calls_per_s_64_in_flight": "calls/s, 64 in flight",
        "echo_1MiB_MiB_per_s": "1 MiB echo, MiB/s each way",
    }
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, figure in zip(axes, FIGURES, strict=True):
        vals = [section[f"{s} {figure}"] for s in systems]
        med = [v["median"] for v in vals]
        err = [
            [m - v["min"] for m, v in zip(med, vals, strict=True)],
            [v["max"] - m for m, v in zip(med, vals, strict=True)],
        ]
        colors = ["#3b7dd8" if s == "rhzmq" else "#999999" for s in systems]
        ax.bar(systems, med, yerr=err, color=colors, capsize=3)
        ax.set_title(labels[figure], fontsize=10)
    fig.suptitle(
        f"rhzmq {report['version']} and peers, {report['date'][:10]}, {report['machine']['cpus']} CPUs, same sitting"
    )
    out = [_save(fig, prefix, "peers")]
    return out
