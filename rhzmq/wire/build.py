"""The exact code a client runs, as a build id and as a wheel to install on remote hosts.

A cluster must run the client's rhzmq, including unreleased edits, so "version 0.1.0" is not
precise enough. The *build id* is a hash of every source file of the four packages (``rhzmq``,
``broker``, ``worker``, ``gateway``); the wheel made from those files is versioned
``0.1.0+b<build id>`` and carries the id in ``rhzmq/_build.txt``, so an installed copy knows its
id without hashing itself.

The wheel is zipped here from the files on disk rather than built by a build backend: it works
the same for editable and regular installs, needs no network or build isolation, and takes
milliseconds.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.metadata
import importlib.util
import zipfile
from pathlib import Path

from .version import __version__

PACKAGES = ("rhzmq", "broker", "worker", "gateway", "rhzmqd")
BUILD_FILE = "_build.txt"


def _package_files() -> list[tuple[str, Path]]:
    """(path inside the wheel, file on disk) for every source file, in a stable order."""
    files: list[tuple[str, Path]] = []
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"package {package!r} not found: is rhzmq installed?")
        root = Path(next(iter(spec.submodule_search_locations)))
        files.extend(
            (f"{package}/{path.relative_to(root).as_posix()}", path)
            for path in sorted(root.rglob("*"))
            if path.is_file()
            and path.suffix in (".py", ".typed")
            and "__pycache__" not in path.parts
        )
    return files


@functools.cache
def build_id() -> str:
    """This installation's build id (see the module docstring)."""
    recorded = Path(__file__).with_name(BUILD_FILE)
    if recorded.exists():
        return recorded.read_text().strip()
    digest = hashlib.sha256()
    for name, path in _package_files():
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def wheel_version() -> str:
    return f"{__version__}+b{build_id()}"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _requirements() -> list[str]:
    """The install requirements of the running rhzmq, without its extras."""
    try:
        reqs = importlib.metadata.requires("rhzmq") or []
    except importlib.metadata.PackageNotFoundError:
        reqs = []
    return [r for r in reqs if "extra ==" not in r]


def build_wheel(directory: Path) -> Path:
    """Write the wheel of this exact build into ``directory`` (once per build); returns its path."""
    version = wheel_version()
    path = directory / f"rhzmq-{version}-py3-none-any.whl"
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    dist_info = f"rhzmq-{version}.dist-info"
    contents: list[tuple[str, bytes]] = [
        (name, file.read_bytes()) for name, file in _package_files()
    ]
    contents.append((f"rhzmq/{BUILD_FILE}", (build_id() + "\n").encode()))
    metadata = [
        "Metadata-Version: 2.1",
        "Name: rhzmq",
        f"Version: {version}",
        "Requires-Python: >=3.11",
        *(f"Requires-Dist: {r}" for r in _requirements()),
    ]
    contents += [
        (f"{dist_info}/METADATA", ("\n".join(metadata) + "\n").encode()),
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: rhzmq\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        ),
        (f"{dist_info}/entry_points.txt", b"[console_scripts]\nrhzmq = rhzmq.cli:main\n"),
        (f"{dist_info}/top_level.txt", ("\n".join(PACKAGES) + "\n").encode()),
    ]
    record = [f"{name},{_record_hash(data)},{len(data)}" for name, data in contents]
    record.append(f"{dist_info}/RECORD,,")
    contents.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in contents:
            wheel.writestr(name, data)
    tmp.replace(path)
    return path
