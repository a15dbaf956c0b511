"""Resources users send to clusters: functions (``rh.function``) and classes (``rh.module``).

``rh.function(f).to(cluster)`` ships ``f`` (by import path when importable, else by value) to the
cluster's default worker under ``f.__name__`` and returns a callable stub. ``rh.module(Cls)`` wraps
a class; ``.to(cluster)`` gives a remote class whose calls construct instances *on the worker*,
each held under a name. Subclassing :class:`Module` is the other way in: an instance's ``.to()``
ships that instance, state included.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ._portal import run_sync
from ._store import Resource, load_config
from ._stubs import RemoteMethod, RemoteObject
from ._tasks import first_error
from .wire.code import code_ref, construct_spec, load_code, object_spec

if TYPE_CHECKING:
    from ._env import Env
    from .clusters import Cluster


class _Progress:
    """A one-line progress bar on stderr, redrawn with ``\\r`` at most ten times a second."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.start = time.monotonic()
        self.drawn = 0.0

    def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.drawn >= 0.1 or self.done == self.total:
            self.drawn = now
            width = 30
            filled = width * self.done // max(self.total, 1)
            rate = self.done / max(now - self.start, 1e-9)
            sys.stderr.write(
                f"\r{self.label}.map [{'#' * filled}{' ' * (width - filled)}] "
                f"{self.done}/{self.total} {rate:,.0f}/s"
            )
            sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


class Function(Resource):
    """A function, local until ``.to(cluster)``; then calls run remotely (see :mod:`rhzmq._stubs`)."""

    resource_type = "function"

    def __init__(self, fn: Callable[..., Any] | None = None, name: str | None = None) -> None:
        if fn is not None and not callable(fn):
            raise TypeError(f"rh.function() needs a function, got {type(fn).__name__}")
        if fn is None and name is None:
            raise TypeError(
                "rh.function() needs a function (or the name of one already on a cluster)"
            )
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", "function"))
        self.cluster: Cluster | None = None
        self.info: dict[str, Any] = {}
        self._stub: RemoteMethod | None = None

    @classmethod
    def _bound(
        cls, cluster: Cluster, name: str, info: dict[str, Any], fn: Callable[..., Any] | None = None
    ) -> Function:
        bound = cls(fn, name)
        bound.cluster = cluster
        bound.info = info
        bound._stub = RemoteMethod(cluster, name, "", str(info.get("call") or "sync"), name)
        return bound

    async def ato(
        self,
        cluster: Cluster,
        *,
        name: str | None = None,
        env: Env | None = None,
        replicas: int = 1,
        max_concurrency: int | None = None,
    ) -> Function:
        if self.fn is None:
            raise TypeError(f"function {self.name!r} has no local code to send")
        name = name or self.name
        info = await cluster.aplace(name, object_spec(self.fn), env, replicas, max_concurrency)
        return Function._bound(cluster, name, info, self.fn)

    def to(
        self,
        cluster: Cluster,
        *,
        name: str | None = None,
        env: Env | None = None,
        replicas: int = 1,
        max_concurrency: int | None = None,
    ) -> Function:
        """Send the function to ``cluster`` and return the stub.

        ``name`` defaults to the function's name; ``env`` places it in that environment's
        workers; ``replicas`` runs that many worker processes, each call going to the least
        loaded; ``max_concurrency`` bounds the calls running at once in one worker.
        """
        return run_sync(
            self.ato,
            cluster,
            name=name,
            env=env,
            replicas=replicas,
            max_concurrency=max_concurrency,
            hint="`await rh.function(f).ato(cluster)`",
        )

    async def astarmap(
        self,
        iterable: Iterable[Sequence[Any]],
        *,
        max_in_flight: int = 64,
        progress: bool | None = None,
    ) -> list[Any]:
        """Call with each item's arguments, at most ``max_in_flight`` at once; results in input order.

        The first failure cancels the calls still running and is re-raised, with a note naming
        the failing item's index. ``progress`` (default: for 100 items or more) draws a bar on
        stderr.
        """
        stub = self._remote()
        items = list(iterable)
        results: list[Any] = [None] * len(items)
        bar = (
            _Progress(self.name, len(items))
            if (progress or (progress is None and len(items) >= 100))
            else None
        )
        slots = anyio.Semaphore(max_in_flight)

        async def one(index: int) -> None:
            try:
                results[index] = await stub.acall(*items[index])
            except Exception as exc:
                exc.add_note(f"rhzmq: {self.name}.map stopped at item {index}: {items[index]!r}")
                raise
            finally:
                slots.release()
            if bar is not None:
                bar.advance()

        # One task per item, at most max_in_flight at once; the first failure cancels the rest
        # (their remote calls are cancelled with them) and is raised as itself.
        try:
            async with anyio.create_task_group() as tg:
                for index in range(len(items)):
                    await slots.acquire()
                    tg.start_soon(one, index)
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        finally:
            if bar is not None:
                bar.close()
        return results

    async def amap(self, iterable: Iterable[Any], **kwargs: Any) -> list[Any]:
        """``astarmap`` with one argument per item."""
        return await self.astarmap(((x,) for x in iterable), **kwargs)

    def map(
        self, iterable: Iterable[Any], *, max_in_flight: int = 64, progress: bool | None = None
    ) -> list[Any]:
        """Call once per item across the replicas; results in input order (see ``astarmap``)."""
        return run_sync(
            self.amap,
            iterable,
            max_in_flight=max_in_flight,
            progress=progress,
            hint="`await fn.amap(items)`",
        )

    def starmap(
        self,
        iterable: Iterable[Sequence[Any]],
        *,
        max_in_flight: int = 64,
        progress: bool | None = None,
    ) -> list[Any]:
        """Like ``map`` with each item unpacked as the call's arguments."""
        return run_sync(
            self.astarmap,
            iterable,
            max_in_flight=max_in_flight,
            progress=progress,
            hint="`await fn.astarmap(items)`",
        )

    def _remote(self) -> RemoteMethod:
        if self._stub is None:
            raise RuntimeError(
                f"function {self.name!r} is not on a cluster yet: call .to(cluster) first"
            )
        return self._stub

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._stub is None and self.fn is not None:
            return self.fn(*args, **kwargs)  # not sent anywhere: a plain local call
        return self._remote()(*args, **kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Call remotely from async code."""
        return await self._remote().acall(*args, **kwargs)

    def aiter(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Stream a remote generator function's items from async code."""
        return self._remote().aiter(*args, **kwargs)

    def config(self) -> dict[str, Any]:
        """The function's name, where it runs (the cluster's config) and how to call it; a
        function not sent anywhere yet is saved by import path."""
        config: dict[str, Any] = {"type": "function", "name": self.name}
        if self.cluster is not None:
            config["system"] = self.cluster.config()
            config["call"] = self.info.get("call") or "sync"
        elif self.fn is not None:
            ref = code_ref(self.fn)
            if "pickled" in ref:
                raise ValueError(
                    f"function {self.name!r} is not importable (defined in __main__ or a "
                    "closure): send it to a cluster first, then save the remote function"
                )
            config["code"] = ref
        return config

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Function:
        fn = load_code(config["code"]) if config.get("code") else None
        if config.get("system"):
            cluster = Resource.from_config(config["system"])
            return cls._bound(cluster, config["name"], {"call": config.get("call")}, fn)
        return cls(fn, config["name"])

    def __repr__(self) -> str:
        where = f" on {self.cluster.name!r}" if self.cluster else " (local)"
        return f"<Function {self.name!r}{where}>"


def function(fn: Callable[..., Any] | None = None, name: str | None = None) -> Function:
    """Wrap a function so it can be sent to a cluster: ``rh.function(f).to(cluster)``;
    ``rh.function(name="train")`` loads the function saved under that name (``fn.save()``)."""
    if fn is None and name is not None:
        return Function.from_config(load_config(name, "function"))  # type: ignore[no-any-return]
    return Function(fn, name)


class ModuleClass:
    """A class, local until ``.to(cluster)``; then calling it constructs instances remotely."""

    def __init__(
        self, cls: type, cluster: Cluster | None = None, env: Env | None = None, replicas: int = 1
    ) -> None:
        if not isinstance(cls, type):
            raise TypeError(f"rh.module() needs a class, got {type(cls).__name__}")
        self.cls = cls
        self.cluster = cluster
        self.env = env
        self.replicas = replicas
        self.__doc__ = cls.__doc__

    def to(self, cluster: Cluster, *, env: Env | None = None, replicas: int = 1) -> ModuleClass:
        """Bind the class to ``cluster``: instances made from the result live there (in ``env``;
        with ``replicas``, one instance per replica worker behind one name)."""
        return ModuleClass(self.cls, cluster, env, replicas)

    async def anew(
        self, *args: Any, name: str | None = None, max_concurrency: int | None = None, **kwargs: Any
    ) -> RemoteObject:
        """Construct an instance on the cluster from async code."""
        if self.cluster is None:
            raise RuntimeError(
                f"{self.cls.__name__} is not bound to a cluster: use rh.module(cls).to(cluster)"
            )
        name = name or f"{self.cls.__name__.lower()}-{uuid.uuid4().hex[:8]}"
        info = await self.cluster.aplace(
            name, construct_spec(self.cls, args, kwargs), self.env, self.replicas, max_concurrency
        )
        return RemoteObject(self.cluster, name, info)

    def __call__(
        self, *args: Any, name: str | None = None, max_concurrency: int | None = None, **kwargs: Any
    ) -> Any:
        """Construct an instance on the cluster, held under ``name`` (default: a unique one)."""
        if self.cluster is None:
            return self.cls(*args, **kwargs)
        return run_sync(
            self._new,
            args,
            kwargs,
            name,
            max_concurrency,
            hint=f"`await {self.cls.__name__}.anew(...)`",
        )

    async def _new(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
        max_concurrency: int | None,
    ) -> RemoteObject:
        return await self.anew(*args, name=name, max_concurrency=max_concurrency, **kwargs)

    def __repr__(self) -> str:
        where = f" on {self.cluster.name!r}" if self.cluster else " (local)"
        return f"<ModuleClass {self.cls.__qualname__}{where}>"


def module(cls: type | None = None, name: str | None = None) -> Any:
    """Wrap a class so its instances can live on a cluster: ``rh.module(Cls).to(cluster)``;
    ``rh.module(name="counter")`` loads the remote object saved under that name."""
    if cls is None:
        if name is None:
            raise TypeError("rh.module() needs a class (or the name of a saved remote object)")
        return Resource.from_config(load_config(name, "module"))
    return ModuleClass(cls)


class Module:
    """Base class for classes meant to live remotely.

    ``rh.module(MyModule).to(cluster)(args, name=...)`` constructs on the cluster; an existing
    instance goes there, state included, with ``instance.to(cluster, name=...)``.
    """

    async def ato(self, cluster: Cluster, *, name: str | None = None) -> RemoteObject:
        name = name or f"{type(self).__name__.lower()}-{uuid.uuid4().hex[:8]}"
        info = await cluster.aput_spec(name, object_spec(self, by_ref=False))
        return RemoteObject(cluster, name, info)

    def to(self, cluster: Cluster, *, name: str | None = None) -> RemoteObject:
        """Send this instance (pickled, state included) to ``cluster`` under ``name``."""
        return run_sync(self.ato, cluster, name=name, hint="`await instance.ato(cluster)`")
