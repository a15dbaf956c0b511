"""rhzmq: send Python functions and classes to other machines as named services, call them as if
they were local — from asyncio, from scripts, or over HTTP.

    import rhzmq as rh
    cluster = rh.cluster("local").up_if_not()
    add = rh.function(add).to(cluster)
    add(1, 2)                  # blocking
    await add.acall(1, 2)      # asyncio
"""

from typing import TYPE_CHECKING

from ._env import Env, env
from ._resources import Function, LocalModule, Module, ModuleClass, function, module
from ._runs import Run, run
from ._secrets import Secret, provider_secret, secret
from ._store import Resource, login, logout
from ._stubs import RemoteMethod, RemoteObject
from .clusters import Cluster, LocalCluster, cluster
from .data import Blob, File, Folder, ObjectStore, Table, blob, file, folder, object_store, table
from .wire.exceptions import (
    AccessDenied,
    AuthenticationError,
    CallCancelled,
    CallError,
    CallTimeout,
    ClusterError,
    ClusterNotRunning,
    Conflict,
    DataError,
    DataNotFound,
    DataPermissionError,
    EnvError,
    InvalidToken,
    LimitExceeded,
    NoCredentials,
    ObjectNotFound,
    PermissionDenied,
    ProtocolError,
    RegistryError,
    RegistryUnavailable,
    RemoteError,
    RemoteTraceback,
    ResourceNotFound,
    RhzmqError,
    RunError,
    SecretError,
    SerializationError,
    StaleWrite,
    SyncCallInEventLoop,
    VersionMismatch,
    WorkerDiedError,
)
from .wire.version import PROTOCOL_VERSION, __version__

if TYPE_CHECKING:
    from ._den import DenClient
    from .clusters.ondemand import OnDemandCluster, ondemand_cluster
    from .clusters.ssh import SSHCluster


def __getattr__(name: str) -> object:
    # SSH clusters pull in asyncssh (~0.1 s to import): only when used.
    if name == "SSHCluster":
        from .clusters.ssh import SSHCluster

        return SSHCluster
    if name in ("OnDemandCluster", "ondemand_cluster"):  # libcloud and asyncssh: when used
        from .clusters import ondemand

        return getattr(ondemand, name)
    if name == "DenClient":  # httpx: only when the registry is used
        from ._den import DenClient

        return DenClient
    raise AttributeError(f"module 'rhzmq' has no attribute {name!r}")


#: The embedded local cluster (not started until ``rh.here.up_if_not()``).
here = cluster("local")

__all__ = [
    "PROTOCOL_VERSION",
    "AccessDenied",
    "AuthenticationError",
    "Blob",
    "CallCancelled",
    "CallError",
    "CallTimeout",
    "Cluster",
    "ClusterError",
    "ClusterNotRunning",
    "Conflict",
    "DataError",
    "DataNotFound",
    "DataPermissionError",
    "DenClient",
    "Env",
    "EnvError",
    "File",
    "Folder",
    "Function",
    "InvalidToken",
    "LimitExceeded",
    "LocalCluster",
    "LocalModule",
    "Module",
    "ModuleClass",
    "NoCredentials",
    "ObjectNotFound",
    "ObjectStore",
    "OnDemandCluster",
    "PermissionDenied",
    "ProtocolError",
    "RegistryError",
    "RegistryUnavailable",
    "RemoteError",
    "RemoteMethod",
    "RemoteObject",
    "RemoteTraceback",
    "Resource",
    "ResourceNotFound",
    "RhzmqError",
    "Run",
    "RunError",
    "SSHCluster",
    "Secret",
    "SecretError",
    "SerializationError",
    "StaleWrite",
    "SyncCallInEventLoop",
    "Table",
    "VersionMismatch",
    "WorkerDiedError",
    "__version__",
    "blob",
    "cluster",
    "env",
    "file",
    "folder",
    "function",
    "here",
    "login",
    "logout",
    "module",
    "object_store",
    "ondemand_cluster",
    "provider_secret",
    "run",
    "secret",
    "table",
]
