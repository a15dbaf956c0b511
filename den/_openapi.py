"""The registry's OpenAPI 3.1 document (``GET /openapi.json``), written out by hand.

Written, not generated from the handlers, so it says what the API promises (patterns, limits,
which errors each route gives); ``tests/den/test_fuzz.py`` fuzzes the live server from it, and
``tests/den/test_api.py`` checks that every route in the app is documented here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rhzmq.wire.version import __version__

from ._errors import DenError
from ._store import MAX_ID, MAX_LIMIT, MAX_LINEAGE, PRINCIPAL_NAME, RESOURCE_NAME, TYPES

JSON = "application/json"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _ok(schema: dict[str, Any] | None, status: int = 200, etag: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"description": "done"}
    if schema is not None:
        out["content"] = {JSON: {"schema": schema}}
    if etag:
        out["headers"] = {"ETag": {"schema": {"type": "string"}, "description": "this version"}}
    return {str(status): out}


def _path_param(name: str, pattern: str, doc: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": doc,
        "schema": {"type": "string", "pattern": f"^{pattern}$"},
    }


def _query(name: str, schema: dict[str, Any], doc: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": doc, "schema": schema}


def _header(name: str, doc: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": doc,
        "schema": {"type": "string"},
    }


PAGE = [
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        f"items per page (default 50, at most {MAX_LIMIT})",
    ),
    _query(
        "cursor", {"type": "string", "pattern": "^[0-9]{1,10}$"}, "next_cursor of the page before"
    ),
]


def _paged(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "next_cursor": {"type": ["string", "null"]},
        },
        "required": ["items", "next_cursor"],
    }


SCHEMAS: dict[str, Any] = {
    "Session": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "admin": {"type": "boolean"},
            "csrf": {"type": ["string", "null"], "description": "send as X-CSRF-Token"},
        },
    },
    "UserSummary": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "admin": {"type": "boolean"},
            "created_at": {"type": "string"},
            "tokens": {"type": "integer", "description": "live (not revoked) tokens"},
            "last_used_at": {"type": ["string", "null"]},
        },
    },
    "SecretSummary": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "owner": {"type": "string"},
            "version": {"type": "integer"},
            "provider": {"type": ["string", "null"]},
            "fields": {"type": "array", "items": {"type": "string"}},
            "shares": {"type": "array"},
        },
    },
    "Error": {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
                "required": ["type", "message"],
            }
        },
        "required": ["error"],
    },
    "User": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "admin": {"type": "boolean"},
            "created_at": {"type": "string"},
        },
    },
    "Token": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "created_at": {"type": "string"},
            "last_used_at": {"type": ["string", "null"]},
            "revoked_at": {"type": ["string", "null"]},
            "token": {"type": "string", "description": "only in the answer that made it"},
        },
    },
    "Group": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "parent": {"type": ["string", "null"]},
            "defaults": {"type": "object"},
            "effective_defaults": {"type": "object"},
            "members": {"type": "array"},
            "subgroups": {"type": "array", "items": {"type": "string"}},
            "your_role": {"type": ["string", "null"]},
        },
    },
    "LineageEntry": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "/owner/name"},
            "version": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        },
        "required": ["name", "version"],
        "additionalProperties": False,
    },
    "Save": {
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": list(TYPES)},
            "config": {"type": "object"},
            "lineage": {"type": "array", "items": _ref("LineageEntry"), "maxItems": MAX_LINEAGE},
        },
        "required": ["type", "config"],
        "additionalProperties": False,
    },
    "Resource": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "owner": {"type": "string"},
            "type": {"type": "string", "enum": list(TYPES)},
            "version": {"type": "integer"},
            "latest": {"type": "integer"},
            "etag": {"type": "string"},
            "content_hash": {"type": "string"},
            "author": {"type": "string"},
            "created_at": {"type": "string"},
            "rollback_of": {"type": ["integer", "null"]},
            "lineage": {"type": "array", "items": _ref("LineageEntry")},
            "access": {"type": "string", "enum": ["read", "write", "manage"]},
            "config": {"type": "object", "description": "as saved (the content hash is of it)"},
            "defaults": {
                "type": "object",
                "description": "the owner group's defaults for keys the config lacks",
            },
            "effective_config": {"type": "object", "description": "defaults, then config"},
        },
    },
    "ResourceSummary": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "owner": {"type": "string"},
            "type": {"type": "string"},
            "version": {"type": "integer"},
            "etag": {"type": "string"},
            "updated_at": {"type": "string"},
            "access": {"type": "string"},
            "cluster": {
                "type": "object",
                "description": "clusters only: kind, status, nodes, instance_type, size, "
                "provider, region, launched_at, ended_at, hourly_price, gateway_url, "
                "gateway_port (from the saved config; no secret is ever in one)",
            },
        },
    },
    "VersionSummary": {
        "type": "object",
        "properties": {
            "version": {"type": "integer"},
            "etag": {"type": "string"},
            "content_hash": {"type": "string"},
            "author": {"type": "string"},
            "created_at": {"type": "string"},
            "rollback_of": {"type": ["integer", "null"]},
        },
    },
    "AuditEntry": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string"},
            "actor": {"type": "string"},
            "action": {"type": "string"},
            "version": {"type": ["integer", "null"]},
            "detail": {},
        },
    },
    "Shares": {
        "type": "object",
        "properties": {
            "shares": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "principal": {"type": "string"},
                        "access_level": {"type": "string", "enum": ["read", "write"]},
                        "granted_by": {"type": "string"},
                        "created_at": {"type": "string"},
                    },
                },
            }
        },
    },
}


def build_openapi(statuses: Mapping[type[DenError], int]) -> dict[str, Any]:
    """The document; ``statuses`` is the app's exception → HTTP status table."""
    names = {code: cls.__name__ for cls, code in statuses.items()}
    err = {"description": "refused", "content": {JSON: {"schema": _ref("Error")}}}

    def errors(*codes: int) -> dict[str, Any]:
        out = {}
        for code in (400, 401, *codes):
            out[str(code)] = {**err, "description": names.get(code, "refused")}
        return out

    owner = _path_param("owner", PRINCIPAL_NAME.pattern, "a user or group")
    name = _path_param("name", RESOURCE_NAME.pattern, "the resource's name")
    group = _path_param("group", PRINCIPAL_NAME.pattern, "a group")
    user = _path_param("user", PRINCIPAL_NAME.pattern, "a user")
    res = [owner, name]
    if_match = _header("If-Match", "the ETag of the version you changed")

    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "summary": "whether the server and its database answer",
                "security": [],
                "responses": {**_ok({"type": "object"}), "503": err},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "this document",
                "security": [],
                "responses": _ok({"type": "object"}),
            }
        },
        "/users": {
            "post": {
                "summary": "make a user (server admins); the answer holds their first token",
                "requestBody": _body(
                    {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "pattern": f"^{PRINCIPAL_NAME.pattern}$"},
                            "admin": {"type": "boolean"},
                        },
                        "required": ["name"],
                    }
                ),
                "responses": {**_ok({"type": "object"}, 201), **errors(403, 409, 413, 415, 422)},
            },
            "get": {
                "summary": "every user, with live tokens and when one was last used (server "
                "admins)",
                "parameters": PAGE,
                "responses": {**_ok(_paged("UserSummary")), **errors(403)},
            },
        },
        "/secrets": {
            "get": {
                "summary": "the secrets you may read: names, providers, field names and shares; "
                "never a value",
                "parameters": PAGE,
                "responses": {**_ok(_paged("SecretSummary")), **errors()},
            }
        },
        "/session": {
            "post": {
                "summary": "the web UI's sign-in: a token for a session cookie (HttpOnly, "
                "SameSite=Strict) and its CSRF token; only from this server's own origin",
                "security": [],
                "requestBody": _body(
                    {
                        "type": "object",
                        "properties": {"token": {"type": "string"}},
                        "required": ["token"],
                    }
                ),
                "responses": {**_ok(_ref("Session"), 201), **errors(403, 413, 415, 422)},
            },
            "get": {
                "summary": "who is signed in, and the session's CSRF token (null with a bearer "
                "token)",
                "responses": {**_ok(_ref("Session")), **errors()},
            },
            "delete": {
                "summary": "sign out: end this browser's session",
                "responses": {"204": {"description": "signed out"}, **errors(403)},
            },
        },
        "/users/me": {
            "get": {
                "summary": "the token's user and their groups",
                "responses": {**_ok(_ref("User")), **errors()},
            }
        },
        "/tokens": {
            "post": {
                "summary": "make a token for yourself (shown once)",
                "requestBody": _body(
                    {
                        "type": "object",
                        "properties": {"name": {"type": "string", "maxLength": 64}},
                    },
                    required=False,
                ),
                "responses": {**_ok(_ref("Token"), 201), **errors(413, 415, 422)},
            },
            "get": {
                "summary": "your tokens, or a server admin's view of a user's (never the tokens themselves)",
                "parameters": [
                    *PAGE,
                    _query("user", {"type": "string"}, "a user's tokens (server admins only)"),
                ],
                "responses": {**_ok(_paged("Token")), **errors(403, 404)},
            },
        },
        "/tokens/{id}": {
            "delete": {
                "summary": "revoke one of your tokens (a server admin: anyone's)",
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
                    }
                ],
                "responses": {"204": {"description": "revoked"}, **errors(404)},
            }
        },
        "/groups": {
            "post": {
                "summary": "make a group (you become its admin); with parent, a subgroup",
                "requestBody": _body(
                    {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "pattern": f"^{PRINCIPAL_NAME.pattern}$"},
                            "parent": {"type": ["string", "null"]},
                            "defaults": {"type": "object"},
                        },
                        "required": ["name"],
                    }
                ),
                "responses": {**_ok(_ref("Group"), 201), **errors(403, 404, 409, 413, 415, 422)},
            }
        },
        "/groups/{group}": {
            "get": {
                "summary": "a group you belong to",
                "parameters": [group],
                "responses": {**_ok(_ref("Group")), **errors(404)},
            },
            "patch": {
                "summary": "replace the group's own defaults (admins)",
                "parameters": [group],
                "requestBody": _body(
                    {
                        "type": "object",
                        "properties": {"defaults": {"type": "object"}},
                        "required": ["defaults"],
                    }
                ),
                "responses": {**_ok(_ref("Group")), **errors(403, 404, 413, 415, 422)},
            },
        },
        "/groups/{group}/members/{user}": {
            "put": {
                "summary": "add a member or change their role (admins)",
                "parameters": [group, user],
                "requestBody": _body(
                    {
                        "type": "object",
                        "properties": {"role": {"type": "string", "enum": ["member", "admin"]}},
                    },
                    required=False,
                ),
                "responses": {**_ok(_ref("Group")), **errors(403, 404, 409, 413, 415, 422)},
            },
            "delete": {
                "summary": "remove a member (admins), or leave",
                "parameters": [group, user],
                "responses": {"204": {"description": "removed"}, **errors(403, 404, 409)},
            },
        },
        "/resources": {
            "get": {
                "summary": "resources you may read",
                "parameters": [
                    _query("owner", {"type": "string"}, "only this owner's"),
                    _query("type", {"type": "string", "enum": list(TYPES)}, "only this type"),
                    _query("q", {"type": "string", "maxLength": 128}, "name contains this"),
                    _query("shared", {"type": "boolean"}, "only those shared with you"),
                    *PAGE,
                ],
                "responses": {**_ok(_paged("ResourceSummary")), **errors()},
            }
        },
        "/resources/{owner}/{name}": {
            "get": {
                "summary": "the latest version, or ?version=k",
                "parameters": [
                    *res,
                    _query(
                        "version",
                        {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                        "an older version",
                    ),
                    _query(
                        "redact",
                        {"type": "boolean"},
                        "a secret without its values (provider and field names only)",
                    ),
                    _header("If-None-Match", "an ETag: 304 if it is still the latest"),
                ],
                "responses": {
                    **_ok(_ref("Resource"), etag=True),
                    "304": {"description": "unchanged"},
                    **errors(404),
                },
            },
            "put": {
                "summary": "save a new version: If-Match (its ETag) when the resource exists",
                "parameters": [
                    *res,
                    if_match,
                    _header("If-None-Match", "'*': only create, never overwrite"),
                ],
                "requestBody": _body(_ref("Save")),
                "responses": {
                    **_ok(_ref("Resource"), etag=True),
                    **_ok(_ref("Resource"), 201, etag=True),
                    **errors(403, 404, 409, 412, 413, 415, 422, 428),
                },
            },
            "delete": {
                "summary": "delete it with every version and share (manage access)",
                "parameters": [*res, if_match],
                "responses": {"204": {"description": "deleted"}, **errors(403, 404, 412)},
            },
        },
        "/resources/{owner}/{name}/history": {
            "get": {
                "summary": "its versions, newest first",
                "parameters": [*res, *PAGE],
                "responses": {**_ok(_paged("VersionSummary")), **errors(404)},
            }
        },
        "/resources/{owner}/{name}/rollback": {
            "post": {
                "summary": "a new version equal to an old one (write access)",
                "parameters": [*res, if_match],
                "requestBody": _body(
                    {
                        "type": "object",
                        "properties": {
                            "version": {"type": "integer", "minimum": 1, "maximum": MAX_ID}
                        },
                        "required": ["version"],
                    }
                ),
                "responses": {
                    **_ok(_ref("Resource"), etag=True),
                    **errors(403, 404, 412, 413, 415, 422),
                },
            }
        },
        "/resources/{owner}/{name}/shares": {
            "get": {
                "summary": "who it is shared with",
                "parameters": res,
                "responses": {**_ok(_ref("Shares")), **errors(404)},
            },
            "post": {
                "summary": "share it (manage access): users by name, groups as @name",
                "parameters": res,
                "requestBody": _body(
                    {
                        "type": "object",
                        "properties": {
                            "principals": {
                                "type": "array",
                                "items": {"type": "string"},
                                "minItems": 1,
                                "maxItems": 100,
                            },
                            "access_level": {"type": "string", "enum": ["read", "write"]},
                        },
                        "required": ["principals"],
                    }
                ),
                "responses": {**_ok(_ref("Shares")), **errors(403, 404, 413, 415, 422)},
            },
        },
        "/resources/{owner}/{name}/shares/{principal}": {
            "delete": {
                "summary": "revoke a share (manage access); at once",
                "parameters": [
                    *res,
                    {
                        "name": "principal",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "a user, or @group",
                    },
                ],
                "responses": {"204": {"description": "revoked"}, **errors(403, 404, 422)},
            }
        },
        "/resources/{owner}/{name}/audit": {
            "get": {
                "summary": "who read and changed it, and when (manage access)",
                "parameters": [*res, *PAGE],
                "responses": {**_ok(_paged("AuditEntry")), **errors(403, 404)},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Den: the rhzmq resource registry",
            "version": __version__,
            "description": "Users, groups, versioned resources and sharing. Every route but "
            "/health and /openapi.json needs 'Authorization: Bearer <token>'.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
