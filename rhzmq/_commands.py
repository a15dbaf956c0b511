"""Shell commands run on a cluster (``cluster.run([...])``, ``cluster.run_python([...])``).

The commands run in a worker process of the cluster (the default worker, or an env's), so they
see that worker's environment: its venv first on ``PATH``, its variables, its working directory.
Their output streams to the caller line by line, like any remote print.
"""

from __future__ import annotations

import contextvars
import subprocess
import sys
import threading
from typing import IO

#: The name the runner is held under on a cluster (one per env, placed on first use).
RUNNER = "rhzmq.run"


def _pump(pipe: IO[str], sink: IO[str], lines: list[str]) -> None:
    for line in pipe:
        lines.append(line)
        sink.write(line)
        sink.flush()


def run_commands(commands: list[str], python: bool = False) -> list[tuple[int, str, str]]:
    """Run each command (a shell line, or with ``python`` a Python snippet run by this worker's
    interpreter); returns ``(exit code, stdout, stderr)`` per command."""
    results = []
    for command in commands:
        argv: str | list[str] = [sys.executable, "-c", command] if python else command
        proc = subprocess.Popen(
            argv,
            shell=not python,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None and proc.stderr is not None
        out: list[str] = []
        err: list[str] = []
        # Each reader runs in a copy of this call's context: the worker streams a thread's
        # prints to the caller by the call in its context.
        readers = [
            threading.Thread(target=contextvars.copy_context().run, args=(_pump, pipe, sink, lines))
            for pipe, sink, lines in (
                (proc.stdout, sys.stdout, out),
                (proc.stderr, sys.stderr, err),
            )
        ]
        for t in readers:
            t.start()
        code = proc.wait()
        for t in readers:
            t.join()
        results.append((code, "".join(out), "".join(err)))
    return results
