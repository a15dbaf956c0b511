"""Showing a remote call's output locally: prints prefixed by the object's name, logs re-emitted.

Remote stdout/stderr arrive in arbitrary chunks. The prefix goes at the start of every line, and
also after a ``\\r``: a progress bar (tqdm) redraws its line with ``\\r``, so the redrawn line keeps
its prefix and the bar updates in place in the local terminal.
"""

from __future__ import annotations

import logging
import sys
from typing import Any


class PrefixedWriter:
    """Writes one call's stream with ``(name) `` at each line start."""

    __slots__ = ("at_line_start", "prefix", "stream_name")

    def __init__(self, name: str, stream_name: str) -> None:
        self.prefix = f"({name}) " if name else ""
        self.stream_name = stream_name
        self.at_line_start = True

    def write(self, text: str) -> None:
        stream = getattr(sys, self.stream_name)
        if not self.prefix:
            stream.write(text)
            stream.flush()
            return
        # splitlines(keepends=True) breaks after \n and \r alike, in C; the prefix goes before
        # every piece that starts a line.
        out: list[str] = []
        for piece in text.splitlines(keepends=True):
            if self.at_line_start:
                out.append(self.prefix)
            out.append(piece)
            self.at_line_start = piece[-1] in "\r\n"
        stream.write("".join(out))
        stream.flush()


def emit_log(record: dict[str, Any], source: str) -> None:
    """Re-emit a remote log record through local logging, at its level, if that level is on."""
    logger = logging.getLogger(str(record.get("name") or "root"))
    levelno = int(record.get("levelno", logging.INFO))
    if not logger.isEnabledFor(levelno):
        return
    local = logging.makeLogRecord(
        {
            "name": logger.name,
            "levelno": levelno,
            "levelname": logging.getLevelName(levelno),
            "msg": f"({source}) {record.get('msg', '')}" if source else record.get("msg", ""),
            "created": record.get("created"),
            "rhzmq_source": source,
        }
    )
    logger.handle(local)
