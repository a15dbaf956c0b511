"""Code sync: the user's project directory, mirrored on every host of an SSH cluster.

What is sent: every file under the project root (the nearest directory above the code holding
``.git``, ``pyproject.toml``, ``setup.py`` or ``setup.cfg``; else the code's own directory) except
what ``.gitignore`` and ``.rhzmqignore`` files exclude (git's pattern rules: ``*``, ``**``, ``?``,
``[...]``, a leading or inner ``/`` anchors, a trailing ``/`` matches directories only, ``!``
re-includes, the last matching rule wins, nested files apply below their directory), plus always
``.git/``, ``__pycache__/``, ``*.pyc``, tool caches and virtual environments.

Where: ``$RHZMQ_HOME/code/<project directory name>/`` on each host (that host's own
``RHZMQ_HOME``: a spec names the path with the ``$RHZMQ_HOME`` prefix and each host's worker
expands it, see :func:`rhzmq.wire.config.expand`).

Incremental like rsync's quick check: one remote listing of (size, mtime) per host, and only the
files that differ travel, as one tar stream (mtimes kept) through the SSH channel; files deleted
here are deleted there. A project over the size limit (``RHZMQ_SYNC_LIMIT_MB``, default 500) is
refused with its biggest files named.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from ...wire.exceptions import ClusterError
from . import transport

REMOTE_ROOT = f"{transport.RHZMQ_HOME_PREFIX}/code"
ALWAYS_IGNORED = [
    ".git/",
    "__pycache__/",
    "*.pyc",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".nox/",
    ".tox/",
    "*.egg-info/",
]
IGNORE_FILES = (".gitignore", ".rhzmqignore")
ROOT_MARKERS = (".git", "pyproject.toml", "setup.py", "setup.cfg")
CHUNK = 1 << 20


def sync_limit() -> int:
    return int(float(os.environ.get("RHZMQ_SYNC_LIMIT_MB", "500")) * 1024 * 1024)


# -- ignore rules ------------------------------------------------------------------------------


@dataclass
class Rule:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool
    base: str  # the directory (relative to the root) whose ignore file holds the rule


def _translate(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out, i = out + "/.*", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            if body.startswith("!"):
                body = "^" + body[1:]
            out, i = out + f"[{body}]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def parse_rules(text: str, base: str = "") -> list[Rule]:
    """Rules of one ignore file found in directory ``base`` (relative to the project root)."""
    rules = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line[1:] if negate else line
        if line.startswith("\\"):
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        body = _translate(line.lstrip("/"))
        regex = f"^{body}$" if anchored else f"^(?:.*/)?{body}$"
        rules.append(Rule(re.compile(regex), negate, dir_only, base))
    return rules


def ignored(rules: list[Rule], rel: str, is_dir: bool) -> bool:
    result = False
    for rule in rules:
        if rule.dir_only and not is_dir:
            continue
        if rule.base:
            if not rel.startswith(rule.base + "/"):
                continue
            path = rel[len(rule.base) + 1 :]
        else:
            path = rel
        if rule.regex.match(path):
            result = not rule.negate
    return result


def project_files(root: Path) -> dict[str, tuple[int, int]]:
    """Files to sync: relative path -> (size, mtime in whole seconds)."""
    files: dict[str, tuple[int, int]] = {}
    # directory -> the rules that apply in it: its parent's, then its own ignore files'
    rules_in: dict[str, list[Rule]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        if rel_dir:
            rules = list(rules_in[rel_dir.rsplit("/", 1)[0] if "/" in rel_dir else ""])
        else:
            rules = parse_rules("\n".join(ALWAYS_IGNORED))
        for name in IGNORE_FILES:
            try:
                rules += parse_rules((Path(dirpath) / name).read_text(errors="replace"), rel_dir)
            except OSError:
                pass
        rules_in[rel_dir] = rules
        keep = []
        for d in sorted(dirnames):
            rel = f"{rel_dir}/{d}" if rel_dir else d
            full = Path(dirpath) / d
            if full.is_symlink() or (full / "pyvenv.cfg").exists() or ignored(rules, rel, True):
                continue  # symlinked dirs could loop; venvs are per machine
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            rel = f"{rel_dir}/{f}" if rel_dir else f
            if ignored(rules, rel, False):
                continue
            try:
                st = (Path(dirpath) / f).stat()
            except OSError:
                continue  # a dangling symlink
            files[rel] = (st.st_size, int(st.st_mtime))
    return files


# -- which directory, and where it goes ---------------------------------------------------------


def project_root(path: str) -> Path:
    """The project a ``sys.path`` directory belongs to (see the module docstring).

    Never the home directory or ``/``: they hold ``.ssh/``, cloud credentials and cluster
    tokens, which must not travel to any host (a module directly in $HOME once made it one).
    """
    start = Path(path).resolve()
    stop = {Path.home().resolve(), Path(start.anchor)}
    for candidate in (start, *start.parents):
        if candidate in stop:
            break
        if any((candidate / m).exists() for m in ROOT_MARKERS):
            return candidate
    if start in stop or Path.home().resolve().is_relative_to(start):  # /home holds homes too
        raise ClusterError(
            f"refusing to sync {start} to the cluster: the code being sent lives directly in "
            f"{_what_it_is(start)}, "
            "and all of it (.ssh, credentials, tokens) would travel. Move the module into a "
            "project folder (e.g. ~/myproject/, with a pyproject.toml or .git) and import it "
            "from there."
        )
    return start


def _what_it_is(path: Path) -> str:
    if path == Path(path.anchor):
        return "the root directory"
    return (
        "your home directory" if path == Path.home().resolve() else "a directory holding your home"
    )


def is_installed(path: str) -> bool:
    """Library code (this interpreter's own directories) is installed on hosts, not synced."""
    resolved = Path(path).resolve()
    prefixes = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    return any(resolved == p or p in resolved.parents for p in prefixes)


def is_project_dir(path: str) -> bool:
    """Whether code imported from ``path`` must be synced (a local directory, not a library)."""
    return os.path.isdir(path) and not is_installed(path)


def local_path(path: str) -> tuple[Path, bool]:
    """``path`` expanded, and whether it is a directory."""
    expanded = Path(path).expanduser()
    return expanded, expanded.is_dir()


def remote_dir(root: Path) -> str:
    return f"{REMOTE_ROOT}/{root.name}"


def remote_path(path: str, root: Path) -> str:
    rel = Path(path).resolve().relative_to(root)
    base = remote_dir(root)
    return base if str(rel) == "." else f"{base}/{rel.as_posix()}"


def check_size(root: Path, files: dict[str, tuple[int, int]]) -> None:
    total = sum(size for size, _ in files.values())
    limit = sync_limit()
    if total <= limit:
        return
    biggest = sorted(files.items(), key=lambda kv: kv[1][0], reverse=True)[:5]
    listed = ", ".join(f"{name} ({_mb(size)})" for name, (size, _) in biggest)
    raise ClusterError(
        f"refusing to sync {root}: {_mb(total)} is over the {_mb(limit)} limit. Biggest files: "
        f"{listed}. Exclude them in {root / '.rhzmqignore'} (or .gitignore), or raise the "
        "limit with RHZMQ_SYNC_LIMIT_MB."
    )


def _mb(n: int) -> str:
    return f"{n / 1048576:,.1f} MB"


# -- the transfer -------------------------------------------------------------------------------

_LISTING = (
    "import json,os,sys\n"
    "root=os.path.expanduser(sys.argv[1]);out={}\n"
    "for d,_,fs in os.walk(root):\n"
    " for f in fs:\n"
    "  p=os.path.join(d,f);s=os.lstat(p)\n"
    "  out[os.path.relpath(p,root)]=[s.st_size,int(s.st_mtime)]\n"
    "print(json.dumps(out))\n"
)


async def sync_host(
    conn: asyncssh.SSHClientConnection,
    root: Path,
    files: dict[str, tuple[int, int]],
    say: Callable[[str], None],
    dest: str | None = None,
    *,
    delete: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Bring the host's copy of ``root`` (at ``dest``, default :func:`remote_dir`) up to date;
    returns the number of files sent. ``delete=False`` keeps files the host has and ``root``
    lacks (data folders); ``progress(sent, total)`` follows the bytes of the transfer."""
    where = await transport.remote_home(conn)
    dest = where.path(dest or remote_dir(root))
    python = shlex.quote(where.python)
    status, out = await transport.run(
        conn, f"{python} -c {shlex.quote(_LISTING)} {transport.quote(dest)}", on_line=None
    )
    if status != 0:
        raise ClusterError(f"listing {dest} failed: {out.strip()[-500:]}")
    there: dict[str, list[int]] = json.loads(out.strip().splitlines()[-1])
    changed = [rel for rel, meta in files.items() if there.get(rel) != list(meta)]
    removed = [rel for rel in there if rel not in files] if delete else []
    if removed:
        listing = "\n".join(removed)
        await transport.run(
            conn,
            f"cd {transport.quote(dest)} && xargs -d '\\n' rm -f --",
            stdin=listing + "\n",
        )
    if not changed:
        return 0
    size = sum(files[rel][0] for rel in changed)
    if progress is None:
        say(f"syncing {len(changed)} changed file(s), {_mb(size)}, of {root} to {dest}")
    with tempfile.TemporaryFile() as tmp:
        with tarfile.open(fileobj=tmp, mode="w") as tar:
            for rel in changed:
                tar.add(root / rel, arcname=rel, recursive=False)
        total = tmp.tell()
        tmp.seek(0)
        command = f"mkdir -p {transport.quote(dest)} && tar -x -f - -C {transport.quote(dest)}"
        async with conn.create_process(command, encoding=None, stderr=asyncssh.STDOUT) as proc:
            sent, shown = 0, 0
            while chunk := tmp.read(CHUNK):
                proc.stdin.write(chunk)
                await proc.stdin.drain()
                sent += len(chunk)
                if progress is not None:
                    progress(sent, total)
                elif total > 4 * CHUNK and sent - shown >= total // 10:
                    shown = sent
                    say(f"  {sent * 100 // total}% of {_mb(total)}")
            proc.stdin.write_eof()
            output = await proc.stdout.read()
            await proc.wait()
        if proc.exit_status != 0:
            raise ClusterError(f"unpacking the project on the host failed: {output!r}")
    return len(changed)
