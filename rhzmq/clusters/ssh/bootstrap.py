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

# Prints the path of the first Python >= 3.11 with venv and ensurepip on the host (Debian's
# python3 lacks ensurepip until python3.X-venv is installed: `-m venv` would fail), or what it
# found instead. A Python `uv python install` put in rhzmq's directory there counts. (No path
# in the command line: the tests look for processes by their home's path.)
_ROOT = r"""root="${RHZMQ_HOME:-$HOME/.rhzmq}"; case "$root" in "~/"*) root="$HOME/${root#??}";; esac
"""
_FIND_PYTHON = (
    _ROOT
    + r"""
for p in python3.14 python3.13 python3.12 python3.11 python3 python \
         "$root"/python/cpython-3.*/bin/python3 \
         /usr/local/bin/python3 "$HOME/.pyenv/shims/python3" /opt/conda/bin/python3; do
  path=$(command -v "$p" 2>/dev/null) || continue
  if "$path" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
  then
    echo "PYTHON $path"; exit 0
  fi
  echo "FOUND $path $("$path" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)"
done
exit 3
"""
)

#: How a host without a usable Python gets one (``install_python=``; README, "Allocate machines
#: in a cloud"). Preceded by ``mode=`` (auto, uv or plan) and ``want=`` (the minor version:
#: the client's, as functions travel pickled). Debian and Ubuntu: apt's python3.X and
#: python3.X-venv; RHEL, Fedora, Amazon Linux: dnf's (or yum's) python3.X and python3.X-pip —
#: both as root or with passwordless sudo. Otherwise, or when those fail: a standalone CPython
#: from ``uv python install`` into rhzmq's directory, with the uv on PATH or one pip-installed
#: into ``<rhzmq>/tools`` first (no root needed). Prints ``STEP``/``NOTE`` lines as it goes,
#: then ``PYTHON <path>``; in plan mode ``PLAN <commands>`` instead of running anything.
_GET_PYTHON = (
    _ROOT
    + r"""
os_id= os_like= family=other
if [ -r /etc/os-release ]; then
  os_id=$(. /etc/os-release; echo "${ID:-}"); os_like=$(. /etc/os-release; echo "${ID_LIKE:-}")
fi
case " $os_id $os_like " in
  *" debian "*|*" ubuntu "*) family=debian ;;
  *" rhel "*|*" fedora "*|*" centos "*|*" amzn "*) family=rhel ;;
esac
if [ "$(id -u 2>/dev/null)" = 0 ]; then sudo=
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"
else sudo=none; fi
echo "STEP ${os_id:-unknown system} ($family family), $([ "$sudo" = none ] && echo 'no root' || echo 'root available')"
usable() { "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
versions="$want 3.13 3.12 3.11"
route=uv
if [ "$mode" != uv ] && [ "$sudo" != none ]; then
  if [ $family = debian ] && command -v apt-get >/dev/null 2>&1; then route=apt
  elif [ $family = rhel ] && command -v dnf >/dev/null 2>&1; then route=dnf pm=dnf
  elif [ $family = rhel ] && command -v yum >/dev/null 2>&1; then route=dnf pm=yum
  fi
fi
apt_pick() {
  for v in $versions; do
    apt-cache show "python$v-venv" >/dev/null 2>&1 && { echo "$v"; return 0; }
  done
  return 1
}
if [ $route = apt ]; then
  if [ "$mode" = plan ]; then
    v=$(apt_pick) || v=$want
    echo "PLAN ${sudo:+$sudo }apt-get update && ${sudo:+$sudo }apt-get install -y python$v python$v-venv"
    exit 4
  fi
  echo "STEP apt-get update"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get -q update 2>&1
  if v=$(apt_pick); then
    echo "STEP apt-get install python$v python$v-venv"
    if $sudo env DEBIAN_FRONTEND=noninteractive apt-get -q install -y "python$v" "python$v-venv" 2>&1        && p=$(command -v "python$v") && usable "$p"; then echo "PYTHON $p"; exit 0; fi
  fi
  echo "NOTE apt gave no usable Python 3.11+; trying a standalone one (uv)"
elif [ $route = dnf ]; then
  v=
  for c in $versions; do $pm -q list "python$c" >/dev/null 2>&1 && { v=$c; break; }; done
  if [ "$mode" = plan ]; then
    echo "PLAN ${sudo:+$sudo }$pm install -y python${v:-$want} python${v:-$want}-pip"; exit 4
  fi
  if [ -n "$v" ]; then
    echo "STEP $pm install python$v python$v-pip"
    if $sudo $pm install -y "python$v" "python$v-pip" 2>&1 && p=$(command -v "python$v")        && usable "$p"; then echo "PYTHON $p"; exit 0; fi
  fi
  echo "NOTE $pm gave no usable Python 3.11+; trying a standalone one (uv)"
fi
export UV_PYTHON_INSTALL_DIR="$root/python" UV_PYTHON_PREFERENCE=only-managed UV_PYTHON_INSTALL_BIN=0
uv=$(command -v uv 2>/dev/null) || uv="$root/tools/bin/uv"
if [ ! -x "$uv" ]; then
  py=
  for c in python3 python python3.14 python3.13 python3.12 python3.11 python3.10 python3.9 python3.8; do
    p=$(command -v "$c" 2>/dev/null) && "$p" -m pip --version >/dev/null 2>&1 && { py=$p; break; }
  done
  if [ "$mode" = plan ]; then
    echo "PLAN ${py:-python3} -m pip install --target $root/tools uv && $uv python install $want"; exit 4
  fi
  if [ -z "$py" ]; then
    echo "FAILED no uv on PATH and no Python with pip to install it with"; exit 5
  fi
  echo "STEP pip install uv (into $root/tools, with $py)"
  "$py" -m pip install -q --disable-pip-version-check --target "$root/tools" uv 2>&1 || {
    echo "FAILED pip could not install uv"; exit 5; }
elif [ "$mode" = plan ]; then
  echo "PLAN $uv python install $want"; exit 4
fi
echo "STEP uv python install $want (a standalone CPython, into $root/python)"
"$uv" python install "$want" 2>&1 || { echo "FAILED uv python install $want"; exit 5; }
p=$("$uv" python find "$want" 2>/dev/null) && usable "$p" && { echo "PYTHON $p"; exit 0; }
echo "FAILED uv installed no usable Python $want"; exit 5
"""
)

#: ``install_python=`` values: get a Python where none is usable (system packages first), get
#: one with uv only (nothing outside rhzmq's directory), or never (say what "auto" would run).
INSTALL_PYTHON = ("auto", "uv", "never")


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


def _tagged(out: str, tag: str) -> list[str]:
    return [line[len(tag) + 1 :].strip() for line in out.splitlines() if line.startswith(tag + " ")]


async def find_python(
    conn: asyncssh.SSHClientConnection, host: str, install_python: str = "auto"
) -> str:
    """The path of a Python >= 3.11 with venv on the host; where there is none, get one as
    ``install_python`` says (see ``_GET_PYTHON``), showing its progress."""
    if install_python not in INSTALL_PYTHON:
        raise ValueError(f"install_python must be one of {INSTALL_PYTHON}, got {install_python!r}")
    status, out = await run(conn, _FIND_PYTHON)
    found = _tagged(out, "PYTHON")
    if status == 0 and found:
        return found[0]
    seen = ", ".join(_tagged(out, "FOUND")) or "none"
    want = f"{sys.version_info.major}.{sys.version_info.minor}"
    mode = "plan" if install_python == "never" else install_python
    get = f"mode={mode} want={want}\n{_GET_PYTHON}"
    if mode != "plan":
        say(host, f"no Python 3.11+ with venv (found: {seen}); getting Python {want}")

    def progress(line: str) -> None:
        if mode == "plan" or not line.strip():
            return
        tag, _, rest = line.partition(" ")
        if tag in ("STEP", "NOTE", "FAILED"):
            say(host, rest)
        elif tag != "PYTHON":
            say(host, f"  {line}")

    status, out = await run(conn, get, on_line=progress)
    got = _tagged(out, "PYTHON")
    if status == 0 and got:
        say(host, f"using {got[0]}")
        return got[0]
    plan = _tagged(out, "PLAN")
    if plan:
        raise ClusterError(
            f"{host} has no Python 3.11 or newer with venv (found: {seen}). With "
            f"install_python='auto' rhzmq would run there: {plan[0]}; or install one yourself "
            "and retry."
        )
    tail = "\n  ".join(out.strip().splitlines()[-8:])
    raise ClusterError(
        f"{host} has no Python 3.11 or newer with venv (found: {seen}), and getting one failed"
        f" (exit {status}):\n  {tail}\nInstall one there (e.g. `apt install python{want} "
        f"python{want}-venv`) and retry."
    )


async def install(
    conn: asyncssh.SSHClientConnection, host: str, wheel: Path, install_python: str = "auto"
) -> None:
    python = await find_python(conn, host, install_python)
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
