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

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from ._portal import _running_loop, check_loop, iter_sync, run_sync
from ._store import Resource, plain_name, save_config
from .wire.blocking import blocking_call
from .wire.client import STREAM_CREDIT, call_meta
from .wire.protocol import RH_GETATTR, RH_SETATTR, RH_VALUE

if TYPE_CHECKING:
    from ._runs import Run
    from .wire.client import Client


async def _await(awaitable: Any) -> Any:
    return await awaitable


class Reachable(Protocol):
    """All a stub needs of its cluster (a :class:`rhzmq.Cluster` is one): the stub layer never
    imports the cluster layer, which builds stubs."""

    name: str

    async def aclient(self) -> Client: ...

    async def acall(self, name: str, method: str, *args: Any, **kwargs: Any) -> Any: ...

    def config(self) -> dict[str, Any]: ...

    def connected_client(self) -> Client | None: ...

    def loop_client(self, loop: asyncio.AbstractEventLoop) -> Client | None: ...


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
        run_name: str | None = None,
        **kwargs: Any,
    ) -> Any:
        kind = self._kind
        if run_name is not None:  # a run the caller waits for (see rhzmq._runs)
            waited = self._run_and_wait(args, kwargs, run_name, timeout, stream_logs)
            if run_async or (kind in ("async", "agen") and run_async is None):
                return waited
            return run_sync(_await, waited, hint=lambda: self._hint(args))
        if kind == "gen" or kind == "agen":
            agen = self.aiter(*args, timeout=timeout, stream_logs=stream_logs, **kwargs)
            if run_async or (kind == "agen" and run_async is None):
                return agen
            return iter_sync(agen, hint=f"`async for x in {self._label}.aiter(...)`")
        if run_async or (kind == "async" and run_async is None):
            return self.acall(*args, timeout=timeout, stream_logs=stream_logs, **kwargs)
        client = self._connected()
        if client is not None:
            if _running_loop() is not None:
                check_loop(lambda: self._hint(args))
            return blocking_call(
                client,
                self._target,
                self._meta if stream_logs else self._meta_quiet,
                args,
                kwargs,
                self._label,
                timeout,
            )
        # First contact, reconnecting or a subclass's preparation: the portal does that work.
        return run_sync(
            self._call, args, kwargs, timeout, stream_logs, hint=lambda: self._hint(args)
        )

    def _connected(self, loop: asyncio.AbstractEventLoop | None = None) -> Client | None:
        """The client a call may use at once, or None when the call needs work first
        (connecting; a subclass's own preparation in ``_call``): ``loop``'s for an async call,
        else the portal's, which a blocking call uses from its own thread."""
        cluster = self._cluster
        return cluster.connected_client() if loop is None else cluster.loop_client(loop)

    async def acall(
        self, *args: Any, timeout: float | None = None, stream_logs: bool = True, **kwargs: Any
    ) -> Any:
        """Call remotely and await the result (any kind of remote callable but generators)."""
        client = self._connected(asyncio.get_running_loop())
        if client is None:  # first contact, reconnecting: the cluster does that work
            return await self._call(args, kwargs, timeout, stream_logs)
        # Not through _call: one coroutine less per call (docs/performance.md, round six).
        return await self._client_call(client, args, kwargs, timeout, stream_logs)

    async def _call(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        stream_logs: bool,
    ) -> Any:
        client = await self._cluster.aclient()
        return await self._client_call(client, args, kwargs, timeout, stream_logs)

    def _client_call(
        self,
        client: Client,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        stream_logs: bool,
    ) -> Coroutine[Any, Any, Any]:
        return client.call(
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

    async def arun(self, *args: Any, run_name: str | None = None, **kwargs: Any) -> Run:
        """Start the call as a run the cluster keeps (see :mod:`rhzmq._runs`) and return it at
        once: ``status()``, ``logs(follow=True)``, ``result()``, ``cancel()``, from any process
        (``rh.run(name)``). ``run_name`` defaults to a fresh unique name."""
        from ._runs import Run

        name = run_name or f"{self._label.replace('.', '-')}-{uuid.uuid4().hex[:8]}"
        return await Run.astart(
            self._cluster,  # type: ignore[arg-type]
            name,
            self._name,
            self._method,
            args,
            kwargs,
            self._label,
        )

    def run(self, *args: Any, run_name: str | None = None, **kwargs: Any) -> Run:
        """Blocking :meth:`arun`: start a run and return it without waiting for it."""
        return run_sync(
            self.arun, *args, run_name=run_name, hint="`await stub.arun(...)`", **kwargs
        )

    async def _run_and_wait(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        run_name: str,
        timeout: float | None,
        stream_logs: bool,
    ) -> Any:
        run = await self.arun(*args, run_name=run_name, **kwargs)
        return await run.aresult(timeout, stream_logs=stream_logs)

    async def aremote(self, *args: Any, run_name: str | None = None, **kwargs: Any) -> Any:
        """Call, and keep the result on the cluster under ``run_name`` (default: a unique name)
        instead of returning it; returns a stub of the kept result (Runhouse's
        ``method.remote(...)``). The result travels through this process once, to be put."""
        name = (
            plain_name(run_name)
            if run_name
            else f"{self._method or self._name}-{uuid.uuid4().hex[:8]}"
        )
        value = await self.acall(*args, **kwargs)
        await self._cluster.aput(name, value)  # type: ignore[attr-defined]
        return await self._cluster.aget(name, remote=True)  # type: ignore[attr-defined]

    def remote(self, *args: Any, run_name: str | None = None, **kwargs: Any) -> Any:
        return run_sync(
            self.aremote, *args, run_name=run_name, hint="`await stub.aremote(...)`", **kwargs
        )

    def __repr__(self) -> str:
        return f"<RemoteMethod {self._label} ({self._kind}) on {self._cluster.name!r}>"


class _ModuleResource(Resource):
    """The ``module`` resource type: configs of remote objects (``RemoteObject.config()``)."""

    resource_type = "module"

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Any:
        cluster = Resource.from_config(config["system"])
        return RemoteObject(cluster, config["name"], dict(config.get("info") or {}))


#: What a remote-object stub answers itself; every other attribute is the remote object's
#: (its methods as stubs, its other attributes read remotely). These are Runhouse's names for
#: the same things, so code written for Runhouse means the same here. A remote attribute or
#: method whose name is one of these is still reachable: ``obj.remote.<name>``.
#: ``tests/api/test_stub_names.py`` checks this set is exactly what the stub defines.
RESERVED = frozenset(
    {
        "name",  # the name the object is held under on the cluster
        "system",  # its cluster
        "remote",  # obj.remote.x reads (obj.remote.x = v sets) the remote attribute x
        "local",  # obj.local.x reads x of the local class or instance it was made from
        "fetch",  # fetch("x"): the remote x; fetch(): a copy of the whole object
        "fetch_async",
        "set_async",
        "rename",
        "arename",
        "config",  # the saved form (type "module")
        "save",
        "delete",
        "adelete",
        # rhzmq's earlier spellings, kept working:
        "rh_name",
        "rh_config",
        "rh_save",
        "rh_agetattr",
    }
)


class _RemoteAttributes:
    """``obj.remote``: attribute reads and writes that always go to the remote object."""

    __slots__ = ("_obj",)

    def __init__(self, obj: RemoteObject) -> None:
        object.__setattr__(self, "_obj", obj)

    def __getattr__(self, attr: str) -> Any:
        obj: RemoteObject = self._obj
        stub = obj._rh_method(attr)
        if stub is not None:
            return stub
        return run_sync(obj.fetch_async, attr, hint=f"`await obj.fetch_async({attr!r})`")

    def __setattr__(self, attr: str, value: Any) -> None:
        obj: RemoteObject = self._obj
        run_sync(obj.set_async, attr, value, hint=f"`await obj.set_async({attr!r}, value)`")


class _LocalAttributes:
    """``obj.local``: attributes of the local class or instance the remote object came from."""

    __slots__ = ("_local",)

    def __init__(self, local: Any) -> None:
        object.__setattr__(self, "_local", local)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._local, attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(self._local, attr, value)


def local_method(local: Any, attr: str) -> Any:
    """``local``'s method ``attr`` when it is meant to run locally (Runhouse's rule: its ``local``
    parameter defaults to True), else None."""
    if local is None or attr.startswith("_"):
        return None
    fn = getattr(local, attr, None)
    if not callable(fn):
        return None
    try:
        param = inspect.signature(fn).parameters.get("local")
    except (TypeError, ValueError):
        return None
    if param is not None and param.default is True:
        return fn
    return None


class RemoteObject:
    """A named object living on a cluster; see the module docstring and :data:`RESERVED`."""

    _rh_fields = ("_rh_cluster", "_rh_name", "_rh_info", "_rh_methods", "_rh_local")

    def __init__(
        self, cluster: Reachable, name: str, info: dict[str, Any], local: Any = None
    ) -> None:
        object.__setattr__(self, "_rh_cluster", cluster)
        object.__setattr__(self, "_rh_name", name)
        object.__setattr__(self, "_rh_info", info)
        object.__setattr__(self, "_rh_methods", {})
        object.__setattr__(self, "_rh_local", local)  # the class or instance it was made from

    @property
    def name(self) -> str:
        """The name the object is held under on the cluster."""
        return self._rh_name  # type: ignore[no-any-return]

    rh_name = name

    @property
    def system(self) -> Reachable:
        """The cluster the object lives on."""
        return self._rh_cluster  # type: ignore[no-any-return]

    @property
    def remote(self) -> Any:
        """``obj.remote.x`` reads the remote attribute ``x`` (a method gives its stub);
        ``obj.remote.x = v`` sets it."""
        return _RemoteAttributes(self)

    @property
    def local(self) -> Any:
        """``obj.local.x``: ``x`` of the local class or instance this object was made from."""
        if self._rh_local is None:
            raise AttributeError(
                f"remote object {self._rh_name!r} was not made from a local class or instance "
                "in this process (it was loaded by name), so it has no local attributes"
            )
        return _LocalAttributes(self._rh_local)

    def _rh_method(self, attr: str) -> RemoteMethod | None:
        methods: dict[str, RemoteMethod] = self._rh_methods
        stub = methods.get(attr)
        if stub is None:
            kind = self._rh_info.get("methods", {}).get(attr)
            if kind is None:
                return None
            stub = methods[attr] = RemoteMethod(
                self._rh_cluster, self._rh_name, attr, kind, f"{self._rh_name}.{attr}"
            )
        return stub

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        if attr in RESERVED:  # a property raised AttributeError: show its message, not a remote one
            return object.__getattribute__(self, attr)
        fn = local_method(self._rh_local, attr)
        if fn is not None:
            return fn
        stub = self._rh_method(attr)
        if stub is not None:
            return stub
        return run_sync(
            self.fetch_async, attr, hint=f"`await {self._rh_name}.fetch_async({attr!r})`"
        )

    async def fetch_async(self, key: str | None = None, **_: Any) -> Any:
        """The remote attribute ``key`` (a copy), or with no key a copy of the whole object."""
        if key is None:
            return await self._rh_cluster.acall(self._rh_name, RH_VALUE)
        try:
            return await self._rh_cluster.acall(self._rh_name, RH_GETATTR, key)
        except AttributeError:
            if key == "name":  # Runhouse's modules know their name; a plain class may not
                return self._rh_name
            raise

    rh_agetattr = fetch_async

    def fetch(self, key: str | None = None, **kwargs: Any) -> Any:
        """``fetch("x")``: the remote attribute ``x``; ``fetch()``: a copy of the object."""
        return run_sync(self.fetch_async, key, hint="`await obj.fetch_async(key)`", **kwargs)

    async def set_async(self, key: str, value: Any) -> None:
        """Set the remote attribute ``key``."""
        await self._rh_cluster.acall(self._rh_name, RH_SETATTR, key, value)

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr in RESERVED:
            raise AttributeError(
                f"{attr!r} is a name the stub answers itself; set the remote attribute with "
                f"obj.remote.{attr} = value"
            )
        run_sync(self.set_async, attr, value, hint=f"`await obj.set_async({attr!r}, value)`")

    async def arename(self, name: str) -> RemoteObject:
        """Hold the object under ``name`` instead (the same object: its state and calls in
        flight stay; the old name is gone)."""
        name = plain_name(name)
        await self._rh_cluster.arename(self._rh_name, name)
        object.__setattr__(self, "_rh_name", name)
        object.__setattr__(self, "_rh_methods", {})
        return self

    def rename(self, name: str) -> RemoteObject:
        return run_sync(self.arename, name, hint="`await obj.arename(name)`")

    async def adelete(self) -> None:
        """Delete the object from its cluster."""
        await self._rh_cluster.adelete(self._rh_name)

    def delete(self) -> None:
        run_sync(self.adelete, hint="`await obj.adelete()`")

    def config(self) -> dict[str, Any]:
        """This remote object as a saved resource of type ``module`` (see rhzmq._store)."""
        return {
            "type": "module",
            "name": self._rh_name,
            "system": self._rh_cluster.config(),
            "info": self._rh_info,
        }

    rh_config = config

    def save(self, name: str | None = None) -> RemoteObject:
        """Save to the local store: ``rh.module(name=...)`` in another process gets it back
        (``name`` renames the object on the cluster first)."""
        if name is not None and plain_name(name) != self._rh_name:
            self.rename(name)
        save_config(self.config())
        return self

    rh_save = save

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
            {*self._rh_info.get("methods", {}), *self._rh_info.get("attributes", ()), *RESERVED}
        )

    def __repr__(self) -> str:
        return f"<RemoteObject {self._rh_name!r} ({self._rh_info.get('qualname', '?')}) on {self._rh_cluster.name!r}>"
