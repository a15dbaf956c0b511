"""The data agent: what a cluster runs when a client works with data on it.

Two plain functions, held on the cluster's default worker under ``rhzmq.data`` and
``rhzmq.data.stream``. Each rebuilds the resource from a config whose system is ``"file"`` (the
data is on this machine's disk) and calls one method of it, with the object-store credentials the
client handed to this call (:func:`rhzmq.data.stores.given`): they are in memory for the call
only, never written or logged.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from .._store import Resource
from .stores import given


def _resource(config: dict[str, Any]) -> Any:
    importlib.import_module("rhzmq.data")  # registers the data resource types (by name: the
    # package imports this module, and this module must not import it back)
    return Resource.from_config(config)


def serve(
    config: dict[str, Any],
    method: str,
    args: list[Any],
    kwargs: dict[str, Any],
    credentials: dict[str, dict[str, str]],
) -> Any:
    with given(credentials):
        return getattr(_resource(config), method)(*args, **kwargs)


def serve_stream(
    config: dict[str, Any],
    method: str,
    args: list[Any],
    kwargs: dict[str, Any],
    credentials: dict[str, dict[str, str]],
) -> Iterator[Any]:
    with given(credentials):
        yield from getattr(_resource(config), method)(*args, **kwargs)
