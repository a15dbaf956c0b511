"""One host of an SSH cluster: what runs there, installing this exact build, starting and
stopping its daemon.

Install: find a Python >= 3.11, make ``$RHZMQ_HOME/venv`` (with the system's site-packages
visible, so preinstalled libraries such as a CUDA build of torch are used as they are) and
install the wheel of the client's exact build (:mod:`rhzmq.wire.build`) with its dependencies,
one install at a time per host. Start: the daemon runs detached and answers its start-up
handshake (:mod:`rhzmq.wire.handshake`) on the SSH channel that started it — fd 3 is that
channel, the daemon's own output goes to its log.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import asyncssh

from ...wire import handshake
from ...wire.build import wheel_version
from ...wire.exceptions import ClusterError
from ...wire.launch import DaemonArgs
from .transport import put_file, remote_home, run

# Prints the path of the first Python >= 3.11 on the host, or what it found instead.
_FIND_PYTHON = r"""
for p in python3.14 python3.13 python3.12 python3.11 python3 python \
         /usr/local/bin/python3 "$HOME/.pyenv/shims/python3" /opt/conda/bin/python3; do
  path=$(command -v "$p" 2>/dev/null) || continue
  if "$path" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "PYTHON $path"; exit 0
  fi
  echo "FOUND $path $("$path" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)"
done
exit 3
"""


def say(host: str, text: str) -> None:
    """Progress of one host, as ``[host] text`` on stderr."""
    print(f"[{host}] {text.rstrip()}", file=sys.stderr, flush=True)


async def _remote_command(conn: asyncssh.SSHClientConnection, command: str) -> str:
    """``python -m rhzmqd.remote <command>`` with the host's rhzmq, if it is installed."""
    where = await remote_home(conn)
    python = shlex.quote(where.python)
    return f"test -x {python} && {where.env()} {python} -m rhzmqd.remote {command}"


async def probe(conn: asyncssh.SSHClientConnection) -> dict[str, Any]:
    """What runs on a host: its rhzmq build and daemon state; {} without our venv."""
    status, out = await run(conn, await _remote_command(conn, "probe") + " 2>&1")
    if status != 0:
        return {}
    try:
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result
    except (ValueError, IndexError):
        return {}  # an install broken half-way: reinstall


async def install(conn: asyncssh.SSHClientConnection, host: str, wheel: Path) -> None:
    status, out = await run(conn, _FIND_PYTHON)
    found = [line.split(maxsplit=1)[1] for line in out.splitlines() if line.startswith("PYTHON ")]
    if status != 0 or not found:
        seen = [line[6:] for line in out.splitlines() if line.startswith("FOUND ")]
        raise ClusterError(
            f"{host} has no Python 3.11 or newer with venv (found: {', '.join(seen) or 'none'})."
            " Install one there (e.g. `apt install python3.11 python3.11-venv`) and retry."
        )
    python = found[0].strip()
    say(host, f"installing rhzmq {wheel_version()} with {python}")
    where = await remote_home(conn)
    remote_wheel = f"{where.rhzmq}/wheels/{wheel.name}"
    await put_file(conn, wheel, remote_wheel)
    home, venv, py = shlex.quote(where.rhzmq), shlex.quote(where.venv), shlex.quote(where.python)
    # One install at a time per host: a cancelled `up` does not stop the remote pip (closing
    # the SSH channel leaves it running), and a second pip in the same venv breaks both.
    # A venv whose pip does not run was cut short: remake it.
    command = (
        f"mkdir -p {home} && exec 9>{home}/install.lock && {{ flock -w 900 9 || true; }}; "
        f"set -e; if ! {py} -m pip --version >/dev/null 2>&1; then rm -rf {venv}; "
        f"{shlex.quote(python)} -m venv --system-site-packages {venv}; fi; "
        f"{py} -m pip install --disable-pip-version-check --progress-bar off "
        f"{shlex.quote(remote_wheel)}"
    )
    status, out = await run(conn, command, on_line=lambda line: say(host, line))
    if status != 0:
        tail = "\n  ".join(out.strip().splitlines()[-12:])
        raise ClusterError(
            f"installing rhzmq on {host} failed (exit {status}). pip said:\n  {tail}\n"
            "Fix the cause on the host (network, disk, compilers) and retry up_if_not()."
        )


async def start_daemon(conn: asyncssh.SSHClientConnection, host: str, args: DaemonArgs) -> None:
    """Start the host's daemon with ``args`` and wait for its READY (ClusterError with its log's
    tail if it never comes)."""
    say(host, f"starting the {'head' if args.head is None else 'node'} daemon")
    where = await remote_home(conn)
    log = shlex.quote(where.log)
    argv = dataclasses.replace(args, detach=True, ready_fd=3).command(where.python)
    command = (
        f"mkdir -p {shlex.quote(where.local)} && {where.env()} {shlex.join(argv)} "
        f"3>&1 >>{log} 2>&1 </dev/null"
    )
    ready = False

    def on_line(raw: str) -> None:
        nonlocal ready
        line = handshake.parse(raw)
        if line.kind == "ready":
            ready = True
            say(host, "daemon up")
        elif line.kind == "step":
            say(host, line.text)

    await run(conn, command, on_line=on_line)
    if not ready:
        _, tail = await run(conn, f"tail -n 20 {log}")
        raise ClusterError(
            f"the rhzmq daemon on {host} did not start. Its log ({where.log}) ends with:\n  "
            + "\n  ".join(tail.splitlines())
        )


async def stop_daemon(conn: asyncssh.SSHClientConnection, host: str) -> bool:
    """Stop the host's daemon, if one runs; returns whether one did."""
    status, out = await run(conn, await _remote_command(conn, "stop"))
    stopped = status == 0 and '"stopped": true' in out
    if stopped:
        say(host, "daemon stopped")
    return stopped
