"""How code and objects travel to a worker: by import path when possible, by value otherwise.

A *code reference* is one of::

    {"module": "pkg.mod", "qualname": "Cls.method", "path": "/project/dir"}   by import path
    {"pickled": <cloudpickle bytes>}                                            by value

By import path is preferred: the worker imports the same source the user edits (and re-imports it
when the file changed), tracebacks show real file names, and nothing executable is pickled. Code
from ``__main__``, notebooks, or anything not reachable by ``module.qualname`` (closures, lambdas)
falls back to cloudpickle by value.

An *object spec* (what PUT carries) is ``{"kind": "object", "code": ref, "paths": [...]}`` — the
object itself (a function, or a pickled instance) — or ``{"kind": "construct", "code": ref,
"args": [...], "kwargs": {...}, "paths": [...]}`` — a class to instantiate on the worker. ``paths``
are project directories the worker puts on ``sys.path`` first, so by-reference pickles of the
user's own classes resolve there too.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pickle
import sys
import threading
from collections.abc import Sequence
from typing import Any

from . import config as _config
from .serialization import pickle_value

CodeRef = dict[str, Any]


def call_kind(fn: Any) -> str:
    """How a callable is called: ``sync``, ``async``, ``gen`` or ``agen`` (a stub's behaviour
    follows it; see rhzmq._stubs)."""
    if inspect.isasyncgenfunction(fn):
        return "agen"
    if inspect.iscoroutinefunction(fn):
        return "async"
    if inspect.isgeneratorfunction(fn):
        return "gen"
    return "sync"


def project_dir(module_name: str) -> str | None:
    """The ``sys.path`` entry a module was imported from (its project's source directory)."""
    module = sys.modules.get(module_name)
    file: str | None = getattr(module, "__file__", None)
    if not file or module_name == "__main__":
        return None
    path = os.path.dirname(os.path.abspath(file))
    depth = module_name.count(".") + (1 if os.path.basename(file) == "__init__.py" else 0)
    for _ in range(depth):
        path = os.path.dirname(path)
    return path


def code_ref(obj: Any) -> CodeRef:
    """A code reference for a function or class (see the module docstring)."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", "")
    if module and module != "__main__" and "<" not in qualname:
        try:
            if _resolve(importlib.import_module(module), qualname) is obj:
                return {"module": module, "qualname": qualname, "path": project_dir(module)}
        except (ImportError, AttributeError):
            pass
    return {"pickled": pickle_value(obj)}


def object_spec(obj: Any, *, by_ref: bool = True) -> dict[str, Any]:
    """Spec that ships ``obj`` itself: functions and classes by reference, instances pickled."""
    if by_ref and (callable(obj) and hasattr(obj, "__qualname__")):
        return {"kind": "object", "code": code_ref(obj), "paths": _paths(obj)}
    return {"kind": "object", "code": {"pickled": pickle_value(obj)}, "paths": _paths(type(obj))}


def construct_spec(cls: type, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "construct",
        "code": code_ref(cls),
        "args": list(args),
        "kwargs": dict(kwargs),
        "paths": _paths(cls),
    }


def _paths(obj: Any) -> list[str]:
    path = project_dir(getattr(obj, "__module__", "") or "")
    return [path] if path else []


# -- worker side ------------------------------------------------------------------------------

_mtimes: dict[str, float] = {}
_reload_lock = threading.Lock()


def load_code(ref: CodeRef) -> Any:
    """Resolve a code reference; re-imports the module when its source file changed."""
    if "pickled" in ref:
        return pickle.loads(ref["pickled"])
    path = _config.expand(ref.get("path"))
    if path and path not in sys.path:
        sys.path.insert(0, path)
    name = ref["module"]
    # import_module, not sys.modules: another call thread may be importing the same module right
    # now (two objects rebuilt at once), and only import_module waits for it to finish.
    module = importlib.import_module(name)
    seen = _mtimes.get(name)
    file = getattr(module, "__file__", None)
    if seen is not None and file and os.path.exists(file) and os.path.getmtime(file) > seen:
        with _reload_lock:
            if os.path.getmtime(file) > _mtimes.get(name, 0.0):
                module = importlib.reload(module)  # the user edited it since we last loaded it
    file = getattr(module, "__file__", None)
    if file and os.path.exists(file):
        _mtimes[name] = os.path.getmtime(file)
    return _resolve(module, ref["qualname"])


def build(spec: dict[str, Any]) -> Any:
    """Create the object a spec describes (runs user code: constructors)."""
    for path in map(_config.expand, spec.get("paths", ())):
        if path and path not in sys.path:
            sys.path.insert(0, path)
    code = load_code(spec["code"])
    if spec["kind"] == "construct":
        return code(*spec.get("args", ()), **spec.get("kwargs", {}))
    return code


def _resolve(root: Any, qualname: str) -> Any:
    obj = root
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
