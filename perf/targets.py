"""The functions benchmarks call remotely (importable, so they travel by import path)."""

from __future__ import annotations


def noop(x: object) -> object:
    return x


async def anoop(x: object) -> object:
    return x


def burn_2ms(x: object) -> object:
    """About 2 ms of pure-Python CPU work (holds the GIL: only more processes scale it)."""
    import time

    end = time.perf_counter() + 0.002
    n = 0
    while time.perf_counter() < end:
        n += 1
    return x


def echo(x: object) -> object:
    return x


def ten_prints(x: object) -> object:
    for i in range(10):
        print(f"line {i} of a chatty call")
    return x
