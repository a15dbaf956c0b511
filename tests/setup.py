"""Make this machine ready for the whole test suite, then say so (the README's test command).

``python tests/setup.py [--system-only]`` (standard library only, run with the interpreter of
the virtual environment the tests will use):

1. checks the real components the suite starts — OpenSSH's ``sshd`` and ``ssh``/``ssh-keygen``,
   ``curl``, Node.js, ``pgrep``, ``setpriv``, Debian's Chromium, PostgreSQL — and installs the missing ones with ``apt-get`` when run as
   root, or stops *before anything else* naming the exact command to run. Nothing is skipped
   later: a product area without its component is a failed run, not a quieter one;
2. installs the Node.js servers the suite starts (Azurite, the Azure Storage emulator) at the
   exact versions of ``tests/node/package-lock.json`` into ``tests/node/node_modules`` (git-ignored)
   with ``npm ci`` — once: again only when the lock file changes;
3. installs the pinned test and lint tools from ``requirements/lock.txt`` and rhzmq itself
   (editable) into the running interpreter, which must be a virtual environment's, so what
   runs is what a newcomer gets, not whatever the machine had.

Regenerate the lock after changing dependencies in ``pyproject.toml`` with
``uv pip compile pyproject.toml --extra test --extra dev --python-version 3.11
-o requirements/lock.txt``; ``nox -s fresh`` runs the suite on the newest allowed versions.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
NODE = ROOT / "tests" / "node"  # package.json + package-lock.json of the Node.js test servers

#: executable -> Debian package that provides it
NEEDED = {
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "curl": "curl",
    "node": "nodejs",
    "npm": "npm",  # installs tests/node's servers (Azurite)
    "pgrep": "procps",
    "setpriv": "util-linux",  # a second, unprivileged user (tests/security)
    "chromium": "chromium",  # a real browser for the web-page attacks (Playwright drives it)
    "initdb": "postgresql",  # the registry's tests run on a real PostgreSQL too (tests/den)
}


def _which(name: str) -> str | None:
    # sshd lives in /usr/sbin, which a non-root PATH may lack; Debian keeps PostgreSQL's server
    # programs (initdb, postgres) off PATH, in /usr/lib/postgresql/<version>/bin.
    extra = ["/usr/sbin", "/sbin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"))]
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(extra))


def missing_packages() -> list[str]:
    return sorted({pkg for exe, pkg in NEEDED.items() if _which(exe) is None})


def ensure_system_packages() -> None:
    packages = missing_packages()
    if not packages:
        return
    command = ["apt-get", "install", "-y", "-qq", *packages]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit(
            "The test suite starts real servers and clients that are not installed here: "
            f"{', '.join(packages)}.\nInstall them first, e.g.:\n\n"
            f"    sudo apt-get update && sudo {' '.join(command)}\n\n"
            "then run this command again."
        )
    print(f"tests/setup.py: installing {' '.join(packages)} with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(command, check=True, env=env)
    still = missing_packages()
    if still:
        sys.exit(f"tests/setup.py: apt-get ran, but these are still missing: {', '.join(still)}")


def ensure_node_packages() -> None:
    """``npm ci`` of tests/node's lock file, unless that exact lock file is installed already."""
    lock = (NODE / "package-lock.json").read_bytes()
    stamp = NODE / "node_modules" / ".rhzmq-installed-lock"
    if stamp.exists() and stamp.read_bytes() == lock:
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("tests/setup.py: npm is missing (Debian's package npm): apt-get install npm")
    print("tests/setup.py: installing tests/node/package-lock.json with npm ci", flush=True)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE, check=True)
    stamp.write_bytes(lock)


def ensure_python_packages() -> None:
    if sys.prefix == sys.base_prefix:
        sys.exit(
            "tests/setup.py installs the pinned test tools into the interpreter that runs it, and "
            f"{sys.executable} is not a virtual environment's. Make one first:\n\n"
            "    python3 -m venv .venv && .venv/bin/python tests/setup.py\n"
        )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    print(f"tests/setup.py: installing {LOCK.relative_to(ROOT)} and rhzmq into {sys.prefix}")
    subprocess.run([*pip, "install", "-r", str(LOCK)], check=True)
    subprocess.run([*pip, "install", "--no-deps", "-e", str(ROOT)], check=True)


def main() -> None:
    ensure_system_packages()
    ensure_node_packages()
    if "--system-only" in sys.argv[1:]:  # nox installs the Python packages itself
        return
    ensure_python_packages()
    print("tests/setup.py: ready; run the suite with `.venv/bin/python -m pytest`", flush=True)


if __name__ == "__main__":
    main()
