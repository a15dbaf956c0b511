"""The performance targets (issue 20), each a ratio or a difference against a figure measured in
the same run, checked at the end of every ``python -m perf`` and written under the table.

A target whose figures were not measured in this run (a section not asked for) is left out: a
target is never checked against a number from another sitting.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, NamedTuple


class Goal(NamedTuple):
    what: str
    figure: Callable[[dict[str, Any]], float]
    sign: str  # one of _COMPARE
    bound: float
    unit: str


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "≤": operator.le,
    "≥": operator.ge,
    "<": operator.lt,
}


def _m(report: dict[str, Any], section: str, key: str) -> float:
    value = report[section][key]
    return float(value["median"] if isinstance(value, dict) else value)


GOALS = (
    Goal(
        "blocking stub p50 minus acall p50",
        lambda r: _m(r, "core", "sync_stub_p50_us") - _m(r, "core", "acall_p50_us"),
        "≤",
        30,
        "µs",
    ),
    Goal(
        "1 MiB echo, blocking stub / acall",
        lambda r: _m(r, "core", "sync_1MiB_MiB_per_s") / _m(r, "core", "acall_1MiB_MiB_per_s"),
        "≥",
        0.9,
        "x",
    ),
    Goal(
        "calls/s, one asyncio client, 64 in flight / zmq.proxy chain",
        lambda r: (
            _m(r, "core", "calls_per_s_64_in_flight") / _m(r, "baselines", "zmq_proxy_calls_per_s")
        ),
        "≥",
        0.6,
        "x",
    ),
    Goal(
        "calls/s, 8 client processes / zmq.proxy chain",
        lambda r: (
            _m(r, "clients", "calls_per_s_8_clients") / _m(r, "baselines", "zmq_proxy_calls_per_s")
        ),
        "≥",
        0.8,
        "x",
    ),
    Goal(
        "sequential p50, acall / zmq.proxy chain",
        lambda r: _m(r, "core", "acall_p50_us") / _m(r, "baselines", "zmq_proxy_p50_us"),
        "≤",
        1.5,
        "x",
    ),
    Goal(
        "log streaming cost, 10 printed lines per call",
        lambda r: _m(r, "logs", "streaming_cost"),
        "<",
        0.10,
        "",
    ),
    Goal(
        "HTTP gateway / bare Starlette, same uvicorn stack",
        lambda r: _m(r, "gateway", "gateway_vs_bare"),
        "≥",
        0.8,
        "x",
    ),
    Goal(
        "p99 / p50 at 64 in flight for 60 s",
        lambda r: _m(r, "tails", "p99_over_p50"),
        "≤",
        2.0,
        "x",
    ),
)


def check(report: dict[str, Any]) -> list[str]:
    """Markdown rows ``| target | bound | this run | met |`` for the targets this run measured."""
    rows = []
    for goal in GOALS:
        try:
            value = goal.figure(report)
        except (KeyError, TypeError, ZeroDivisionError):
            continue  # not measured in this run
        met = "met" if _COMPARE[goal.sign](value, goal.bound) else "**missed**"
        rows.append(
            f"| {goal.what} | {goal.sign} {goal.bound:g}{goal.unit} | {value:,.2f}{goal.unit} | {met} |"
        )
    if not rows:
        return []
    return ["| target | bound | this run | |", "|---|---|---|---|", *rows]
