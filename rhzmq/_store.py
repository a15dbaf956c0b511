"""Saved resources: ``resource.save()`` writes ``$RHZMQ_HOME/resources/<name>.json`` (plain JSON,
one file per resource); ``rh.cluster(name=...)``, ``rh.function(name=...)``, ``rh.env(...)``,
``rh.module(name=...)`` load them back in another process.

Every resource type (cluster, env, function, module) round-trips through
``Resource.config()`` / ``Resource.from_config()``. Configs hold no secrets: an SSH password and
an env's ``secrets`` values are never written (CURVE keys stay in their own owner-only files).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar

from .wire import config as _config

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")  # fullmatch: no trailing newline


def plain_name(name: str) -> str:
    """A name without Runhouse's prefixes: ``~/x`` (this machine's) and ``@/x`` (the current
    user's) both mean ``x`` here (the registry of issue 15 adds ``/owner/x``)."""
    if isinstance(name, str) and name[:2] in ("~/", "@/"):
        return name[2:]
    return name


def resources_dir() -> Path:
    path = _config.home() / "resources"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _path(name: str) -> Path:
    name = plain_name(name)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid resource name {name!r}: use letters, digits, '_', '.', '-' (at most 128)"
        )
    return resources_dir() / f"{name}.json"


def save_config(config: dict[str, Any]) -> Path:
    path = _path(str(config["name"]))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path


def load_config(name: str, expected: str | None = None) -> dict[str, Any]:
    """The saved config of ``name``; KeyError (with what is saved) if there is none."""
    path = _path(name)
    try:
        config: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        saved = sorted(p.stem for p in resources_dir().glob("*.json"))
        raise KeyError(
            f"no saved resource {name!r} in {resources_dir()} (saved: {', '.join(saved) or 'none'})"
            ". Save one with resource.save()."
        ) from None
    if expected is not None and config.get("type") != expected:
        raise KeyError(f"{name!r} is a saved {config.get('type')}, not a {expected}")
    return config


def delete_config(name: str) -> None:
    _path(name).unlink(missing_ok=True)


class Resource:
    """What every resource shares: ``config()``, ``from_config()``, ``save()``."""

    resource_type: ClassVar[str] = ""
    _types: ClassVar[dict[str, type[Resource]]] = {}
    name: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.resource_type and cls.resource_type not in Resource._types:
            Resource._types[cls.resource_type] = cls

    def config(self) -> dict[str, Any]:
        """Plain JSON-able data from which :meth:`from_config` rebuilds this resource."""
        raise NotImplementedError

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Resource:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        """Rebuild a resource of any type from its :meth:`config`."""
        kind = config.get("type")
        target = Resource._types.get(str(kind))
        if target is None:
            raise ValueError(
                f"unknown resource type {kind!r}: expected one of {sorted(Resource._types)}"
            )
        return target._from_config(config)

    def save(self, name: str | None = None) -> Any:
        """Write this resource's config to the local store (under ``name``); returns self."""
        if name is not None:
            self.name = plain_name(name)
        save_config(self.config())
        return self
