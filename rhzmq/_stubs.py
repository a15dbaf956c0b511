"""Stubs: local objects whose calls run remotely.

* :class:`RemoteMethod` — one callable (a function object, or a method of a remote object). How a
  call behaves follows the remote definition's kind:

  ====================  ===========================  ==================================
  remote definition     ``stub(...)``                 ``stub(..., run_async=True)``
  ====================  ===========================  ==================================
  ``def``               blocks, returns the result    an awaitable
  ``async def``         an awaitable                  (same)
  generator             a sync iterator (streamed)    an async iterator
  async generator       an async iterator             (same)
  ====================  ===========================  ==================================

  ``await stub.acall(...)`` always works from async code; ``run_async=False`` forces blocking.
  Every call takes ``timeout=`` (seconds, raises CallTimeout) and ``stream_logs=`` (default True).
* :class:`RemoteObject` — a named remote object: attribute access gives RemoteMethods for its
  methods and fetches plain attributes remotely; ``obj.attr = v`` sets them remotely.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from ._portal import iter_sync, run_sync
from ._store import Resource, save_config
from .wire.client import STREAM_CREDIT, call_meta
from .wire.protocol import RH_GETATTR, RH_SETATTR

if TYPE_CHECKING:
    from .wire.client import Client


class Reachable(Protocol):
    """All a stub needs of its cluster (a :class:`rhzmq.Cluster` is one): the stub layer never
    imports the cluster layer, which builds stubs."""

    name: str

    async def aclient(self) -> Client: ...

    async def acall(self, name: str, method: str, *args: Any, **kwargs: Any) -> Any: ...

    def config(self) -> dict[str, Any]: ...


class RemoteMethod:
    """A remote callable; see the module docstring for how calls behave."""

    def __init__(self, cluster: Reachable, name: str, method: str, kind: str, label: str) -> None:
        self._cluster = cluster
        self._name = name
        self._method = method
        self._kind = kind
        self._label = label
        self._target = name.encode()
        self._meta = call_meta(method)
        self._meta_quiet = call_meta(method, stream_logs=False)
        self._meta_stream = call_meta(method, credit=STREAM_CREDIT)
        self._meta_stream_quiet = call_meta(method, stream_logs=False, credit=STREAM_CREDIT)

    def _hint(self, args: tuple[Any, ...]) -> str:
        shown = ", ".join(repr(a) for a in args[:3]) + (", ..." if len(args) > 3 else "")
        return f"`await {self._label}.acall({shown})` (or pass run_async=True)"

    def __call__(
        self,
        *args: Any,
        run_async: bool | None = None,
        timeout: float | None = None,
        stream_logs: bool = True,
        **kwargs: Any,
    ) -> Any:
        kind = self._kind
        if kind == "gen" or kind == "agen":
            agen = self.aiter(*args, timeout=timeout, stream_logs=stream_logs, **kwargs)
            if run_async or (kind == "agen" and run_async is None):
                return agen
            return iter_sync(agen, hint=f"`async for x in {self._label}.aiter(...)`")
        if run_async or (kind == "async" and run_async is None):
            return self.acall(*args, timeout=timeout, stream_logs=stream_logs, **kwargs)
        return run_sync(
            self._call, args, kwargs, timeout, stream_logs, hint=lambda: self._hint(args)
        )

    async def acall(
        self, *args: Any, timeout: float | None = None, stream_logs: bool = True, **kwargs: Any
    ) -> Any:
        """Call remotely and await the result (any kind of remote callable but generators)."""
        return await self._call(args, kwargs, timeout, stream_logs)

    async def _call(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        stream_logs: bool,
    ) -> Any:
        client = await self._cluster.aclient()
        return await client.call(
            self._target,
            self._meta if stream_logs else self._meta_quiet,
            args,
            kwargs,
            label=self._label,
            timeout=timeout,
        )

    def aiter(
        self, *args: Any, timeout: float | None = None, stream_logs: bool = True, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Stream a generator's items: ``async for item in stub.aiter(...)``."""
        return self._stream(args, kwargs, timeout, stream_logs)

    async def _stream(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        stream_logs: bool,
    ) -> AsyncIterator[Any]:
        client = await self._cluster.aclient()
        async for item in client.stream(
            self._target,
            self._meta_stream if stream_logs else self._meta_stream_quiet,
            args,
            kwargs,
            label=self._label,
            timeout=timeout,
        ):
            yield item

    def __repr__(self) -> str:
        return f"<RemoteMethod {self._label} ({self._kind}) on {self._cluster.name!r}>"


class _ModuleResource(Resource):
    """The ``module`` resource type: configs of remote objects (``RemoteObject.rh_config``)."""

    resource_type = "module"

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Any:
        cluster = Resource.from_config(config["system"])
        return RemoteObject(cluster, config["name"], dict(config.get("info") or {}))


class RemoteObject:
    """A named object living on a cluster; see the module docstring."""

    _rh_fields = ("_rh_cluster", "_rh_name", "_rh_info", "_rh_methods")

    def __init__(self, cluster: Reachable, name: str, info: dict[str, Any]) -> None:
        object.__setattr__(self, "_rh_cluster", cluster)
        object.__setattr__(self, "_rh_name", name)
        object.__setattr__(self, "_rh_info", info)
        object.__setattr__(self, "_rh_methods", {})

    @property
    def rh_name(self) -> str:
        """The name the object is held under on the cluster."""
        return self._rh_name  # type: ignore[no-any-return]

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        methods: dict[str, RemoteMethod] = self._rh_methods
        stub = methods.get(attr)
        if stub is not None:
            return stub
        kind = self._rh_info.get("methods", {}).get(attr)
        if kind is not None:
            stub = methods[attr] = RemoteMethod(
                self._rh_cluster, self._rh_name, attr, kind, f"{self._rh_name}.{attr}"
            )
            return stub
        return run_sync(
            self.rh_agetattr, attr, hint=f"`await {self._rh_name}.rh_agetattr({attr!r})`"
        )

    def rh_config(self) -> dict[str, Any]:
        """This remote object as a saved resource of type ``module`` (see rhzmq._store).

        The ``rh_`` names leave ``config``/``save`` free for the remote object's own methods."""
        return {
            "type": "module",
            "name": self._rh_name,
            "system": self._rh_cluster.config(),
            "info": self._rh_info,
        }

    def rh_save(self) -> RemoteObject:
        """Save to the local store: ``rh.module(name=...)`` in another process gets it back."""
        save_config(self.rh_config())
        return self

    async def rh_agetattr(self, attr: str) -> Any:
        """Read a remote attribute from async code."""
        return await self._rh_cluster.acall(self._rh_name, RH_GETATTR, attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        run_sync(
            self._rh_cluster.acall,
            self._rh_name,
            RH_SETATTR,
            attr,
            value,
            hint=f"`await cluster.acall({self._rh_name!r}, '__rh_setattr__', {attr!r}, value)`",
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kind = self._rh_info.get("call")
        if not kind:
            raise TypeError(
                f"remote object {self._rh_name!r} ({self._rh_info.get('qualname')}) is not callable"
            )
        return RemoteMethod(self._rh_cluster, self._rh_name, "__call__", kind, self._rh_name)(
            *args, **kwargs
        )

    def __dir__(self) -> list[str]:
        return sorted(
            {*self._rh_info.get("methods", {}), *self._rh_info.get("attributes", ()), "rh_name"}
        )

    def __repr__(self) -> str:
        return f"<RemoteObject {self._rh_name!r} ({self._rh_info.get('qualname', '?')}) on {self._rh_cluster.name!r}>"
