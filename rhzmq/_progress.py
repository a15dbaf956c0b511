"""A one-line progress bar on stderr: items done of a total, optionally bytes, and the rate.

Used by ``fn.map`` (calls) and by data copies (``folder.to(...)``: files, bytes, MB/s). It is
redrawn in place with ``\\r`` at most ``every`` seconds (ten times a second by default; a copy
running in a cluster's worker draws once a second, since each redraw travels to the caller), and
always once more when the total is reached, so the last figures are never lost.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GiB"  # pragma: no cover - the loop returns


class Progress:
    """``Progress("fn.map", 1000)``; ``advance()`` per item done. With ``total_bytes`` the bar
    follows bytes (``add_bytes(n)`` as they move) and shows files, bytes and the byte rate."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        total_bytes: int | None = None,
        every: float = 0.1,
        stream: TextIO | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.total_bytes = total_bytes
        self.done = 0
        self.bytes = 0
        self.every = every
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.monotonic()
        self.drawn = 0.0

    def advance(self, items: int = 1) -> None:
        self.done += items
        self._maybe_draw(final=self.done >= self.total)

    def add_bytes(self, n: int) -> None:
        self.bytes += n
        self._maybe_draw(final=False)

    def _maybe_draw(self, final: bool) -> None:
        now = time.monotonic()
        if final or now - self.drawn >= self.every:
            self.drawn = now
            self.stream.write("\r" + self.line(now))
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        elapsed = max((now if now is not None else time.monotonic()) - self.start, 1e-9)
        width = 30
        if self.total_bytes:
            fraction = min(self.bytes / self.total_bytes, 1.0)
        else:
            fraction = self.done / max(self.total, 1)
        filled = int(width * fraction)
        bar = f"{self.label} [{'#' * filled}{' ' * (width - filled)}] {self.done}/{self.total}"
        if self.total_bytes is None:
            return f"{bar} {self.done / elapsed:,.0f}/s"
        return (
            f"{bar} files, {human_bytes(self.bytes)}/{human_bytes(self.total_bytes)}, "
            f"{human_bytes(self.bytes / elapsed)}/s"
        )

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
