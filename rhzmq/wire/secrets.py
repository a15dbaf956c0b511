"""The host side of delivering secrets (rhzmq._secrets): an env's owner-only directory of secret
files, and variables that name it. Used by the daemon (secrets in an env's definition) and by
workers (``secret.to(cluster)``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import config as _config
from .exceptions import SecretError
from .protocol import name_problem

#: Where a delivered secret's directory is named in its variables (filled in on the host).
DIR = "{secrets_dir}"


def secrets_dir(env: str) -> Path:
    """An env's secrets directory on this host (owner-only)."""
    problem = name_problem(env, "env name")
    if problem:
        raise SecretError(problem)
    base = _config.home() / "secrets"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(base, 0o700)
    return base / env


def write_files(root: Path, files: dict[str, str]) -> list[str]:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for rel, content in files.items():
        path = (root / rel).resolve()
        if root.resolve() not in path.parents:
            raise SecretError(f"a secret file must stay in its directory: {rel!r}")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.chmod(path, 0o600)
        written.append(str(path))
    return written


def fill(variables: dict[str, str], root: Path) -> dict[str, str]:
    return {k: v.replace(DIR, str(root)) for k, v in variables.items()}


def remove(env: str | None = None) -> None:
    """Remove an env's secrets directory on this host (every env's with None)."""
    base = _config.home() / "secrets"
    if env is not None and name_problem(env, "env name"):
        return  # never a path outside the secrets directory (a name rhzmq refuses anyway)
    shutil.rmtree(base / env if env else base, ignore_errors=True)
