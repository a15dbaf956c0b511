"""An OpenAPI 3.1 document generated from the live objects' signatures and docstrings."""

from __future__ import annotations

from typing import Any

from rhzmq.wire.version import __version__

_TYPES = {
    "int": "integer",
    "float": "number",
    "str": "string",
    "bool": "boolean",
    "list": "array",
    "dict": "object",
}

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "traceback": {"type": "string"},
            },
            "required": ["type", "message"],
        }
    },
    "required": ["error"],
}


def _schema(param: dict[str, Any]) -> dict[str, Any]:
    annotation = str(param.get("annotation", "")).split("[", 1)[0].split(" |", 1)[0]
    kind = _TYPES.get(annotation)
    return {"type": kind} if kind else {}


def _responses(streams: bool) -> dict[str, Any]:
    ok: dict[str, Any] = {
        "application/json": {"schema": {"type": "object", "properties": {"result": {}}}},
        "application/msgpack": {},
    }
    if streams:
        ok = {
            "application/x-ndjson": {
                "schema": {"type": "object", "properties": {"type": {"type": "string"}}}
            }
        }
    out: dict[str, Any] = {
        "200": {
            "description": "the call's result" if not streams else "one JSON line per event",
            "content": ok,
        }
    }
    for code, what in (
        ("400", "bad body or query"),
        ("404", "unknown object or method"),
        ("406", "result not representable as JSON"),
        ("422", "wrong arguments"),
        ("500", "the remote code raised"),
        ("503", "worker died or broker down"),
        ("504", "timeout"),
    ):
        out[code] = {"description": what, "content": {"application/json": {"schema": _ERROR}}}
    return out


def _operations(
    name: str, label: str, kind: str, params: list[dict[str, Any]], doc: str
) -> dict[str, Any]:
    positional = [
        p
        for p in params
        if p["kind"] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD", "VAR_POSITIONAL")
    ]
    keyword = [p for p in params if p["kind"] in ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY")]
    kwargs_schema: dict[str, Any] = {
        "type": "object",
        "properties": {p["name"]: _schema(p) for p in keyword},
        "additionalProperties": any(p["kind"] == "VAR_KEYWORD" for p in params),
    }
    args_schema: dict[str, Any] = {"type": "array"}
    if not any(p["kind"] == "VAR_POSITIONAL" for p in params):
        args_schema["maxItems"] = len(positional)
    body = {
        "type": "object",
        "properties": {"args": args_schema, "kwargs": kwargs_schema},
        "additionalProperties": False,
    }
    streams = kind in ("gen", "agen")
    summary = doc.splitlines()[0] if doc else f"call {label}"
    timeout = {
        "name": "timeout",
        "in": "query",
        "required": False,
        "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
    }
    return {
        "post": {
            "summary": summary,
            "description": doc,
            "operationId": f"post_{label}".replace(".", "_"),
            "parameters": [timeout],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body}, "application/msgpack": {}},
            },
            "responses": _responses(streams),
        },
    }


def build_openapi(
    objects: dict[str, dict[str, Any]], *, fixed_routes: bool = True
) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    if fixed_routes:
        simple = {
            "200": {
                "description": "ok",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        }
        paths["/health"] = {
            "get": {
                "summary": "the gateway and its broker answer",
                "operationId": "health",
                "responses": simple,
            }
        }
        paths["/keys"] = {
            "get": {
                "summary": "names of the objects on the cluster",
                "operationId": "keys",
                "responses": simple,
            }
        }
        paths["/status"] = {
            "get": {
                "summary": "workers, objects, calls in flight",
                "operationId": "status",
                "responses": simple,
            }
        }
    for name, info in sorted(objects.items()):
        if info.get("type") == "function":
            paths[f"/{name}"] = _operations(
                name,
                name,
                str(info.get("call") or "sync"),
                info.get("params", []),
                info.get("doc", ""),
            )
            continue
        for method, kind in sorted((info.get("methods") or {}).items()):
            paths[f"/{name}/{method}"] = _operations(
                name,
                f"{name}.{method}",
                kind,
                (info.get("params") or {}).get(method, []),
                (info.get("docs") or {}).get(method, ""),
            )
        for attr in info.get("attributes", []):
            if attr not in (info.get("methods") or {}):
                paths[f"/{name}/{attr}"] = {
                    "get": {
                        "summary": f"read {name}.{attr}",
                        "operationId": f"get_{name}_{attr}",
                        "responses": _responses(False),
                    }
                }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rhzmq gateway",
            "version": __version__,
            "description": "Call the objects on an rhzmq cluster over HTTP.",
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
