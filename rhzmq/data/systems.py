"""Systems a data resource lives on, and how work reaches the ones that are clusters.

A *system* is ``"file"`` (this machine's disk: ``None`` here), an :class:`~.stores.ObjectStore`,
or a :class:`~rhzmq.Cluster` (its head node's disk). Anything that touches a cluster's data runs
*on the cluster*: the client calls the data agent (:mod:`._agent`, placed in the cluster's
default worker on first use), giving it the resource's config with the cluster replaced by
``"file"`` — the same resource, local there. So a copy from a cluster to S3 is made by the
cluster, and its bytes never pass through the client.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .._portal import run_sync
from .._store import Resource
from .._stubs import RemoteMethod
from ..wire.code import object_spec
from ..wire.exceptions import ObjectNotFound
from . import _agent
from .stores import PROVIDERS, SCHEMES, ObjectStore

if TYPE_CHECKING:
    from collections.abc import Iterator


System = "ObjectStore | Cluster | None"

#: The name the data agent is held under on a cluster (placed on first use).
AGENT = "rhzmq.data"
AGENT_STREAM = "rhzmq.data.stream"


def as_system(system: Any) -> Any:
    """``"file"`` -> None, ``"s3"``/``"gs"``/``"azure"`` -> an ObjectStore, a cluster (or a
    cluster's name, or a saved config) -> the cluster."""
    from ..clusters import Cluster, cluster

    if system is None or system in ("file", "local-disk"):
        return None
    if isinstance(system, (ObjectStore, Cluster)):
        return system
    if isinstance(system, str):
        if system in SCHEMES or system in PROVIDERS:
            return ObjectStore(system)
        return cluster(system)  # "local" or a saved cluster's name
    if isinstance(system, dict):
        if system.get("type") == "store":
            return ObjectStore.from_config(system)
        return Resource.from_config(system)
    raise TypeError(
        f"system must be 'file', 's3', 'gs', 'azure', a cluster or a cluster's name; got "
        f"{type(system).__name__}"
    )


def system_config(system: Any) -> Any:
    if system is None:
        return "file"
    return system.config()


def system_name(system: Any) -> str:
    if system is None:
        return "file"
    if isinstance(system, ObjectStore):
        return system.provider
    return f"cluster {system.name!r}"


def is_cluster(system: Any) -> bool:
    return system is not None and not isinstance(system, ObjectStore)


def is_local_cluster(system: Any) -> bool:
    from ..clusters import LocalCluster

    return isinstance(system, LocalCluster)


def same_cluster(a: Any, b: Any) -> bool:
    if not (is_cluster(a) and is_cluster(b)):
        return False
    if is_local_cluster(a) and is_local_cluster(b):
        return True  # one daemon per RHZMQ_HOME, whatever it is called
    return bool(a.config().get("host") == b.config().get("host") and a.name == b.name)


def here_on(cluster: Any) -> bool:
    """Whether this process runs on ``cluster``'s head, where its data is."""
    return bool(cluster.on_this_cluster() and os.environ.get("RHZMQ_NODE_INDEX", "0") in ("0", ""))


def there(config: dict[str, Any], cluster: Any) -> dict[str, Any]:
    """A resource's config as seen on ``cluster``: its data there is on the local disk."""
    system = config.get("system")
    if isinstance(system, dict) and system.get("type") == "cluster":
        if same_cluster(as_system(system), cluster):
            return {**config, "system": "file"}
    return config


def credentials_for(*systems: Any) -> dict[str, dict[str, str]]:
    """The credentials the cluster needs for the object stores among ``systems``."""
    return {s.ident: s.credentials() for s in systems if isinstance(s, ObjectStore)}


async def _acall(cluster: Any, name: str, fn: Any, *args: Any) -> Any:
    try:
        return await cluster.acall(name, "", *args, stream_logs=True)
    except ObjectNotFound:
        await cluster.aplace(name, object_spec(fn))
        return await cluster.acall(name, "", *args, stream_logs=True)


def call(
    cluster: Any,
    config: dict[str, Any],
    method: str,
    *args: Any,
    stores: tuple[Any, ...] = (),
    **kwargs: Any,
) -> Any:
    """Run ``method`` of the resource ``config`` describes on ``cluster`` (local there)."""
    return run_sync(
        acall,
        cluster,
        config,
        method,
        *args,
        stores=stores,
        hint="a data resource on a cluster",
        **kwargs,
    )


async def acall(
    cluster: Any,
    config: dict[str, Any],
    method: str,
    *args: Any,
    stores: tuple[Any, ...] = (),
    **kwargs: Any,
) -> Any:
    """:func:`call`, from async code."""
    payload: tuple[Any, ...] = (
        there(config, cluster),
        method,
        list(args),
        kwargs,
        credentials_for(*stores),
    )
    return await _acall(cluster, AGENT, _agent.serve, *payload)


def stream(
    cluster: Any, config: dict[str, Any], method: str, *args: Any, **kwargs: Any
) -> Iterator[Any]:
    """Items of the generator ``method`` of the resource, run on ``cluster``, as they come."""
    payload: tuple[Any, ...] = (there(config, cluster), method, list(args), kwargs, {})
    run_sync(_aplace_stream, cluster, hint="a data resource on a cluster")
    stub = RemoteMethod(cluster, AGENT_STREAM, "", "gen", AGENT_STREAM)
    result: Iterator[Any] = stub(*payload, stream_logs=True)
    return result


async def _aplace_stream(cluster: Any) -> None:
    if AGENT_STREAM not in await cluster.akeys():
        await cluster.aplace(AGENT_STREAM, object_spec(_agent.serve_stream))
