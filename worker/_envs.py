"""Python environments for workers: a virtual environment per set of requirements.

An env with ``reqs`` gets a venv under ``$RHZMQ_HOME/envs/<hash of the requirements and Python
version>``, created once and reused by every env with the same requirements. It is *layered* over
the daemon's own environment: a ``.pth`` file in the venv runs ``site.addsitedir`` on the daemon's
site-packages, so rhzmq (even an editable install) and everything the daemon has stay importable,
while the env's own packages come first on ``sys.path``.

pip runs from the daemon (``pip --python <venv>``: no pip inside the venv, no bootstrap cost) and
its output streams to the caller line by line. A failed install removes the half-built venv and
raises :class:`EnvInstallError` with pip's own last lines; other envs are untouched.

An env with ``conda=`` (:func:`ensure_conda`) runs in a conda environment made by the first of
``micromamba``, ``mamba``, ``conda`` on the host's PATH: an existing environment by name, or one
created once under ``$RHZMQ_HOME/envs/conda-<hash>`` from an environment file (a path, or the
file's content as a dict). It is layered over the daemon's packages the same way, so its Python
must be the daemon's version (the error says so otherwise); ``reqs`` are pip-installed on top.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import site
import stat
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from rhzmq.wire import config as _config
from rhzmq.wire.exceptions import EnvError


class EnvInstallError(EnvError):
    """Installing an environment's requirements failed; the message carries pip's output."""


def env_key(reqs: list[str]) -> str:
    data = json.dumps({"reqs": sorted(reqs), "python": sys.version.split()[0]})
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def envs_dir() -> Path:
    path = _config.home() / "envs"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)  # a venv's python runs as this user: no one else may plant one
    return path


def _check_owned(root: Path) -> None:
    """A cached venv is reused only if this user owns it and no one else can write to it: a
    venv another user pre-created (RHZMQ_HOME in a shared directory) would run their code as
    ours."""
    me = os.getuid()
    for path in (root, root / "bin", root / "bin" / "python", root / ".rhzmq-ready"):
        try:
            st = path.lstat()
        except FileNotFoundError:
            raise EnvInstallError(
                f"the environment in {root} is incomplete ({path} is missing): remove {root} "
                "and let rhzmq build it again"
            ) from None
        writable = not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o022  # a link's mode is moot
        if st.st_uid != me or writable:
            raise EnvInstallError(
                f"refusing to use the environment in {root}: {path} is owned by uid {st.st_uid} "
                f"or writable by others (mode {st.st_mode & 0o777:o}). Remove {root} and let "
                "rhzmq build it again, and keep RHZMQ_HOME in a directory only you can write."
            )


def _parent_site_lines() -> list[str]:
    """``.pth`` lines that make the daemon's packages importable inside a venv."""
    lines = [
        f"import site; site.addsitedir({d!r})" for d in site.getsitepackages() if Path(d).is_dir()
    ]
    user = site.getusersitepackages()
    if isinstance(user, str) and Path(user).is_dir():
        lines.append(f"import site; site.addsitedir({user!r})")
    return lines


def _write_parent_pth(root: Path) -> None:
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)}))
    purelib.mkdir(parents=True, exist_ok=True)
    (purelib / "_rhzmq_parent.pth").write_text("\n".join(_parent_site_lines()) + "\n")


async def ensure_venv(reqs: list[str], progress: Callable[[str], None]) -> str:
    """Path of a Python with ``reqs`` installed (building the venv unless cached)."""
    root = envs_dir() / env_key(reqs)
    python = root / "bin" / "python"
    ready = root / ".rhzmq-ready"
    if ready.exists():
        _check_owned(root)
        progress(f"using the cached environment for {', '.join(reqs)} ({root})\n")
        return str(python)
    lock = envs_dir() / f"{root.name}.lock"
    async with await anyio.open_file(lock, "w") as f:
        # Two envs with the same requirements built at once share one venv: the second waits.
        await anyio.to_thread.run_sync(fcntl.flock, f.wrapped.fileno(), fcntl.LOCK_EX)
        try:
            if ready.exists():  # another process built it while we waited for the lock
                _check_owned(root)
                return str(python)
            shutil.rmtree(root, ignore_errors=True)
            progress(f"creating a virtual environment in {root}\n")
            await _run([sys.executable, "-m", "venv", "--without-pip", str(root)], progress, reqs)
            await anyio.to_thread.run_sync(_write_parent_pth, root)
            progress(f"installing {' '.join(reqs)}\n")
            await _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "--python",
                    str(python),
                    "install",
                    "--progress-bar",
                    "off",
                    "--disable-pip-version-check",
                    *reqs,
                ],
                progress,
                reqs,
            )
            ready.write_text(json.dumps({"reqs": reqs}))
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        finally:
            fcntl.flock(f.wrapped.fileno(), fcntl.LOCK_UN)
    return str(python)


#: Conda front ends, in the order they are looked for on the host's PATH.
CONDA_TOOLS = ("micromamba", "mamba", "conda")


def conda_tool() -> str | None:
    return next((path for tool in CONDA_TOOLS if (path := shutil.which(tool))), None)


async def ensure_conda(
    conda: str | dict[str, Any], reqs: list[str], progress: Callable[[str], None]
) -> str:
    """Path of the Python of a conda environment (see the module docstring): ``conda`` is an
    existing environment's name, or ``{"yaml": <environment file text>}``, or the file's content
    as a dict."""
    tool = conda_tool()
    if tool is None:
        raise EnvInstallError(
            "this env asks for a conda environment (conda=...), but none of "
            f"{', '.join(CONDA_TOOLS)} is on this host's PATH ({os.environ.get('PATH', '')}). "
            "Install one (micromamba is a single binary) where the cluster runs, or describe "
            "the env with reqs=[...] (pip) instead"
        )
    what = [f"conda={conda!r}"]
    if isinstance(conda, str):
        prefix = await _named_conda_env(tool, conda, progress)
    else:
        # An environment file's text (read where the env was described), or its content as a
        # dict: JSON is YAML, so conda reads either as the file.
        content = str(conda["yaml"]) if set(conda) == {"yaml"} else json.dumps(conda)
        root = envs_dir() / ("conda-" + hashlib.sha256(content.encode()).hexdigest()[:16])
        prefix = root
        if not (root / ".rhzmq-ready").exists():
            shutil.rmtree(root, ignore_errors=True)
            spec_file = envs_dir() / f"{root.name}.yml"
            spec_file.write_text(content)
            progress(f"creating the conda environment {root} with {Path(tool).name}\n")
            create = [tool, "create", "-y", "-p", str(root), "-f", str(spec_file)]
            if Path(tool).name != "micromamba":
                create = [tool, "env", "create", "-p", str(root), "-f", str(spec_file)]
            try:
                await _run(create, progress, what, Path(tool).name)
            except BaseException:
                shutil.rmtree(root, ignore_errors=True)
                raise
            (root / ".rhzmq-ready").write_text(content)
    python = prefix / "bin" / "python"
    if not python.exists():
        raise EnvInstallError(
            f"the conda environment {prefix} has no Python (bin/python): add python="
            f"{sys.version_info.major}.{sys.version_info.minor} to its dependencies"
        )
    await _check_python_version(python)
    await anyio.to_thread.run_sync(_write_parent_pth, prefix)
    if reqs:
        progress(f"installing {' '.join(reqs)} into {prefix}\n")
        await _run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(python),
                "install",
                "--progress-bar",
                "off",
                "--disable-pip-version-check",
                *reqs,
            ],
            progress,
            reqs,
        )
    return str(python)


async def _named_conda_env(tool: str, name: str, progress: Callable[[str], None]) -> Path:
    result = await anyio.run_process([tool, "env", "list", "--json"], check=False)
    try:
        prefixes = [Path(p) for p in json.loads(result.stdout)["envs"]]
    except (ValueError, KeyError, TypeError):
        raise EnvInstallError(
            f"`{tool} env list --json` did not list environments: {result.stderr.decode(errors='replace')[-500:]}"
        ) from None
    for prefix in prefixes:
        if prefix.name == name:
            progress(f"using the conda environment {name!r} ({prefix})\n")
            return prefix
    raise EnvInstallError(
        f"no conda environment named {name!r} on this host ({Path(tool).name} lists: "
        f"{', '.join(p.name for p in prefixes) or 'none'}); give an environment file instead "
        "(conda='environment.yml' or a dict)"
    )


async def _check_python_version(python: Path) -> None:
    result = await anyio.run_process(
        [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], check=False
    )
    theirs = result.stdout.decode().strip()
    ours = f"{sys.version_info.major}.{sys.version_info.minor}"
    if theirs != ours:
        raise EnvInstallError(
            f"the conda environment's Python is {theirs or 'not runnable'}, the cluster's is "
            f"{ours}: rhzmq's workers run on the cluster's packages, so add python={ours} to "
            "the environment's dependencies"
        )


async def _run(
    cmd: list[str], progress: Callable[[str], None], reqs: list[str], tool: str = "pip"
) -> None:
    tail: list[str] = []
    async with await anyio.open_process(cmd, stderr=-2) as proc:  # stderr into stdout
        assert proc.stdout is not None
        buffer = b""
        async for chunk in proc.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                progress(line + "\n")
                tail = [*tail[-14:], line]
        if buffer:
            progress(buffer.decode(errors="replace") + "\n")
            tail.append(buffer.decode(errors="replace"))
        code = await proc.wait()
    if code != 0:
        raise EnvInstallError(
            f"installing {', '.join(reqs)} failed (exit code {code}). {tool} said:\n  "
            + "\n  ".join(t for t in tail if t.strip())
        )


async def run_setup(cmds: list[str], cwd: str | None, progress: Callable[[str], None]) -> None:
    """Run an env's ``setup_cmds`` in a shell, streaming output; the first failure stops."""
    for cmd in cmds:
        progress(f"$ {cmd}\n")
        async with await anyio.open_process(cmd, stderr=-2, cwd=cwd) as proc:
            assert proc.stdout is not None
            async for chunk in proc.stdout:
                progress(chunk.decode(errors="replace"))
            code = await proc.wait()
        if code != 0:
            raise EnvInstallError(f"setup command {cmd!r} failed with exit code {code}")
