"""Per-call capture of stdout, stderr and logging records, even with many calls running at once.

``sys.stdout``/``sys.stderr`` are replaced once, at worker start, by :class:`_Redirect` objects that
look up the *current call* in a context variable: set in the worker thread running a sync call and
in the context of the task running an async one. A write belongs to that call and is queued on it;
with no current call (the worker's own output), it goes to the real stream, i.e. the daemon's log.

Text is not line-buffered: a write is forwarded as it is, so ``\\r`` progress redraws (tqdm) reach
the caller unchanged. Writes are queued on the call without waking the worker's loop; consecutive
writes to one stream leave as one frame, with the call's FINAL or, while it runs on, at the
worker's next output tick (``OUTPUT_INTERVAL``, 15 ms; see ``worker._worker.Call``).
"""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import IO, Any, Protocol


class CallSink(Protocol):
    """What a running call offers the capture layer (implemented by the worker's Call)."""

    stream_logs: bool
    #: What the call produced and has not sent yet, in order. stdout text goes in as a bare str,
    #: appended here directly: a method call per write cost about as much as the rest of the
    #: capture (a ``print`` is two writes).
    out: list[Any]
    #: Whether the worker knows ``out`` has something waiting; if not, call :meth:`note` after
    #: appending (never before: the worker clears it just before it takes what is waiting).
    noted: bool

    def note(self) -> None: ...

    def output(self, kind: int, text: str) -> None: ...

    def log_record(self, record: dict[str, Any]) -> None: ...


current_call: contextvars.ContextVar[CallSink | None] = contextvars.ContextVar(
    "rhzmq_call", default=None
)


class _Redirect:
    """A text stream that routes writes to the current call, or to the real stream."""

    def __init__(self, kind: int, real: IO[str]) -> None:
        self.kind = kind
        self.real = real

    def write(self, text: str) -> int:
        call = current_call.get()
        if call is None:
            return self.real.write(text)
        if type(text) is not str:
            _not_text(text)
        if call.stream_logs and text:
            call.output(self.kind, text)
        return len(text)

    def flush(self) -> None:
        if current_call.get() is None:
            self.real.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, ... of the real stream
        return getattr(self.real, name)


def _not_text(value: object) -> None:
    """What a real text stream says to ``write(b"...")``: a call's queue takes text only (bytes
    queued there once failed on the loop and lost the call's FINAL)."""
    if isinstance(value, str):
        return  # a str subclass
    raise TypeError(f"write() argument must be str, not {type(value).__name__}")


class _Stdout(_Redirect):
    """sys.stdout: the hot path, the same as ``_Redirect.write`` with ``Call.output`` inlined."""

    def write(self, text: str) -> int:
        call = current_call.get()
        if call is None:
            return self.real.write(text)
        if type(text) is not str:
            _not_text(text)
        if call.stream_logs and text:
            call.out.append(text)
            if not call.noted:
                call.note()
        return len(text)


class _CallLogHandler(logging.Handler):
    """Sends records emitted during a call to that call's caller."""

    def emit(self, record: logging.LogRecord) -> None:
        call = current_call.get()
        if call is None or not call.stream_logs or record.name.startswith(_OWN):
            return
        try:
            message = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                message = f"{message}\n{record.exc_text}"
            call.log_record(
                {
                    "name": record.name,
                    "levelno": record.levelno,
                    "msg": message,
                    "created": record.created,
                }
            )
        except Exception:
            self.handleError(record)


_OWN = "rhzmq."  # the worker's own records stay in its log, even when a call triggered them


class _NotInCall(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return current_call.get() is None or record.name.startswith(_OWN)


def install(
    stdout_kind: int, stderr_kind: int, level: int = logging.INFO, label: str = "worker"
) -> None:
    """Redirect this process's stdout/stderr and root logging through the per-call capture;
    outside calls, log records go to the real stderr tagged ``[label pid]``."""
    real_err = sys.stderr
    sys.stdout = _Stdout(stdout_kind, sys.stdout)
    sys.stderr = _Redirect(stderr_kind, real_err)
    root = logging.getLogger()
    root.setLevel(level)
    own = logging.StreamHandler(real_err)
    own.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s [{label} %(process)d] %(name)s: %(message)s")
    )
    own.addFilter(_NotInCall())
    root.addHandler(own)
    root.addHandler(_CallLogHandler())
