"""Functions the data tests send to clusters (a module of its own: the worker imports it)."""

from __future__ import annotations

import os

import rhzmq as rh


def make_files(path: str, count: int, size: int) -> int:
    """Runs on the cluster: data that exists only there."""
    os.makedirs(path, exist_ok=True)
    for i in range(count):
        with open(os.path.join(path, f"part-{i:02d}.bin"), "wb") as f:
            f.write(os.urandom(size))
    return count


def describe(folder: rh.Folder) -> tuple[bool, str, list[str]]:
    """Runs on the cluster: what a function there receives for a folder on that cluster."""
    return folder.system is None, folder.path, folder.ls(recursive=True)
