"""The start-up handshake: how a process says it is starting, and when it serves.

A starter hands the new process a stream (a pipe's write end, or the SSH channel that started
it, as ``--ready-fd``; the gateway's stdout). The process writes progress lines, then one line
that says it serves, then closes the stream::

    STEP <free text>            any number: what it is doing now (shown to the user)
    READY <payload>             exactly one: a JSON object (daemons) or a URL (the gateway)

The starter reads until ``READY`` or end of file — never sleeping, and a process that dies
during start-up is reported with its own error. One writer (:class:`Announcer`), one parser
(:func:`parse`) and one reader (:func:`read_ready`) serve every process and every starter.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import IO, Any

import anyio

STEP = "STEP "
READY = "READY "


@dataclass(frozen=True)
class Line:
    """One parsed handshake line: ``kind`` is ``"step"``, ``"ready"`` or ``"other"``."""

    kind: str
    text: str

    def json(self) -> dict[str, Any]:
        """The ``READY`` payload as the JSON object a daemon sends."""
        value = json.loads(self.text)
        if not isinstance(value, dict):
            raise ValueError(f"READY payload is not a JSON object: {self.text[:100]!r}")
        return value


def parse(raw: str | bytes) -> Line:
    """Classify one line of a starting process's handshake stream."""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    text = text.rstrip("\r\n")
    if text.startswith(READY):
        return Line("ready", text[len(READY) :])
    if text.startswith(STEP):
        return Line("step", text[len(STEP) :])
    return Line("other", text)


class Announcer:
    """The starting process's side: ``step()`` any number of times, then ``ready()`` once."""

    def __init__(self, fd: int | None) -> None:
        if fd is not None:
            # Inherited, so inheritable: child processes (workers) must not hold it open, or the
            # starter, reading until it closes (e.g. the SSH channel), would wait for them too.
            os.set_inheritable(fd, False)
        self.stream: IO[str] | None = os.fdopen(fd, "w", buffering=1) if fd is not None else None

    def step(self, text: str) -> None:
        self._say(STEP + text)

    def ready(self, payload: dict[str, Any] | str) -> None:
        """Say it serves, and close the stream (the starter stops reading here)."""
        self._say(READY + (payload if isinstance(payload, str) else json.dumps(payload)))
        self.close()

    def _say(self, line: str) -> None:
        if self.stream is not None:
            try:
                self.stream.write(line + "\n")
            except OSError:
                self.stream = None  # the starter went away; the process keeps going

    def close(self) -> None:
        if self.stream is not None:
            try:
                self.stream.close()
            except OSError:
                pass
            self.stream = None


async def read_ready(
    chunks: AsyncIterable[bytes], on_step: Callable[[str], Any] | None = None
) -> Line | None:
    """Read a handshake stream until its READY line (returned) or its end (None: the process
    ended, or closed the stream, without serving); STEP lines go to ``on_step`` as they come.
    The caller bounds the wait (``anyio.fail_after``)."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while b"\n" in buffer:
            raw, buffer = buffer.split(b"\n", 1)
            line = parse(raw)
            if line.kind == "ready":
                return line
            if line.kind == "step" and on_step is not None:
                on_step(line.text)
    return None


async def fd_chunks(fd: int) -> AsyncIterator[bytes]:
    """What arrives on a pipe's read end, without blocking the loop, until the writers close it
    (closing the fd stays the caller's)."""
    while True:
        await anyio.wait_readable(fd)
        chunk = os.read(fd, 4096)
        if not chunk:
            return
        yield chunk
