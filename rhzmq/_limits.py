"""Configurable limits, each exceeded with a specific :class:`~rhzmq.LimitExceeded` error.

=============================  ==============================  ==========================
limit                          environment variable            default
=============================  ==============================  ==========================
bytes in one message           ``RHZMQ_MAX_MESSAGE_BYTES``     1 GiB
calls in flight per client     ``RHZMQ_MAX_INFLIGHT``          10,000
objects held by one worker     ``RHZMQ_MAX_OBJECTS``           10,000
seconds a call waits for a     ``RHZMQ_REBUILD_TIMEOUT``       30
restarting worker's rebuild
=============================  ==============================  ==========================

The daemon passes its environment to its workers, so setting a variable before ``rhzmq start``
(or ``up_if_not()``) configures the whole local cluster. The message size is checked by the
sender (client or worker) before anything is sent, and the broker's socket refuses larger
messages outright (``ZMQ_MAXMSGSIZE``) as a guard against peers that skip the check.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ._exceptions import LimitExceeded


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"{name}={value} must be at least 1")
    return value


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"{name}={value} must be more than 0 seconds")
    return value


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 1 << 30
    max_inflight: int = 10_000
    max_objects: int = 10_000
    rebuild_timeout: float = 30.0

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            _env_int("RHZMQ_MAX_MESSAGE_BYTES", cls.max_message_bytes),
            _env_int("RHZMQ_MAX_INFLIGHT", cls.max_inflight),
            _env_int("RHZMQ_MAX_OBJECTS", cls.max_objects),
            _env_seconds("RHZMQ_REBUILD_TIMEOUT", cls.rebuild_timeout),
        )


def message_size(frames: Any) -> int:
    return sum(f.nbytes if type(f) is memoryview else len(f) for f in frames)


def check_size(frames: Any, limit: int, what: str) -> None:
    size = message_size(frames)
    if size > limit:
        raise LimitExceeded(
            f"{what} is {size:,} bytes, over the {limit:,}-byte message limit. Send it in parts, "
            "or raise the limit with RHZMQ_MAX_MESSAGE_BYTES on both sides."
        )
