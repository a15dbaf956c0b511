"""A client of Den, the resource registry (``rhzmq den serve``; docs/den.md).

::

    den = DenClient("http://127.0.0.1:32400", token)   # or RHZMQ_DEN_URL / RHZMQ_DEN_TOKEN
    meta = den.save("/alice/train-env", "env", {"reqs": ["numpy"]})
    config, meta = den.load("/alice/train-env")
    den.save("/alice/train-env", "env", {**config, "reqs": ["numpy", "torch"]}, etag=meta["etag"])
    den.share("/alice/train-env", ["bob", "@ml"], access_level="read")

Names are ``/owner/name``; ``name`` or ``@/name`` alone mean the token's own user. Every save
makes a new version; saving over an existing resource needs the ``etag`` of the version you
loaded, so two writers never silently overwrite each other (the second gets
:class:`~rhzmq.wire.exceptions.StaleWrite` and loads again). HTTP errors become the
:class:`~rhzmq.wire.exceptions.RegistryError` family, 403 an ``AccessDenied`` that is also a
``PermissionDenied``.

The token travels only in the ``Authorization`` header: never in a URL, a ``repr``, an
exception or a log line. This module talks HTTP only and imports no server package.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from .wire.exceptions import (
    AccessDenied,
    Conflict,
    InvalidToken,
    RegistryError,
    RegistryUnavailable,
    ResourceNotFound,
    StaleWrite,
)
from .wire.settings import DEFAULT_DEN_PORT

#: The exception each HTTP status becomes (others: RegistryError).
ERRORS: dict[int, type[RegistryError]] = {
    401: InvalidToken,
    403: AccessDenied,
    404: ResourceNotFound,
    409: Conflict,
    412: StaleWrite,
    428: StaleWrite,
    503: RegistryUnavailable,
}


def _error(response: httpx.Response) -> RegistryError:
    try:
        body = response.json()["error"]
        type_, message = str(body["type"]), str(body["message"])
        extra = body
    except (ValueError, KeyError, TypeError):
        type_, message, extra = "", response.text[:500] or response.reason_phrase, {}
    cls = ERRORS.get(response.status_code, RegistryError)
    text = f"{message} (HTTP {response.status_code})"
    if cls is StaleWrite:
        return StaleWrite(text, response.status_code, type_, str(extra.get("etag", "")))
    return cls(text, response.status_code, type_)


def _q(segment: str) -> str:
    """One path segment, escaped (the registry refuses bad names; they must still arrive whole)."""
    return quote(str(segment), safe="@")


class DenClient:
    """One user's connection to a registry (a token is a user): thread-safe, reusable, and a
    context manager that closes its connections.

    ``url`` defaults to ``$RHZMQ_DEN_URL`` (else ``http://127.0.0.1:32400``) and ``token`` to
    ``$RHZMQ_DEN_TOKEN``.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (
            url or os.environ.get("RHZMQ_DEN_URL") or f"http://127.0.0.1:{DEFAULT_DEN_PORT}"
        ).rstrip("/")
        token = token or os.environ.get("RHZMQ_DEN_TOKEN")
        if not token:
            raise InvalidToken(
                "DenClient needs a token: pass token=, or set RHZMQ_DEN_TOKEN (an admin makes "
                "your first one; `rhzmq den admin create-token USER` on the registry's host)"
            )
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )
        self._me: str | None = None

    def __repr__(self) -> str:
        return f"DenClient({self.url!r})"  # never the token

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DenClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=json, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise RegistryUnavailable(
                f"no registry answers at {self.url} ({type(exc).__name__}): is `rhzmq den serve` "
                "running there?"
            ) from None
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        query.setdefault("limit", 200)
        while True:
            page = self._request("GET", path, params=query).json()
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            query["cursor"] = page["next_cursor"]

    def _path(self, name: str) -> str:
        """``/owner/name`` (or ``owner/name``, ``@/name``, ``name``) → ``/resources/owner/name``."""
        if not isinstance(name, str) or not name.strip("/"):
            raise ValueError(f"a registry name is '/owner/name', got {name!r}")
        parts = name.strip("/").split("/")
        if (parts[0] == "@" and len(parts) == 2) or len(parts) == 1:
            me = self._me or self.whoami()["name"]
            parts = [me, parts[-1]]
        if len(parts) != 2 or not all(parts) or any(p in (".", "..") for p in parts):
            raise ValueError(f"a registry name is '/owner/name', got {name!r}")
        return "/resources/" + "/".join(_q(p) for p in parts)

    # -- who ----------------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """The token's user: ``{"name", "admin", "groups": [{"name", "role"}], ...}``."""
        me: dict[str, Any] = self._request("GET", "/users/me").json()
        self._me = me["name"]
        return me

    def create_user(self, name: str, admin: bool = False) -> dict[str, Any]:
        """Make a user (server admins only); the answer's ``token`` is their first token, shown
        this once: hand it to them."""
        result: dict[str, Any] = self._request(
            "POST", "/users", json={"name": name, "admin": admin}
        ).json()
        return result

    def create_token(self, name: str = "token") -> dict[str, Any]:
        """A new token for yourself: ``{"id", "name", "token", ...}`` (``token`` shown once)."""
        result: dict[str, Any] = self._request("POST", "/tokens", json={"name": name}).json()
        return result

    def tokens(self) -> list[dict[str, Any]]:
        """Your tokens: id, name, created, last used, revoked (never the tokens themselves)."""
        return list(self._pages("/tokens"))

    def revoke_token(self, token_id: int) -> None:
        """Revoke one of your tokens: the next request with it is refused."""
        self._request("DELETE", f"/tokens/{int(token_id)}")

    # -- groups -------------------------------------------------------------------------------

    def create_group(
        self, name: str, parent: str | None = None, defaults: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Make a group (you become its admin); ``parent``: a subgroup of a group you admin.
        ``defaults`` (e.g. ``{"provider": "aws", "autostop_mins": 30}``) fill in the keys its
        resources' configs lack."""
        body = {"name": name, "parent": parent, "defaults": defaults or {}}
        result: dict[str, Any] = self._request("POST", "/groups", json=body).json()
        return result

    def group(self, name: str) -> dict[str, Any]:
        """A group you belong to: members, subgroups, defaults, your role."""
        result: dict[str, Any] = self._request("GET", f"/groups/{_q(name)}").json()
        return result

    def set_group_defaults(self, name: str, defaults: dict[str, Any]) -> dict[str, Any]:
        """Replace a group's own defaults (its admins)."""
        result: dict[str, Any] = self._request(
            "PATCH", f"/groups/{_q(name)}", json={"defaults": defaults}
        ).json()
        return result

    def add_member(self, group: str, user: str, role: str = "member") -> dict[str, Any]:
        """Add ``user`` to ``group`` as ``member`` or ``admin`` (or change their role)."""
        result: dict[str, Any] = self._request(
            "PUT", f"/groups/{_q(group)}/members/{_q(user)}", json={"role": role}
        ).json()
        return result

    def remove_member(self, group: str, user: str) -> None:
        """Remove ``user`` from ``group`` (its admins), or leave it (yourself)."""
        self._request("DELETE", f"/groups/{_q(group)}/members/{_q(user)}")

    # -- resources ----------------------------------------------------------------------------

    def save(
        self,
        name: str,
        type: str,
        config: dict[str, Any],
        lineage: Sequence[tuple[str, int]] | Sequence[dict[str, Any]] | None = None,
        etag: str | None = None,
        *,
        create_only: bool = False,
    ) -> dict[str, Any]:
        """Save ``config`` as the next version of ``name``; returns its metadata (``version``,
        ``etag``, ``content_hash``...).

        A new name needs no ``etag``; an existing one needs the ``etag`` of the version you
        changed (:class:`StaleWrite` otherwise, with the latest ETag). ``create_only`` refuses
        to touch an existing resource. ``lineage`` names what this version was made from:
        ``[("/alice/cluster", 3), ("/alice/env", 1)]``.
        """
        body: dict[str, Any] = {"type": type, "config": config}
        if lineage:
            body["lineage"] = [
                item if isinstance(item, dict) else {"name": item[0], "version": item[1]}
                for item in lineage
            ]
        headers = {}
        if etag is not None:
            headers["If-Match"] = etag
        if create_only:
            headers["If-None-Match"] = "*"
        meta: dict[str, Any] = self._request(
            "PUT", self._path(name), json=body, headers=headers
        ).json()
        return meta

    def load(
        self, name: str, version: int | None = None, *, raw: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(config, meta)`` of the latest version, or of ``version``.

        ``config`` has the owner group's defaults filled in for the keys it lacks
        (``meta["defaults"]`` lists them); with ``raw``, it is exactly as saved. ``meta`` holds
        ``etag`` (pass it to :meth:`save`), ``version``, ``latest``, ``author``,
        ``content_hash``, ``lineage``, ``access`` and the rest of the registry's answer.
        """
        params = {"version": version} if version is not None else None
        meta: dict[str, Any] = self._request("GET", self._path(name), params=params).json()
        config = meta["config"] if raw else meta["effective_config"]
        return config, meta

    def history(self, name: str) -> list[dict[str, Any]]:
        """Every version's metadata, newest first (``version``, ``author``, ``created_at``,
        ``content_hash``, ``rollback_of``); configs by :meth:`load` with ``version``."""
        return list(self._pages(self._path(name) + "/history"))

    def rollback(self, name: str, version: int, etag: str | None = None) -> dict[str, Any]:
        """Make a new version equal to ``version`` (history keeps everything in between).
        With ``etag``, only if the latest version is still that one."""
        headers = {"If-Match": etag} if etag else None
        meta: dict[str, Any] = self._request(
            "POST", self._path(name) + "/rollback", json={"version": version}, headers=headers
        ).json()
        return meta

    def delete(self, name: str, etag: str | None = None) -> None:
        """Delete ``name`` with every version and share (its owner, or a group admin)."""
        self._request("DELETE", self._path(name), headers={"If-Match": etag} if etag else None)

    def share(
        self, name: str, principals: Sequence[str], access_level: str = "read"
    ) -> list[dict[str, Any]]:
        """Share ``name`` with users (``"bob"``) and groups (``"@ml"``), to ``read`` or
        ``write``; returns every share it now has."""
        body = {"principals": list(principals), "access_level": access_level}
        shares: list[dict[str, Any]] = self._request(
            "POST", self._path(name) + "/shares", json=body
        ).json()["shares"]
        return shares

    def revoke(self, name: str, principals: str | Sequence[str]) -> None:
        """Take shares back (``"bob"``, ``"@ml"``); refused from the next request on."""
        for principal in [principals] if isinstance(principals, str) else principals:
            self._request("DELETE", f"{self._path(name)}/shares/{_q(principal)}")

    def shared_with(self, name: str) -> list[dict[str, Any]]:
        """``[{"principal": "bob" | "@group", "access_level", "granted_by", "created_at"}]``."""
        shares: list[dict[str, Any]] = self._request("GET", self._path(name) + "/shares").json()[
            "shares"
        ]
        return shares

    def audit(self, name: str) -> list[dict[str, Any]]:
        """Who read and changed ``name`` and when, newest first (its owner or group admins)."""
        return list(self._pages(self._path(name) + "/audit"))

    def list(
        self,
        owner: str | None = None,
        type: str | None = None,
        q: str | None = None,
        shared: bool = False,
    ) -> list[dict[str, Any]]:
        """Resources you may read: ``name``, ``type``, ``version``, ``etag``, ``access``...;
        ``shared`` keeps only those others shared with you."""
        params = {"owner": owner, "type": type, "q": q, "shared": "true" if shared else None}
        return list(self._pages("/resources", params))


__all__ = ["DenClient"]
