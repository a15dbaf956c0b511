"""The functions benchmarks call remotely (importable, so they travel by import path)."""

from __future__ import annotations


def noop(x: object) -> object:
    return x


async def anoop(x: object) -> object:
    return x
