"""Configurable limits, each exceeded with a specific :class:`~rhzmq.LimitExceeded` error.

=============================  ==============================  ==========================
limit                          environment variable            default
=============================  ==============================  ==========================
bytes in one message           ``RHZMQ_MAX_MESSAGE_BYTES``     1 GiB
calls in flight per client     ``RHZMQ_MAX_INFLIGHT``          10,000
objects held by one worker     ``RHZMQ_MAX_OBJECTS``           10,000
seconds a call waits for a     ``RHZMQ_REBUILD_TIMEOUT``       30
restarting worker's rebuild
seconds the gateway waits for  ``RHZMQ_HTTP_HEADER_TIMEOUT``   10
a request's headers
seconds the gateway waits for  ``RHZMQ_HTTP_BODY_TIMEOUT``     30
a call's request body
=============================  ==============================  ==========================

The daemon passes its environment to its workers, so setting a variable before ``rhzmq start``
(or ``up_if_not()``) configures the whole local cluster. The message size is checked by the
sender (client or worker) before anything is sent, and the broker's socket refuses larger
messages outright (``ZMQ_MAXMSGSIZE``) as a guard against peers that skip the check.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .exceptions import LimitExceeded

N = TypeVar("N", int, float)


def _env_number(name: str, default: N, kind: Callable[[str], N]) -> N:
    """A positive number from the environment variable ``name``, or ``default``."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"{name}={raw!r} is not {what}") from None
    if not value > 0:
        raise ValueError(f"{name}={value} must be more than 0")
    return value


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 1 << 30
    max_inflight: int = 10_000
    max_objects: int = 10_000
    rebuild_timeout: float = 30.0
    http_header_timeout: float = 10.0
    http_body_timeout: float = 30.0

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            _env_number("RHZMQ_MAX_MESSAGE_BYTES", cls.max_message_bytes, int),
            _env_number("RHZMQ_MAX_INFLIGHT", cls.max_inflight, int),
            _env_number("RHZMQ_MAX_OBJECTS", cls.max_objects, int),
            _env_number("RHZMQ_REBUILD_TIMEOUT", cls.rebuild_timeout, float),
            _env_number("RHZMQ_HTTP_HEADER_TIMEOUT", cls.http_header_timeout, float),
            _env_number("RHZMQ_HTTP_BODY_TIMEOUT", cls.http_body_timeout, float),
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
