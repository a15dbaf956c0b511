"""The registry's rules: who may do what, and every query that enforces it.

Each public method is one transaction, run in a worker thread by the app (``den._app``), and
takes the :class:`Actor` that :meth:`Store.authenticate` made from the request's token. Nothing
here knows about HTTP: refusals are ``den._errors`` exceptions, results plain JSON-ready dicts.

Access levels, lowest first: ``none`` < ``read`` < ``write`` < ``manage``.

=========================================  ===============================================
who                                        gets, on a resource ``/owner/name``
=========================================  ===============================================
the owner (a user)                         manage
a group's admin (owner: the group)         manage — directly, or as admin of an ancestor group
a group's member (owner: the group)        write — directly, or as a member of a subgroup
a user or group the resource is shared     the share's level: read or write (a share to a
with                                       group reaches everyone who counts as its member)
anyone else                                none: the resource is reported as not found
=========================================  ===============================================

``read`` loads, lists and reads history and shares; ``write`` also saves new versions and
rolls back; ``manage`` also deletes, shares and revokes, and reads the audit log. Nested groups
count **upwards** for membership: a member of ``ml`` (child of ``acme``) is a member of
``acme`` and writes ``/acme/...``, but a member of ``acme`` is not a member of ``ml``.
Administration counts **downwards**: an admin of ``acme`` administers ``ml`` and its
resources. Server admins (``is_admin``) create users; they get no access to resources by that.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ._auth import new_token, same_hash, token_hash
from ._crypto import Sealer
from ._db import Database
from ._errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    Unauthorized,
)
from ._models import (
    ADMIN,
    GROUP,
    MEMBER,
    READ,
    USER,
    WRITE,
    Audit,
    Lineage,
    Membership,
    Principal,
    Resource,
    Share,
    Token,
    Version,
    canonical_json,
    now,
)

log = logging.getLogger("den.store")

#: What a resource can be (one per ``/owner/name``, for life).
TYPES: Final = (
    "cluster",
    "env",
    "function",
    "module",
    "secret",
    "folder",
    "table",
    "blob",
    "file",
    "run",
)

NONE, READ_LEVEL, WRITE_LEVEL, MANAGE = 0, 1, 2, 3
LEVEL_NAMES: Final = {NONE: "none", READ_LEVEL: READ, WRITE_LEVEL: WRITE, MANAGE: "manage"}
SHARE_LEVELS: Final = {READ: READ_LEVEL, WRITE: WRITE_LEVEL}

PRINCIPAL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
RESOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")  # as rhzmq's local store
TOKEN_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")

#: Largest id or version number a request may name: the columns are 32-bit integers, and a
#: larger number reached PostgreSQL as an error (SQLite did not mind).
MAX_ID = 2**31 - 1
#: Pagination: ``limit`` defaults to this and is capped at MAX_LIMIT.
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_LINEAGE = 64
#: A token's ``last_used_at`` is written at most this often (each write is a transaction).
LAST_USED_EVERY = timedelta(seconds=5)


@dataclass(frozen=True)
class Actor:
    """Who a request is from: a user, found by one of their tokens."""

    id: int
    name: str
    is_admin: bool
    token_id: int | None = None


@dataclass(frozen=True)
class Page:
    """``limit`` and an opaque ``cursor`` (the last row's key) from a query string."""

    limit: int = DEFAULT_LIMIT
    cursor: int | None = None

    @classmethod
    def parse(cls, limit: str | None, cursor: str | None) -> Page:
        n = DEFAULT_LIMIT
        if limit is not None:
            if not limit.isascii() or not limit.isdigit() or int(limit) < 1:
                raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
            n = min(int(limit), MAX_LIMIT)
        after = None
        if cursor:
            if not whole(cursor):
                raise BadRequest("cursor must be the next_cursor of a previous page")
            after = int(cursor)
        return cls(n, after)


# -- names and bodies ------------------------------------------------------------------------


def whole(raw: str, least: int = 0) -> bool:
    """Whether ``raw`` spells a whole number from ``least`` to :data:`MAX_ID`."""
    return raw.isascii() and raw.isdigit() and len(raw) <= 10 and least <= int(raw) <= MAX_ID


def check_principal_name(name: str, what: str = "user or group") -> str:
    if not isinstance(name, str) or not PRINCIPAL_NAME.fullmatch(name):
        raise BadRequest(
            f"invalid {what} name {name!r}: lowercase letters, digits, '_' and '-', starting "
            "with a letter or digit, at most 64"
        )
    return name


def check_resource_name(name: str) -> str:
    if not isinstance(name, str) or not RESOURCE_NAME.fullmatch(name):
        raise BadRequest(
            f"invalid resource name {name!r}: letters, digits, '_', '.' and '-', starting with "
            "a letter or digit, at most 128"
        )
    return name


def split_path(path: str) -> tuple[str, str]:
    """``"/owner/name"`` → ``("owner", "name")``."""
    if not isinstance(path, str):
        raise Invalid(f"a resource is named '/owner/name', got {path!r}")
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != "":
        raise Invalid(f"a resource is named '/owner/name', got {path!r}")
    try:
        return check_principal_name(parts[1], "owner"), check_resource_name(parts[2])
    except BadRequest as exc:
        raise Invalid(exc.message) from None


def content_hash(config: Any) -> str:
    """SHA-256 of the config's canonical JSON (:func:`~den._models.canonical_json`)."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def cluster_summary(config: Any) -> dict[str, Any]:
    """What a list of clusters shows of each (a cluster's config holds no secret): its kind,
    status, nodes, machines and, for on-demand ones, when it was launched and its hourly price
    (the UI computes uptime and cost so far from them)."""
    if not isinstance(config, dict):
        return {}
    found = config.get("allocation")
    alloc: dict[str, Any] = found if isinstance(found, dict) else {}
    hosts = config.get("host")
    nodes = config.get("num_nodes") or (len(hosts) if isinstance(hosts, list) else 1)
    kind = config.get("kind") or ("ssh" if hosts else "local")
    out = {
        "kind": kind,
        "status": alloc.get("status") or ("saved" if kind != "local" else "this machine"),
        "nodes": nodes,
        "instance_type": config.get("instance_type"),
        "size": alloc.get("size"),
        "provider": config.get("provider"),
        "region": config.get("region"),
        "launched_at": alloc.get("launched_at"),
        "ended_at": alloc.get("ended_at"),
        "hourly_price": alloc.get("hourly_price"),
        "gateway_url": config.get("gateway_url"),
        "gateway_port": config.get("gateway_port"),
    }
    return {k: v for k, v in out.items() if v is not None}


def etag(resource_id: int, number: int, digest: str) -> str:
    """The ETag of one version: changes with every save, and differs between a deleted resource
    and a new one of the same name (resource ids are never reused)."""
    return f'"{resource_id}.{number}.{digest[:16]}"'


def matches(header: str, current: str) -> bool:
    """Whether an ``If-Match`` value lists ``current`` (weak ``W/`` prefixes compare equal)."""
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return current in tags


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


def _levels(direct: Iterable[tuple[int, str]], parents: dict[int, int | None]) -> dict[int, str]:
    """A user's role in every group, from their direct memberships and the group tree.

    Membership counts upwards (a subgroup's member is a member of every ancestor), admin rights
    downwards (an admin of a group administers every descendant).
    """
    children: dict[int, list[int]] = {}
    for group, parent in parents.items():
        if parent is not None:
            children.setdefault(parent, []).append(group)
    roles: dict[int, str] = {}
    for group, role in direct:
        seen: set[int] = set()
        up: int | None = group
        while up is not None and up not in seen:
            seen.add(up)
            roles.setdefault(up, MEMBER)
            up = parents.get(up)
        if role == ADMIN:
            stack = [group]
            while stack:
                g = stack.pop()
                if roles.get(g) == ADMIN and g != group:
                    continue
                roles[g] = ADMIN
                stack.extend(children.get(g, ()))
    return roles


class Store:
    """The registry's operations on one :class:`~den._db.Database`."""

    def __init__(self, db: Database, sealer: Sealer | None = None) -> None:
        self.db = db
        self.sealer = sealer or Sealer.from_file()  # secrets are sealed at rest (den._crypto)

    # -- context ------------------------------------------------------------------------------

    def _roles(self, s: Session, user_id: int) -> dict[int, str]:
        direct = s.execute(
            select(Membership.group_id, Membership.role).where(Membership.user_id == user_id)
        ).all()
        if not direct:
            return {}
        parents = dict(
            s.execute(select(Principal.id, Principal.parent_id).where(Principal.kind == GROUP))
            .tuples()
            .all()
        )
        return _levels(((g, r) for g, r in direct), parents)

    def _principal(self, s: Session, name: str, kind: str | None = None) -> Principal:
        p = s.scalar(select(Principal).where(Principal.name == name))
        if p is None or (kind is not None and p.kind != kind):
            what = {USER: "user", GROUP: "group"}.get(kind or "", "user or group")
            raise NotFound(f"no {what} named {name!r}")
        return p

    def _access(self, s: Session, actor: Actor, roles: dict[int, str], r: Resource) -> int:
        level = NONE
        if r.owner_id == actor.id:
            return MANAGE
        role = roles.get(r.owner_id)
        if role == ADMIN:
            return MANAGE
        if role == MEMBER:
            level = WRITE_LEVEL
        shares = s.scalars(
            select(Share.access).where(
                Share.resource_id == r.id, Share.principal_id.in_([actor.id, *roles])
            )
        ).all()
        for access in shares:
            level = max(level, SHARE_LEVELS.get(access, NONE))
        return level

    def _resource(
        self, s: Session, actor: Actor, owner: str, name: str, need: int
    ) -> tuple[Resource, Principal, int, dict[int, str]]:
        """The resource and the actor's level on it; NotFound if they may not even read it,
        Forbidden if they may read but not do what ``need`` says."""
        check_principal_name(owner, "owner")
        check_resource_name(name)
        missing = NotFound(f"no resource /{owner}/{name} (or none you may read)")
        p = s.scalar(select(Principal).where(Principal.name == owner))
        if p is None:
            raise missing
        r = s.scalar(select(Resource).where(Resource.owner_id == p.id, Resource.name == name))
        if r is None:
            raise missing
        roles = self._roles(s, actor.id)
        level = self._access(s, actor, roles, r)
        if level < READ_LEVEL:
            raise missing
        if level < need:
            verb = {WRITE_LEVEL: "save to", MANAGE: "delete, share or revoke"}[need]
            raise Forbidden(
                f"{actor.name} has {LEVEL_NAMES[level]} access to /{owner}/{name} and may not "
                f"{verb} it (that needs {LEVEL_NAMES[need]}; the owner can share it with write)"
            )
        return r, p, level, roles

    def _audit(
        self,
        s: Session,
        actor: Actor,
        action: str,
        target: str,
        version: int | None = None,
        detail: Any = None,
    ) -> None:
        s.add(Audit(actor=actor.name, action=action, target=target, version=version, detail=detail))

    def _defaults(self, s: Session, group: Principal) -> dict[str, Any]:
        """A group's effective defaults: its ancestors', then its own (the nearest wins)."""
        chain = []
        seen: set[int] = set()
        g: Principal | None = group
        while g is not None and g.id not in seen:
            seen.add(g.id)
            chain.append(g)
            g = s.get(Principal, g.parent_id) if g.parent_id is not None else None
        merged: dict[str, Any] = {}
        for g in reversed(chain):
            merged.update(g.defaults or {})
        return merged

    # -- users and tokens ---------------------------------------------------------------------

    def authenticate(self, token: str) -> Actor:
        """The user a token belongs to; Unauthorized if it is unknown or revoked."""
        digest = token_hash(token)
        with self.db.session() as s, s.begin():
            row = s.execute(
                select(Token, Principal)
                .join(Principal, Principal.id == Token.user_id)
                .where(Token.hash == digest)
            ).first()
            if row is None or not same_hash(row[0].hash, digest):
                raise Unauthorized("the bearer token is not valid")
            tok, user = row
            if tok.revoked_at is not None:
                raise Unauthorized("the bearer token was revoked; make a new one")
            t = now()
            if tok.last_used_at is None or t - tok.last_used_at > LAST_USED_EVERY:
                tok.last_used_at = t
            return Actor(user.id, user.name, user.is_admin, tok.id)

    def _add_token(self, s: Session, user: Principal, name: str) -> tuple[Token, str]:
        if not isinstance(name, str) or not TOKEN_NAME.fullmatch(name):
            raise Invalid("a token's name is 1 to 64 printable characters")
        token = new_token()
        row = Token(user_id=user.id, name=name, hash=token_hash(token))
        s.add(row)
        s.flush()
        log.info("token %d (%r) made for %s", row.id, name, user.name)
        return row, token

    def _add_user(self, s: Session, name: str, admin: bool) -> Principal:
        check_principal_name(name, "user")
        if s.scalar(select(Principal.id).where(Principal.name == name)) is not None:
            raise Conflict(f"the name {name!r} is taken (users and groups share one namespace)")
        user = Principal(name=name, kind=USER, is_admin=admin)
        s.add(user)
        try:
            s.flush()
        except IntegrityError:
            raise Conflict(f"the name {name!r} is taken") from None
        log.info("user %s created%s", name, " (admin)" if admin else "")
        return user

    def bootstrap(self, name: str, admin: bool = True, first: bool = False) -> str:
        """Make a user (``python -m den admin``): returns their first token. With ``first``,
        only while there are no users yet."""
        with self.db.session() as s, s.begin():
            if first and s.scalar(select(func.count()).select_from(Principal)):
                raise Conflict("the registry has users already: use `create-user`")
            user = self._add_user(s, name, admin)
            return self._add_token(s, user, "initial")[1]

    def token_for(self, user: str, name: str) -> str:
        """A new token for ``user`` (``python -m den admin create-token``)."""
        with self.db.session() as s, s.begin():
            return self._add_token(s, self._principal(s, user, USER), name)[1]

    def create_user(self, actor: Actor, name: str, admin: bool) -> dict[str, Any]:
        if not actor.is_admin:
            raise Forbidden(f"only a server admin creates users, and {actor.name} is not one")
        with self.db.session() as s, s.begin():
            user = self._add_user(s, name, admin)
            tok, token = self._add_token(s, user, "initial")
            return {"user": self._user(user), "token": token, "token_id": tok.id}

    @staticmethod
    def _user(user: Principal) -> dict[str, Any]:
        return {"name": user.name, "admin": user.is_admin, "created_at": iso(user.created_at)}

    def me(self, actor: Actor) -> dict[str, Any]:
        with self.db.session() as s:
            user = s.get(Principal, actor.id)
            if user is None:
                raise Unauthorized("the token's user is gone")
            roles = self._roles(s, actor.id)
            names = dict(
                s.execute(select(Principal.id, Principal.name).where(Principal.id.in_(roles)))
                .tuples()
                .all()
            )
            groups = sorted(({"name": names[g], "role": r} for g, r in roles.items()), key=str)
            return {**self._user(user), "groups": groups, "token_id": actor.token_id}

    def create_token(self, actor: Actor, name: str) -> dict[str, Any]:
        with self.db.session() as s, s.begin():
            user = s.get(Principal, actor.id)
            assert user is not None
            tok, token = self._add_token(s, user, name)
            return {**self._token(tok), "token": token}

    @staticmethod
    def _token(tok: Token) -> dict[str, Any]:
        return {
            "id": tok.id,
            "name": tok.name,
            "created_at": iso(tok.created_at),
            "last_used_at": iso(tok.last_used_at),
            "revoked_at": iso(tok.revoked_at),
        }

    def list_tokens(self, actor: Actor, page: Page, user: str | None = None) -> dict[str, Any]:
        """The actor's tokens; with ``user``, that user's (server admins only). Never a token
        or its hash: names, times, revocation."""
        with self.db.session() as s:
            owner_id = actor.id
            if user is not None and user != actor.name:
                if not actor.is_admin:
                    raise Forbidden("only a server admin lists another user's tokens")
                found = s.scalar(
                    select(Principal).where(Principal.name == user, Principal.kind == USER)
                )
                if found is None:
                    raise NotFound(f"no user named {user!r}")
                owner_id = found.id
            q = select(Token).where(Token.user_id == owner_id)
            if page.cursor is not None:
                q = q.where(Token.id > page.cursor)
            rows = s.scalars(q.order_by(Token.id).limit(page.limit + 1)).all()
            return _page([self._token(t) for t in rows], page, lambda t: t["id"])

    def revoke_token(self, actor: Actor, token_id: int) -> None:
        """Revoke one of the actor's own tokens, or (a server admin) anyone's: the next request
        with it gets a 401."""
        with self.db.session() as s, s.begin():
            tok = s.get(Token, token_id)
            if tok is None or (tok.user_id != actor.id and not actor.is_admin):
                raise NotFound(f"{actor.name} has no token {token_id}")
            if tok.revoked_at is None:
                tok.revoked_at = now()
                log.info("token %d of user %d revoked by %s", tok.id, tok.user_id, actor.name)

    # -- groups -------------------------------------------------------------------------------

    def create_group(
        self, actor: Actor, name: str, parent: str | None, defaults: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Any user may make a top-level group; a subgroup needs admin of its parent. The
        creator is the new group's admin."""
        check_principal_name(name, "group")
        with self.db.session() as s, s.begin():
            parent_id = None
            if parent is not None:
                p = self._principal(s, check_principal_name(parent, "group"), GROUP)
                if self._roles(s, actor.id).get(p.id) != ADMIN:
                    raise Forbidden(f"only an admin of {parent!r} makes groups inside it")
                parent_id = p.id
            if s.scalar(select(Principal.id).where(Principal.name == name)) is not None:
                raise Conflict(f"the name {name!r} is taken (users and groups share one namespace)")
            group = Principal(name=name, kind=GROUP, parent_id=parent_id, defaults=defaults or {})
            s.add(group)
            try:
                s.flush()
            except IntegrityError:
                raise Conflict(f"the name {name!r} is taken") from None
            s.add(Membership(group_id=group.id, user_id=actor.id, role=ADMIN))
            s.flush()
            return self._group(s, actor, group)

    def _group(self, s: Session, actor: Actor, group: Principal) -> dict[str, Any]:
        members = s.execute(
            select(Principal.name, Membership.role)
            .join(Membership, Membership.user_id == Principal.id)
            .where(Membership.group_id == group.id)
            .order_by(Principal.name)
        ).all()
        subgroups = s.scalars(
            select(Principal.name).where(Principal.parent_id == group.id).order_by(Principal.name)
        ).all()
        parent = s.get(Principal, group.parent_id) if group.parent_id is not None else None
        return {
            "name": group.name,
            "parent": parent.name if parent is not None else None,
            "defaults": group.defaults or {},
            "effective_defaults": self._defaults(s, group),
            "members": [{"name": n, "role": r} for n, r in members],
            "subgroups": list(subgroups),
            "your_role": self._roles(s, actor.id).get(group.id),
            "created_at": iso(group.created_at),
        }

    def _group_for(self, s: Session, actor: Actor, name: str, admin: bool) -> Principal:
        group = self._principal(s, check_principal_name(name, "group"), GROUP)
        role = self._roles(s, actor.id).get(group.id)
        if role is None:
            raise NotFound(f"no group named {name!r} (or none you belong to)")
        if admin and role != ADMIN:
            raise Forbidden(f"{actor.name} is a member of {name!r}, not an admin")
        return group

    def get_group(self, actor: Actor, name: str) -> dict[str, Any]:
        with self.db.session() as s:
            return self._group(s, actor, self._group_for(s, actor, name, admin=False))

    def set_defaults(self, actor: Actor, name: str, defaults: dict[str, Any]) -> dict[str, Any]:
        """Replace a group's own defaults (admins only)."""
        with self.db.session() as s, s.begin():
            group = self._group_for(s, actor, name, admin=True)
            group.defaults = defaults
            s.flush()
            return self._group(s, actor, group)

    def set_member(self, actor: Actor, name: str, user: str, role: str) -> dict[str, Any]:
        if role not in (MEMBER, ADMIN):
            raise Invalid(f"role is 'member' or 'admin', not {role!r}")
        with self.db.session() as s, s.begin():
            group = self._group_for(s, actor, name, admin=True)
            u = s.scalar(select(Principal).where(Principal.name == check_principal_name(user)))
            if u is None:
                raise NotFound(f"no user named {user!r}")
            if u.kind != USER:
                raise Invalid(
                    f"{user!r} is a group: a group joins another by being made inside it "
                    "(POST /groups with parent)"
                )
            m = s.get(Membership, (group.id, u.id))
            if m is None:
                s.add(Membership(group_id=group.id, user_id=u.id, role=role))
            else:
                m.role = role
            s.flush()
            self._keep_an_admin(s, group)
            return self._group(s, actor, group)

    def remove_member(self, actor: Actor, name: str, user: str) -> None:
        """Admins remove anyone; a member may leave."""
        with self.db.session() as s, s.begin():
            group = self._principal(s, check_principal_name(name, "group"), GROUP)
            u = self._principal(s, check_principal_name(user), USER)
            if u.id != actor.id:
                group = self._group_for(s, actor, name, admin=True)
            m = s.get(Membership, (group.id, u.id))
            if m is None:
                raise NotFound(f"{user!r} is not a member of {name!r} itself")
            s.delete(m)
            s.flush()
            self._keep_an_admin(s, group)

    def _keep_an_admin(self, s: Session, group: Principal) -> None:
        if group.parent_id is not None:
            return  # the parent's admins administer it
        admins = s.scalar(
            select(func.count())
            .select_from(Membership)
            .where(Membership.group_id == group.id, Membership.role == ADMIN)
        )
        if not admins:
            raise Conflict(f"{group.name!r} would have no admin left; make another admin first")

    # -- resources ----------------------------------------------------------------------------

    def _view(
        self,
        s: Session,
        r: Resource,
        owner: Principal,
        v: Version,
        level: int,
        redact: bool = False,
    ) -> dict[str, Any]:
        lineage = s.execute(
            select(Lineage.source, Lineage.source_version)
            .where(Lineage.version_id == v.id)
            .order_by(Lineage.source)
        ).all()
        config = v.config
        if r.type == "secret" and Sealer.is_sealed(config):
            config = self.sealer.open(config)  # only ever for a reader with access
        if r.type == "secret" and redact:
            config = redacted(config)
        defaults: dict[str, Any] = {}
        if owner.kind == GROUP and isinstance(config, dict):
            defaults = {k: d for k, d in self._defaults(s, owner).items() if k not in config}
        return {
            "name": f"/{owner.name}/{r.name}",
            "owner": owner.name,
            "type": r.type,
            "version": v.number,
            "latest": r.head,
            "etag": etag(r.id, v.number, v.content_hash),
            "content_hash": v.content_hash,
            "author": v.author_name,
            "created_at": iso(v.created_at),
            "rollback_of": v.rollback_of,
            "lineage": [{"name": n, "version": k} for n, k in lineage],
            "access": LEVEL_NAMES[level],
            "config": config,
            "defaults": defaults,
            "effective_config": {**defaults, **config} if isinstance(config, dict) else config,
        }

    def _check_lineage(
        self, s: Session, actor: Actor, lineage: Sequence[Any]
    ) -> list[tuple[str, int]]:
        if not isinstance(lineage, list) or len(lineage) > MAX_LINEAGE:
            raise Invalid(f"lineage is a list of at most {MAX_LINEAGE} {{'name', 'version'}}")
        out: dict[str, int] = {}
        for item in lineage:
            if not isinstance(item, dict) or set(item) != {"name", "version"}:
                raise Invalid("each lineage entry is {'name': '/owner/name', 'version': k}")
            owner, name = split_path(item["name"])
            number = item["version"]
            if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_ID:
                raise Invalid(f"lineage version of {item['name']} must be a whole number >= 1")
            path = f"/{owner}/{name}"
            if path in out:
                raise Invalid(f"{path} appears twice in lineage")
            src, *_ = self._resource(s, actor, owner, name, READ_LEVEL)
            if number > src.head or (
                s.scalar(
                    select(Version.id).where(
                        Version.resource_id == src.id, Version.number == number
                    )
                )
                is None
            ):
                raise Invalid(f"{path} has no version {number} (latest: {src.head})")
            out[path] = number
        return list(out.items())

    def _add_version(
        self,
        s: Session,
        actor: Actor,
        r: Resource,
        number: int,
        config: Any,
        lineage: Iterable[tuple[str, int]],
        rollback_of: int | None = None,
    ) -> Version:
        digest = content_hash(config)
        if r.type == "secret" and not Sealer.is_sealed(config):
            digest = self.sealer.digest(config)
            config = self.sealer.seal(config)
        elif r.type == "secret":  # a rollback copies a sealed version, and its hash
            digest = self.sealer.digest(self.sealer.open(config))
        v = Version(
            resource_id=r.id,
            number=number,
            config=config,
            content_hash=digest,
            author_id=actor.id,
            author_name=actor.name,
            rollback_of=rollback_of,
        )
        s.add(v)
        s.flush()
        for source, k in lineage:
            s.add(Lineage(version_id=v.id, source=source, source_version=k))
        return v

    def _bump(self, s: Session, r: Resource, path: str, expected: int) -> int:
        """Move ``head`` from ``expected`` to the next number, atomically: of two writers who
        read the same version, one moves it and the other finds it moved (PreconditionFailed)."""
        moved = s.execute(
            update(Resource)
            .where(Resource.id == r.id, Resource.head == expected)
            .values(head=Resource.head + 1, updated_at=now())
            .returning(Resource.head)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        if moved is None:
            raise PreconditionFailed(
                f"{path} changed while saving: load it again, then save with its new ETag"
            )
        r.head = moved
        return moved

    def save(
        self,
        actor: Actor,
        owner: str,
        name: str,
        type_: Any,
        config: Any,
        lineage: Any,
        if_match: str | None,
        if_none_match: str | None,
    ) -> tuple[dict[str, Any], bool]:
        """Save a new version (``PUT``); returns the view and whether the resource is new.

        A new resource: ``If-Match`` must be absent. An existing one: ``If-Match`` must name
        its latest version's ETag (absent: PreconditionRequired; another: PreconditionFailed),
        ``If-None-Match: *`` refuses, and the type must stay the same (Conflict).
        """
        check_principal_name(owner, "owner")
        check_resource_name(name)
        path = f"/{owner}/{name}"
        if type_ not in TYPES:
            raise Invalid(f"type must be one of {', '.join(TYPES)}; got {type_!r}")
        if not isinstance(config, dict):
            raise Invalid("config must be a JSON object")
        if if_none_match is not None and if_none_match.strip() != "*":
            raise BadRequest("on PUT, If-None-Match may only be '*' (create, never overwrite)")
        if if_match is not None and if_match.strip() == "*":
            raise PreconditionRequired(
                "If-Match: * does not say which version you changed: send the ETag you loaded"
            )
        with self.db.session() as s, s.begin():
            sources = self._check_lineage(s, actor, lineage if lineage is not None else [])
            p = s.scalar(select(Principal).where(Principal.name == owner))
            r = None
            if p is not None:
                r = s.scalar(
                    select(Resource).where(Resource.owner_id == p.id, Resource.name == name)
                )
            if r is None:
                if p is None:
                    raise NotFound(f"no user or group named {owner!r} to own {path}")
                if if_match is not None:
                    raise PreconditionFailed(f"{path} does not exist, so no ETag can match it")
                roles = self._roles(s, actor.id)
                if p.id != actor.id and p.kind == USER:
                    raise Forbidden(
                        f"{actor.name} may not save under another user's name ({owner})"
                    )
                if p.id != actor.id and p.id not in roles:
                    raise Forbidden(
                        f"{actor.name} is not a member of {owner!r}, so may not save there"
                    )
                r = Resource(owner_id=p.id, name=name, type=type_, head=1)
                s.add(r)
                try:
                    s.flush()
                except IntegrityError:
                    raise PreconditionFailed(
                        f"{path} was created meanwhile: load it first"
                    ) from None
                level = MANAGE if p.id == actor.id else self._access(s, actor, roles, r)
                v = self._add_version(s, actor, r, 1, config, sources)
                self._audit(s, actor, "create", path, 1, {"type": type_})
                return self._view(s, r, p, v, level), True
            r, p, level, _ = self._resource(s, actor, owner, name, WRITE_LEVEL)
            if if_none_match is not None:
                raise PreconditionFailed(f"{path} exists (If-None-Match: * only creates)")
            if r.type != type_:
                raise Conflict(
                    f"{path} is a {r.type}; it cannot hold a {type_} (one name, one type: "
                    "pick another name, or delete it first)",
                    current_type=r.type,
                )
            head = self._head(s, r)
            current = etag(r.id, head.number, head.content_hash)
            if if_match is None:
                raise PreconditionRequired(
                    f"{path} exists: send If-Match with the ETag of the version you changed "
                    f"(the latest is {current}), or If-None-Match: * to only create",
                    etag=current,
                )
            if not matches(if_match, current):
                raise PreconditionFailed(
                    f"{path} was saved by {head.author_name} since you loaded it (latest: version "
                    f"{head.number}, ETag {current}): load it again and redo your change",
                    etag=current,
                )
            number = self._bump(s, r, path, head.number)
            v = self._add_version(s, actor, r, number, config, sources)
            self._audit(s, actor, "save", path, number)
            return self._view(s, r, p, v, level), False

    def _head(self, s: Session, r: Resource) -> Version:
        v = s.scalar(select(Version).where(Version.resource_id == r.id, Version.number == r.head))
        assert v is not None, f"resource {r.id} has no version {r.head}"
        return v

    def get(
        self, actor: Actor, owner: str, name: str, version: int | None, redact: bool = False
    ) -> dict[str, Any]:
        """A version's view; with ``redact``, a secret's values are left out (:func:`redacted`:
        what the web UI loads, so no value ever reaches a browser)."""
        with self.db.session() as s, s.begin():
            r, p, level, _ = self._resource(s, actor, owner, name, READ_LEVEL)
            number = r.head if version is None else version
            v = s.scalar(
                select(Version).where(Version.resource_id == r.id, Version.number == number)
            )
            if v is None:
                raise NotFound(f"/{owner}/{name} has no version {number} (latest: {r.head})")
            detail = {"redacted": True} if redact and r.type == "secret" else None
            self._audit(s, actor, "read", f"/{owner}/{name}", number, detail)
            return self._view(s, r, p, v, level, redact)

    def history(self, actor: Actor, owner: str, name: str, page: Page) -> dict[str, Any]:
        """Versions, newest first; the cursor is a version number."""
        with self.db.session() as s:
            r, *_ = self._resource(s, actor, owner, name, READ_LEVEL)
            q = select(Version).where(Version.resource_id == r.id)
            if page.cursor is not None:
                q = q.where(Version.number < page.cursor)
            rows = s.scalars(q.order_by(Version.number.desc()).limit(page.limit + 1)).all()
            items = [
                {
                    "version": v.number,
                    "etag": etag(r.id, v.number, v.content_hash),
                    "content_hash": v.content_hash,
                    "author": v.author_name,
                    "created_at": iso(v.created_at),
                    "rollback_of": v.rollback_of,
                }
                for v in rows
            ]
            return _page(items, page, lambda i: i["version"])

    def rollback(
        self, actor: Actor, owner: str, name: str, version: Any, if_match: str | None
    ) -> dict[str, Any]:
        """A new version equal to ``version`` (its config and lineage)."""
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_ID:
            raise Invalid("version must be a whole number >= 1")
        with self.db.session() as s, s.begin():
            r, p, level, _ = self._resource(s, actor, owner, name, WRITE_LEVEL)
            old = s.scalar(
                select(Version).where(Version.resource_id == r.id, Version.number == version)
            )
            if old is None:
                raise NotFound(f"/{owner}/{name} has no version {version} (latest: {r.head})")
            head = self._head(s, r)
            current = etag(r.id, head.number, head.content_hash)
            if if_match is not None and not matches(if_match, current):
                raise PreconditionFailed(
                    f"/{owner}/{name} changed since you loaded it (latest ETag {current})",
                    etag=current,
                )
            lineage = (
                s.execute(
                    select(Lineage.source, Lineage.source_version).where(
                        Lineage.version_id == old.id
                    )
                )
                .tuples()
                .all()
            )
            number = self._bump(s, r, f"/{owner}/{name}", head.number)
            v = self._add_version(s, actor, r, number, old.config, lineage, rollback_of=version)
            self._audit(s, actor, "rollback", f"/{owner}/{name}", number, {"from": version})
            return self._view(s, r, p, v, level)

    def delete(self, actor: Actor, owner: str, name: str, if_match: str | None) -> None:
        """Delete a resource with all its versions and shares (manage access)."""
        with self.db.session() as s, s.begin():
            r, *_ = self._resource(s, actor, owner, name, MANAGE)
            if if_match is not None:
                head = self._head(s, r)
                current = etag(r.id, head.number, head.content_hash)
                if not matches(if_match, current):
                    raise PreconditionFailed(
                        f"/{owner}/{name} changed since you loaded it (latest ETag {current})",
                        etag=current,
                    )
            s.execute(delete(Resource).where(Resource.id == r.id))
            self._audit(s, actor, "delete", f"/{owner}/{name}", r.head)

    def list_resources(
        self,
        actor: Actor,
        page: Page,
        owner: str | None = None,
        type_: str | None = None,
        q: str | None = None,
        shared: bool = False,
    ) -> dict[str, Any]:
        """Resources the actor may read, oldest first (cursor: a resource id)."""
        if type_ is not None and type_ not in TYPES:
            raise BadRequest(f"type must be one of {', '.join(TYPES)}")
        if owner is not None:
            check_principal_name(owner, "owner")
        if q is not None and (len(q) > 128 or not q.isprintable()):
            raise BadRequest("q is at most 128 printable characters")
        with self.db.session() as s:
            roles = self._roles(s, actor.id)
            me = [actor.id, *roles]
            shared_ids = select(Share.resource_id).where(Share.principal_id.in_(me))
            owners = [actor.id, *roles]
            if shared:
                cond = and_(Resource.id.in_(shared_ids), Resource.owner_id.not_in(owners))
            else:
                cond = or_(Resource.owner_id.in_(owners), Resource.id.in_(shared_ids))
            query = (
                select(Resource, Principal, Version)
                .join(Principal, Principal.id == Resource.owner_id)
                .join(
                    Version,
                    and_(Version.resource_id == Resource.id, Version.number == Resource.head),
                )
                .where(cond)
            )
            if owner is not None:
                query = query.where(Principal.name == owner)
            if type_ is not None:
                query = query.where(Resource.type == type_)
            if q:
                query = query.where(func.lower(Resource.name).contains(q.lower(), autoescape=True))
            if page.cursor is not None:
                query = query.where(Resource.id > page.cursor)
            rows = s.execute(query.order_by(Resource.id).limit(page.limit + 1)).tuples().all()
            items = [
                {
                    "id": r.id,
                    "name": f"/{p.name}/{r.name}",
                    "owner": p.name,
                    "type": r.type,
                    "version": r.head,
                    "etag": etag(r.id, r.head, v.content_hash),
                    "updated_at": iso(r.updated_at),
                    "access": LEVEL_NAMES[self._access(s, actor, roles, r)],
                    **({"cluster": cluster_summary(v.config)} if r.type == "cluster" else {}),
                }
                for r, p, v in rows
            ]
            out = _page(items, page, lambda i: i["id"])
            for item in out["items"]:
                del item["id"]
            return out

    # -- sharing ------------------------------------------------------------------------------

    def _shares(self, s: Session, r: Resource) -> list[dict[str, Any]]:
        rows = s.execute(
            select(Principal.name, Principal.kind, Share.access, Share.granted_by, Share.created_at)
            .join(Share, Share.principal_id == Principal.id)
            .where(Share.resource_id == r.id)
            .order_by(Principal.kind.desc(), Principal.name)
        ).all()
        return [
            {
                "principal": ("@" if kind == GROUP else "") + name,
                "access_level": access,
                "granted_by": by,
                "created_at": iso(at),
            }
            for name, kind, access, by, at in rows
        ]

    def _sharee(self, s: Session, spec: Any) -> Principal:
        if not isinstance(spec, str) or not spec:
            raise Invalid("a principal is a user's name, or '@' and a group's name")
        is_group = spec.startswith("@")
        name = spec[1:] if is_group else spec
        try:
            check_principal_name(name)
        except BadRequest as exc:
            raise Invalid(exc.message) from None
        p = s.scalar(select(Principal).where(Principal.name == name))
        if p is None:
            raise NotFound(f"no {'group' if is_group else 'user'} named {name!r}")
        if is_group and p.kind != GROUP:
            raise Invalid(f"{name!r} is a user: write it without '@'")
        if not is_group and p.kind != USER:
            raise Invalid(f"{name!r} is a group: write it as '@{name}'")
        return p

    def shared_with(self, actor: Actor, owner: str, name: str) -> list[dict[str, Any]]:
        with self.db.session() as s:
            r, *_ = self._resource(s, actor, owner, name, READ_LEVEL)
            return self._shares(s, r)

    def share(
        self, actor: Actor, owner: str, name: str, principals: Any, access: Any
    ) -> list[dict[str, Any]]:
        """Grant (or change) read or write access; manage access needed."""
        if access not in SHARE_LEVELS:
            raise Invalid(f"access_level is 'read' or 'write', not {access!r}")
        if not isinstance(principals, list) or not 1 <= len(principals) <= 100:
            raise Invalid("principals is a list of 1 to 100 names ('bob', '@group')")
        with self.db.session() as s, s.begin():
            r, p, *_ = self._resource(s, actor, owner, name, MANAGE)
            for spec in principals:
                who = self._sharee(s, spec)
                if who.id == p.id:
                    raise Invalid(f"{spec!r} owns /{owner}/{name} already")
                row = s.get(Share, (r.id, who.id))
                if row is None:
                    s.add(
                        Share(
                            resource_id=r.id,
                            principal_id=who.id,
                            access=access,
                            granted_by=actor.name,
                        )
                    )
                else:
                    row.access = access
                    row.granted_by = actor.name
                self._audit(
                    s, actor, "share", f"/{owner}/{name}", None, {"with": spec, "access": access}
                )
            s.flush()
            return self._shares(s, r)

    def revoke(self, actor: Actor, owner: str, name: str, principal: str) -> None:
        """Remove a share; the next request of whoever it reached is refused."""
        with self.db.session() as s, s.begin():
            r, *_ = self._resource(s, actor, owner, name, MANAGE)
            who = self._sharee(s, principal)
            row = s.get(Share, (r.id, who.id))
            if row is None:
                raise NotFound(f"/{owner}/{name} is not shared with {principal!r}")
            s.delete(row)
            self._audit(s, actor, "revoke", f"/{owner}/{name}", None, {"with": principal})

    def audit(self, actor: Actor, owner: str, name: str, page: Page) -> dict[str, Any]:
        """The audit log of one resource, newest first (manage access)."""
        with self.db.session() as s:
            self._resource(s, actor, owner, name, MANAGE)
            q = select(Audit).where(Audit.target == f"/{owner}/{name}")
            if page.cursor is not None:
                q = q.where(Audit.id < page.cursor)
            rows = s.scalars(q.order_by(Audit.id.desc()).limit(page.limit + 1)).all()
            items = [
                {
                    "id": a.id,
                    "at": iso(a.at),
                    "actor": a.actor,
                    "action": a.action,
                    "version": a.version,
                    "detail": a.detail,
                }
                for a in rows
            ]
            return _page(items, page, lambda i: i["id"])

    def list_secrets(self, actor: Actor, page: Page) -> dict[str, Any]:
        """The secrets the actor may read: names, providers, the names of their fields and
        who they are shared with — never a value (:func:`redacted`)."""
        out = self.list_resources(actor, page, type_="secret")
        with self.db.session() as s:
            for item in out["items"]:
                owner, name = item["owner"], item["name"].rsplit("/", 1)[1]
                p = self._principal(s, owner)
                r = s.scalar(
                    select(Resource).where(Resource.owner_id == p.id, Resource.name == name)
                )
                if r is None:  # deleted meanwhile
                    item.update(provider=None, fields=[], shares=[])
                    continue
                config = self._head(s, r).config
                if Sealer.is_sealed(config):
                    config = self.sealer.open(config)
                summary = redacted(config)
                item.update(
                    provider=summary["provider"],
                    fields=summary["fields"],
                    shares=self._shares(s, r),
                )
        return out

    def list_users(self, actor: Actor, page: Page) -> dict[str, Any]:
        """Every user, with how many live tokens they hold and when one was last used (server
        admins only; no token, nor its hash, is ever listed)."""
        if not actor.is_admin:
            raise Forbidden(f"only a server admin lists users, and {actor.name} is not one")
        with self.db.session() as s:
            q = select(Principal).where(Principal.kind == USER)
            if page.cursor is not None:
                q = q.where(Principal.id > page.cursor)
            users = s.scalars(q.order_by(Principal.id).limit(page.limit + 1)).all()
            ids = [u.id for u in users]
            stats = {
                uid: (n, last)
                for uid, n, last in s.execute(
                    select(Token.user_id, func.count(), func.max(Token.last_used_at))
                    .where(Token.user_id.in_(ids), Token.revoked_at.is_(None))
                    .group_by(Token.user_id)
                ).tuples()
            }
            items = [
                {
                    "id": u.id,
                    **self._user(u),
                    "tokens": stats.get(u.id, (0, None))[0],
                    "last_used_at": iso(stats.get(u.id, (0, None))[1]),
                }
                for u in users
            ]
            out = _page(items, page, lambda i: i["id"])
            for item in out["items"]:
                del item["id"]
            return out

    def health(self) -> None:
        with self.db.session() as s:
            s.execute(select(1))


def redacted(config: Any) -> dict[str, Any]:
    """What may be shown of a secret's config: its provider and the names of its values' fields,
    never a value (a config that is not rhzmq's shape shows nothing but the provider)."""
    if not isinstance(config, dict):
        return {"redacted": True, "provider": None, "fields": []}
    values = config.get("values")
    provider = config.get("provider")
    return {
        "redacted": True,
        "provider": provider if isinstance(provider, str) else None,
        "fields": sorted(str(k) for k in values) if isinstance(values, dict) else [],
    }


def _page(items: list[dict[str, Any]], page: Page, key: Any) -> dict[str, Any]:
    """``{"items", "next_cursor"}`` from up to ``limit + 1`` rows (one more: there is a next page)."""
    more = len(items) > page.limit
    items = items[: page.limit]
    return {"items": items, "next_cursor": str(key(items[-1])) if more and items else None}
