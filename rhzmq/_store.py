"""Saved resources: one set of verbs for every resource, on this machine or in a registry.

``resource.save()`` makes a new version of the resource's config; ``rh.function(name=...)``,
``rh.module(name=...)``, ``rh.env(name=...)``, ``rh.cluster(name)``, ``rh.run(name)`` or
``Resource.load(name)`` load the latest (or a given ``version``) back, in any process; every
resource also has ``history()``, ``rollback(version)``, ``share(...)``, ``revoke(...)``,
``shared_with()`` and ``delete_configs()``.

Where a name lives:

================  ===========================================================================
name              store
================  ===========================================================================
``/owner/x``      the registry (Den, docs/den.md): ``owner`` is a user or a group
``@/x``, ``x``    the registry as the logged-in user, when logged in; else this machine's store
``~/x``           this machine's store, always
================  ===========================================================================

Logged in means :func:`login` ran on this machine (``$RHZMQ_HOME/config.toml``, owner-only) or
``RHZMQ_DEN_URL`` and ``RHZMQ_DEN_TOKEN`` are set (they win). This machine's store keeps the same
model as the registry, so moving to one changes no code: one namespace per resource type (a
module and an env may share a name), every save a new immutable version with its author, time
and content hash, in ``$RHZMQ_HOME/resources/<type>/<name>/<version>.json``. Sharing needs a
registry.

Saving over a name: a resource loaded from (or saved to) the registry remembers its version's
ETag and saves with it, so a save over someone else's newer version fails with ``StaleWrite``
instead of silently replacing it (load again, then save). A resource this process never loaded
under that name saves as the next version.

Configs hold no secrets: an SSH password and an env's ``secrets`` values are never written
(CURVE keys stay in their own owner-only files).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .wire import config as _config
from .wire.exceptions import AccessDenied, RegistryError, ResourceNotFound

if TYPE_CHECKING:
    from ._den import DenClient

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")  # fullmatch: no trailing newline


def plain_name(name: str) -> str:
    """A name without Runhouse's ``~/`` and ``@/`` prefixes (how objects on a cluster and local
    files are named; :func:`where` tells which store a prefixed name means)."""
    if isinstance(name, str) and name[:2] in ("~/", "@/"):
        return name[2:]
    return name


def short_name(name: str) -> str:
    """A resource's own name: ``x`` of ``/owner/x``, ``~/x`` and ``@/x``."""
    if isinstance(name, str) and name.startswith("/") and name.count("/") == 2:
        return name.rsplit("/", 1)[-1]
    return plain_name(name)


def _check(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid resource name {name!r}: use letters, digits, '_', '.', '-' (at most 128), "
            "or '/owner/name' for a registry"
        )
    return name


# -- logging in --------------------------------------------------------------------------------


def config_file() -> Path:
    return _config.home() / "config.toml"


def login(url: str, token: str) -> dict[str, Any]:
    """Remember a registry and your token on this machine (``$RHZMQ_HOME/config.toml``, mode
    0600); returns who the token is. ``rhzmq login`` does the same from a shell."""
    from ._den import DenClient

    with DenClient(url, token) as den:
        me = den.whoami()  # a wrong token or URL fails here, not at the first save
    text = f"[den]\nurl = {json.dumps(url.rstrip('/'))}\ntoken = {json.dumps(token)}\n"
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)  # an older file may have had another mode
    forget_registry()
    return me


def logout() -> None:
    """Forget the registry login of this machine."""
    config_file().unlink(missing_ok=True)
    forget_registry()


def registry_login() -> tuple[str, str] | None:
    """``(url, token)`` of the registry this process uses, or None."""
    url, token = os.environ.get("RHZMQ_DEN_URL"), os.environ.get("RHZMQ_DEN_TOKEN")
    if url and token:
        return url, token
    try:
        den = tomllib.loads(config_file().read_text()).get("den") or {}
    except (OSError, tomllib.TOMLDecodeError):
        return None
    if den.get("url") and den.get("token"):
        return str(den["url"]), str(den["token"])
    return None


_clients: dict[tuple[str, str], DenClient] = {}


def forget_registry() -> None:
    """Close this process's registry connections (a new login gets new ones)."""
    while _clients:
        _clients.popitem()[1].close()


def registry() -> DenClient:
    """The registry client of this process (one per login)."""
    found = registry_login()
    if found is None:
        raise RegistryError(
            "this process is not logged in to a registry: rh.login(url, token) or "
            "`rhzmq login URL` once on this machine, or set RHZMQ_DEN_URL and RHZMQ_DEN_TOKEN"
        )
    client = _clients.get(found)
    if client is None:
        from ._den import DenClient

        client = _clients[found] = DenClient(*found)
    return client


def where(name: str) -> tuple[str, str]:
    """``("registry", "/owner/name")`` or ``("local", "name")``: where ``name`` lives."""
    if not isinstance(name, str):
        raise ValueError(f"a resource name is a string, got {name!r}")
    if name.startswith("~/"):
        return "local", _check(name[2:])
    if name.startswith("/"):
        parts = name.strip("/").split("/")
        if len(parts) != 2:
            raise ValueError(f"a registry name is '/owner/name', got {name!r}")
        return "registry", "/" + "/".join(_check(p) for p in parts)
    if registry_login() is not None:
        return "registry", "@/" + _check(plain_name(name))
    return "local", _check(plain_name(name))


# -- this machine's store ----------------------------------------------------------------------


def resources_dir() -> Path:
    """This machine's store (owner-only: saved secrets are there, and their names)."""
    path = _config.home() / "resources"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def content_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _versions(kind: str, name: str) -> list[int]:
    folder = resources_dir() / kind / name
    return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())


def _local_save(kind: str, name: str, config: dict[str, Any], **meta: Any) -> dict[str, Any]:
    folder = resources_dir() / kind / name
    folder.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"config": config}).encode()
    while True:  # O_EXCL: two processes saving at once get two versions, neither lost
        version = (_versions(kind, name) or [0])[-1] + 1
        record = {
            "version": version,
            "type": kind,
            "name": name,
            "author": getpass.getuser(),
            "created_at": time.time(),
            "content_hash": content_hash(config),
            **meta,
        }
        try:
            fd = os.open(folder / f"{version}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps({"meta": record, **json.loads(body)}, indent=2).encode())
        return record


def _local_load(
    kind: str | None, name: str, version: int | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    kinds = [kind] if kind else sorted(p.name for p in resources_dir().iterdir() if p.is_dir())
    for k in kinds:
        versions = _versions(k, name)
        if versions:
            chosen = versions[-1] if version is None else version
            if chosen not in versions:
                raise ResourceNotFound(
                    f"{k} {name!r} has no version {chosen} here (versions: "
                    f"{', '.join(map(str, versions))})"
                )
            data = json.loads((resources_dir() / k / name / f"{chosen}.json").read_text())
            return data["config"], {**data["meta"], "latest": versions[-1]}
    legacy = resources_dir() / f"{name}.json"  # saved before versions and types existed
    if legacy.exists():
        config: dict[str, Any] = json.loads(legacy.read_text())
        if kind is None or config.get("type") == kind:
            return config, {"version": 1, "latest": 1, "name": name, "type": config.get("type")}
    saved = sorted({p.name for k in kinds for p in (resources_dir() / k).glob("*") if p.is_dir()})
    what = f"{kind} " if kind else "resource "
    others = sorted(p.name for p in resources_dir().iterdir() if (p / name).is_dir())
    elsewhere = f"; {name!r} is saved as: {', '.join(others)}" if others else ""
    raise ResourceNotFound(
        f"no saved {what}{name!r} in {resources_dir()} (saved: {', '.join(saved) or 'none'}"
        f"{elsewhere}). Save one with resource.save()."
    )


# -- either store ------------------------------------------------------------------------------


def save_config(
    config: dict[str, Any],
    name: str | None = None,
    *,
    lineage: list[tuple[str, int]] | None = None,
    etag: str | None = None,
) -> dict[str, Any]:
    """Save ``config`` (its ``type`` and, unless given, ``name``) as a new version; returns the
    version's metadata (``version``, ``content_hash``, in a registry ``etag``...)."""
    kind = str(config["type"])
    store, key = where(name if name is not None else str(config["name"]))
    if store == "local":
        return _local_save(kind, key, config)
    den = registry()
    if etag is None:
        try:  # never loaded here: the save is the next version, whatever the latest is
            etag = den.load(key, raw=True)[1]["etag"]
        except ResourceNotFound:
            etag = None
    return den.save(key, kind, config, lineage, etag)


def load_config(
    name: str, expected: str | None = None, version: int | None = None
) -> dict[str, Any]:
    """The saved config of ``name`` (a ``ResourceNotFound``, also a KeyError, saying what is
    saved if there is none)."""
    return load(name, expected, version)[0]


def load(
    name: str, expected: str | None = None, version: int | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(config, meta)`` of ``name``'s latest version (or ``version``)."""
    store, key = where(name)
    if store == "local":
        config, meta = _local_load(expected, key, version)
    else:
        den = registry()
        config, meta = den.load(key, version)
        config = {**config, "type": meta.get("type", config.get("type"))}
        if config["type"] in ("function", "module"):
            _check_sources(den, meta)
    if expected is not None and config.get("type") != expected:
        raise ResourceNotFound(f"{name!r} is a saved {config.get('type')}, not a {expected}")
    meta = {**meta, "store": store, "key": key}
    return config, meta


def list_saved(kind: str | None = None, shared: bool = False) -> list[dict[str, Any]]:
    """Saved resources: the registry's you may read when logged in, else this machine's."""
    if registry_login() is not None:
        return registry().list(type=kind, shared=shared)
    out = []
    for folder in sorted(p for p in resources_dir().iterdir() if p.is_dir()):
        if kind is not None and folder.name != kind:
            continue
        for item in sorted(p for p in folder.iterdir() if p.is_dir()):
            versions = _versions(folder.name, item.name)
            if versions:
                out.append({"name": item.name, "type": folder.name, "version": versions[-1]})
    return out


def _check_sources(den: DenClient, meta: dict[str, Any]) -> None:
    """A function or module is only usable with the cluster (and env) it was saved with: say
    which one the loader may not read, rather than fail later at the first call."""
    for source in meta.get("lineage") or []:
        try:
            den.load(str(source["name"]), raw=True)
        except (ResourceNotFound, AccessDenied):
            raise AccessDenied(
                f"{meta['name']} runs on {source['name']} (version {source['version']}), which "
                f"you may not read: ask {meta.get('owner') or 'its owner'} to share it with you"
            ) from None


def delete_config(name: str, kind: str | None = None) -> None:
    """Delete every version of a saved resource."""
    store, key = where(name)
    if store == "registry":
        registry().delete(key)
        return
    import shutil

    for k in [kind] if kind else [p.name for p in resources_dir().iterdir() if p.is_dir()]:
        shutil.rmtree(resources_dir() / k / key, ignore_errors=True)
    (resources_dir() / f"{key}.json").unlink(missing_ok=True)


def history(name: str, kind: str | None = None) -> list[dict[str, Any]]:
    """Every version's metadata, newest first."""
    store, key = where(name)
    if store == "registry":
        return registry().history(key)
    config, meta = _local_load(kind, key)
    k = str(meta.get("type") or config.get("type"))
    return [
        json.loads((resources_dir() / k / key / f"{v}.json").read_text())["meta"]
        for v in reversed(_versions(k, key))
    ]


def rollback(name: str, version: int, kind: str | None = None) -> dict[str, Any]:
    """A new version equal to ``version`` (everything in between stays in the history)."""
    store, key = where(name)
    if store == "registry":
        return registry().rollback(key, version)
    config, _ = _local_load(kind, key, version)
    return _local_save(str(config["type"]), key, config, rollback_of=version)


def _registry_only(name: str, what: str) -> tuple[DenClient, str]:
    store, key = where(name)
    if store != "registry":
        raise RegistryError(
            f"{what} needs a registry: {name!r} is saved on this machine only. Log in "
            "(rh.login(url, token)) and save it there, or name it '/owner/name'"
        )
    return registry(), key


def share(name: str, principals: list[str], access_level: str = "read") -> list[dict[str, Any]]:
    den, key = _registry_only(name, "sharing")
    return den.share(key, principals, access_level)


def revoke(name: str, principals: list[str]) -> None:
    den, key = _registry_only(name, "revoking a share")
    den.revoke(key, principals)


def shared_with(name: str) -> list[dict[str, Any]]:
    den, key = _registry_only(name, "shares")
    return den.shared_with(key)


class Resource:
    """What every resource shares: ``config()``/``from_config()`` and the verbs of the module
    docstring."""

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

    @classmethod
    def load(cls, name: str, version: int | None = None) -> Any:
        """The resource saved under ``name`` (the latest version, or ``version``)."""
        config, meta = load(name, cls.resource_type or None, version)
        found = Resource.from_config(config)
        vars(found)["_rh_saved"] = meta  # later saves of this object carry its ETag
        return found

    def _saved_as(self, name: str | None) -> str:
        return (
            name if name is not None else self.__dict__.get("_rh_saved", {}).get("key") or self.name
        )

    def save(self, name: str | None = None) -> Any:
        """Save a new version of this resource (under ``name``: see the module docstring for
        where a name lives); returns self."""
        if name is not None:
            self.name = short_name(name)
        target = self._saved_as(name)
        saved = self.__dict__.get("_rh_saved") or {}
        etag = saved.get("etag") if saved.get("key") == where(target)[1] else None
        meta = save_config(self.config(), target, lineage=self._lineage(), etag=etag)
        store, key = where(target)
        vars(self)["_rh_saved"] = {**meta, "key": key, "store": store}
        return self

    def _lineage(self) -> list[tuple[str, int]]:
        """The saved versions this one was made from (its cluster's, its env's)."""
        out = []
        for attr in ("cluster", "_env"):
            part = self.__dict__.get(attr)
            saved = getattr(part, "__dict__", {}).get("_rh_saved") if part is not None else None
            if saved and saved.get("store") == "registry" and saved.get("name"):
                out.append((str(saved["name"]), int(saved["version"])))
        return out

    def history(self) -> list[dict[str, Any]]:
        """Every saved version's metadata (author, time, content hash), newest first."""
        return history(self._saved_as(None), self.resource_type or None)

    def rollback(self, version: int) -> Any:
        """Save a new version equal to ``version``, and return it loaded."""
        target = self._saved_as(None)
        rollback(target, version, self.resource_type or None)
        return type(self).load(target)

    def share(self, users: str | list[str], access_level: str = "read") -> list[dict[str, Any]]:
        """Share the saved resource (registry) with users (``"bob"``) or groups (``"@ml"``),
        to ``read`` or ``write``; returns every share it has."""
        return share(
            self._saved_as(None), [users] if isinstance(users, str) else users, access_level
        )

    def revoke(self, users: str | list[str]) -> None:
        """Take shares back; in effect from the next request."""
        revoke(self._saved_as(None), [users] if isinstance(users, str) else users)

    def shared_with(self) -> list[dict[str, Any]]:
        return shared_with(self._saved_as(None))

    def delete_configs(self) -> None:
        """Delete every saved version of this resource (not the resource itself: an object on
        a cluster stays there)."""
        delete_config(self._saved_as(None), self.resource_type or None)
