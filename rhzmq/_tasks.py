"""Concurrency helpers on anyio task groups: every group of concurrent tasks has an owner that
waits for all of them, and a failure cancels its siblings."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


async def gather(*awaitables: Awaitable[T]) -> list[T]:
    """Await all concurrently; results in order. On the first failure the others are cancelled
    and that exception is raised as itself, not wrapped in an ExceptionGroup: the caller wants
    the one host's clear error."""
    results: list[Any] = [None] * len(awaitables)

    async def one(i: int, aw: Awaitable[T]) -> None:
        results[i] = await aw

    try:
        async with anyio.create_task_group() as tg:
            for i, aw in enumerate(awaitables):
                tg.start_soon(one, i, aw)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return results


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception that failed a task group (not the cancellations it caused)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return first_error(exc)
        if not isinstance(exc, anyio.get_cancelled_exc_class()):
            return exc
    return group.exceptions[0]
