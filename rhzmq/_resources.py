"""Resources users send to clusters: functions (``rh.function``) and classes (``rh.module``).

``rh.function(f).to(cluster)`` ships ``f`` (by import path when importable, else by value) to the
cluster's default worker under ``f.__name__`` and returns a callable stub. ``rh.module(Cls)`` wraps
a class; ``.to(cluster)`` gives a remote class whose calls construct instances *on the worker*,
each held under a name. Subclassing :class:`Module` is the other way in: an instance's ``.to()``
ships that instance, state included.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ._env import Env, EnvLike, _system, as_env
from ._portal import run_sync
from ._progress import Progress
from ._store import Resource, plain_name
from ._stubs import RemoteMethod, RemoteObject, _ModuleResource, local_method
from ._tasks import first_error, gather
from .wire.code import call_kind, code_ref, construct_spec, load_code, object_spec

if TYPE_CHECKING:
    from ._runs import Run
    from .clusters import Cluster
    from .wire.client import Client


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
        self.name: str = plain_name(name) if name else str(getattr(fn, "__name__", "function"))
        self.cluster: Cluster | None = None
        self.info: dict[str, Any] = {}
        self._stub: RemoteMethod | None = None
        self._object = self.name  # its name on the cluster (a later save() may rename it)
        self._env: Env | None = None  # the env it was sent to (replicate() copies it)

    @classmethod
    def _bound(
        cls, cluster: Cluster, name: str, info: dict[str, Any], fn: Callable[..., Any] | None = None
    ) -> Function:
        bound = cls(fn, name)
        bound.cluster = cluster
        bound.info = info
        bound._stub = RemoteMethod(cluster, name, "", str(info.get("call") or "sync"), name)
        bound._object = name
        return bound

    async def ato(
        self,
        cluster: Cluster | None = None,
        env: EnvLike = None,
        *,
        name: str | None = None,
        replicas: int = 1,
        max_concurrency: int | None = None,
        force_install: bool = False,
        system: Cluster | None = None,
    ) -> Function:
        if self.fn is None:
            raise TypeError(f"function {self.name!r} has no local code to send")
        target = _system(cluster, system)
        name = plain_name(name) if name else self.name
        env = as_env(env)
        info = await target.aplace(
            name, object_spec(self.fn), env, replicas, max_concurrency, force_install
        )
        bound = Function._bound(target, name, info, self.fn)
        bound._env = env
        return bound

    def to(
        self,
        cluster: Cluster | None = None,
        env: EnvLike = None,
        *,
        name: str | None = None,
        replicas: int = 1,
        max_concurrency: int | None = None,
        force_install: bool = False,
        system: Cluster | None = None,
    ) -> Function:
        """Send the function to ``cluster`` and return the stub.

        ``name`` defaults to the function's name; ``env`` places it in that environment's
        workers (an ``rh.env``, a list of requirements or an env's name); ``replicas`` runs
        that many worker processes, each call going to the least loaded; ``max_concurrency``
        bounds the calls running at once in one worker; ``force_install`` restarts the env's
        workers. ``system=`` is Runhouse's name for ``cluster``.
        """
        return run_sync(
            self.ato,
            cluster,
            env,
            name=name,
            replicas=replicas,
            max_concurrency=max_concurrency,
            force_install=force_install,
            system=system,
            hint="`await rh.function(f).ato(cluster)`",
        )

    async def aget_or_to(
        self,
        cluster: Cluster | None = None,
        env: EnvLike = None,
        *,
        name: str | None = None,
        system: Cluster | None = None,
        **kwargs: Any,
    ) -> Function:
        target = _system(cluster, system)
        existing = await target.aget(plain_name(name) if name else self.name, remote=True)
        if isinstance(existing, Function):
            existing.fn = self.fn
            return existing
        return await self.ato(target, env, name=name, **kwargs)

    def get_or_to(
        self,
        cluster: Cluster | None = None,
        env: EnvLike = None,
        *,
        name: str | None = None,
        system: Cluster | None = None,
        **kwargs: Any,
    ) -> Function:
        """The function already on the cluster under ``name`` (from an earlier ``.to()``, maybe
        another process's), else ``.to()`` (Runhouse's ``get_or_to``)."""
        return run_sync(
            self.aget_or_to,
            cluster,
            env,
            name=name,
            system=system,
            **kwargs,
            hint="`await fn.aget_or_to(cluster)`",
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
            Progress(f"{self.name}.map", len(items))
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
        # A coroutine function, not a method returning the stub's coroutine (a level less per
        # call): frameworks tell handlers apart with inspect.iscoroutinefunction, and an
        # unplaced function's error belongs to the await, as for any async def.
        return await self._remote().acall(*args, **kwargs)

    def aiter(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Stream a remote generator function's items from async code."""
        return self._remote().aiter(*args, **kwargs)

    @property
    def system(self) -> Cluster | None:
        """The cluster the function was sent to (Runhouse's name for :attr:`cluster`)."""
        return self.cluster

    @property
    def call(self) -> RemoteMethod:
        """The remote call itself, as Runhouse's ``fn.call``: ``fn.call(...)``,
        ``fn.call.remote(...)`` (the result kept on the cluster), ``fn.call.run(...)``."""
        return self._remote()

    async def areplicate(
        self,
        num_replicas: int = 1,
        names: Sequence[str] | None = None,
        envs: Sequence[EnvLike] | None = None,
        *,
        replicas: int | None = None,
    ) -> list[Function]:
        if self.cluster is None or self.fn is None:
            raise RuntimeError(
                f"function {self.name!r} must be sent to a cluster from this process before "
                "it can be replicated: .to(cluster) first"
            )
        count = replicas if replicas is not None else num_replicas
        if count < 1:
            raise ValueError(f"replicate() needs at least one replica, got {count}")
        names = list(names or [f"{self.name}_replica_{i}" for i in range(count)])
        given = list(envs or [])
        base = self._env.config() if self._env is not None else {"type": "env"}
        targets = [
            as_env(given[i])
            if i < len(given)
            else Env.from_config({**base, "name": f"{self.name}_replica_{i}"})
            for i in range(count)
        ]
        cluster = self.cluster
        return list(
            await gather(
                *(self.ato(cluster, env, name=n) for n, env in zip(names, targets, strict=True))
            )
        )

    def replicate(
        self,
        num_replicas: int = 1,
        names: Sequence[str] | None = None,
        envs: Sequence[EnvLike] | None = None,
        parallel: bool = False,
        *,
        replicas: int | None = None,
    ) -> list[Function]:
        """Runhouse's ``replicate``: ``num_replicas`` copies of the function, each in its own
        env's worker process (``names``/``envs`` name them), returned as separate stubs.
        (``.to(cluster, replicas=n)`` is rhzmq's own way: one name, calls spread over the
        replicas.) ``parallel`` is accepted; the copies are always sent concurrently."""
        return run_sync(
            self.areplicate,
            num_replicas,
            names,
            envs,
            replicas=replicas,
            hint="`await fn.areplicate(n)`",
        )

    async def arun(self, *args: Any, run_name: str | None = None, **kwargs: Any) -> Run:
        """Start a call the cluster keeps and return its :class:`~rhzmq.Run` at once (see
        :mod:`rhzmq._runs`): ``status()``, ``logs(follow=True)``, ``result()``, ``cancel()``,
        from any process with ``rh.run(run_name)``."""
        return await self._remote().arun(*args, run_name=run_name, **kwargs)

    def run(self, *args: Any, run_name: str | None = None, **kwargs: Any) -> Run:
        """Blocking :meth:`arun` (it returns once the run started, not when it ends)."""
        return self._remote().run(*args, run_name=run_name, **kwargs)

    def endpoint(self) -> str:
        """The function's URL on the cluster's HTTP gateway (Runhouse's ``endpoint()``): POST
        ``{"args": [...], "kwargs": {...}}`` to it, or ``{"data": {...}}`` to ``<url>/call``, with
        ``cluster.gateway_headers()``."""
        if self.cluster is None or not self.cluster.gateway_url:
            raise RuntimeError(
                f"function {self.name!r} has no HTTP endpoint: send it to a cluster whose "
                "gateway runs (.to(cluster))"
            )
        return f"{self.cluster.gateway_url}/{self._object}"

    http_url = endpoint

    def config(self) -> dict[str, Any]:
        """The function's name, where it runs (the cluster's config) and how to call it; a
        function not sent anywhere yet is saved by import path."""
        config: dict[str, Any] = {"type": "function", "name": self.name}
        if self.cluster is not None:
            config["system"] = self.cluster.config()
            config["call"] = self.info.get("call") or "sync"
            config["object"] = self._object  # saved under another name: still this object
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
            obj = str(config.get("object") or config["name"])
            bound = cls._bound(cluster, obj, {"call": config.get("call")}, fn)
            bound.name = config["name"]
            return bound
        return cls(fn, config["name"])

    def __repr__(self) -> str:
        where = f" on {self.cluster.name!r}" if self.cluster else " (local)"
        return f"<Function {self.name!r}{where}>"


def function(
    fn: Callable[..., Any] | None = None,
    name: str | None = None,
    system: Cluster | None = None,
    env: EnvLike = None,
) -> Function:
    """Wrap a function so it can be sent to a cluster: ``rh.function(f).to(cluster)``;
    ``rh.function(name="train")`` loads the function saved under that name (``fn.save()``).
    Runhouse's ``rh.function(f, system=cluster, env=...)`` sends it at once."""
    if fn is None and name is not None:
        return Function.load(name)  # type: ignore[no-any-return]
    wrapped = Function(fn, name)
    if system is not None:
        return wrapped.to(system, env)
    return wrapped


def _instance_name(cls: type, name: str | None) -> str:
    """The name a remote instance is held under: the one given, else a unique one."""
    return plain_name(name) if name else f"{cls.__name__.lower()}-{uuid.uuid4().hex[:8]}"


class Module:
    """Base class for classes meant to live remotely.

    ``rh.module(MyModule).to(cluster)(args, name=...)`` constructs on the cluster; an existing
    instance goes there, state included, with ``instance.to(cluster, name=...)`` (held under
    the class's name unless given one, as in Runhouse).
    """

    def __init__(
        self, env: EnvLike = None, name: str | None = None, system: Cluster | None = None
    ) -> None:
        # Runhouse's Module(env=, name=, system=): defaults for a later .to(). Private names,
        # so they never collide with the subclass's own attributes.
        self._rh_to = {"env": env, "name": name, "system": system}

    def _rh_payload(self) -> Any:
        """What ``.to()`` sends: the instance itself (a wrapper sends what it wraps)."""
        return self

    def _rh_default(self, key: str) -> Any:
        return (self.__dict__.get("_rh_to") or {}).get(key)

    def _rh_default_name(self) -> str:
        return str(self._rh_default("name") or type(self._rh_payload()).__name__)

    async def ato(
        self,
        cluster: Cluster | None = None,
        env: EnvLike = None,
        name: str | None = None,
        *,
        system: Cluster | None = None,
    ) -> RemoteObject:
        target = _system(cluster, system or self._rh_default("system"))
        obj = self._rh_payload()
        name = plain_name(name) if name else self._rh_default_name()
        env = env if env is not None else self._rh_default("env")
        info = await target.aplace(name, object_spec(obj, by_ref=False), as_env(env))
        return RemoteObject(target, name, info, local=obj)

    def to(
        self,
        cluster: Cluster | None = None,
        env: EnvLike = None,
        name: str | None = None,
        *,
        system: Cluster | None = None,
    ) -> RemoteObject:
        """Send this instance (pickled, state included) to ``cluster`` under ``name`` (in
        ``env``'s workers if given); Runhouse's ``Module.to(system, env=None, name=None)``."""
        return run_sync(
            self.ato, cluster, env, name, system=system, hint="`await instance.ato(cluster)`"
        )

    async def aget_or_to(
        self,
        cluster: Cluster | None = None,
        env: EnvLike = None,
        name: str | None = None,
        *,
        system: Cluster | None = None,
    ) -> RemoteObject:
        target = _system(cluster, system or self._rh_default("system"))
        name = plain_name(name) if name else self._rh_default_name()
        existing = await target.aget(name, remote=True)
        if isinstance(existing, RemoteObject):
            object.__setattr__(existing, "_rh_local", self._rh_payload())
            return existing
        return await self.ato(target, env, name)

    def get_or_to(
        self,
        cluster: Cluster | None = None,
        env: EnvLike = None,
        name: str | None = None,
        *,
        system: Cluster | None = None,
    ) -> RemoteObject:
        """The object already held under ``name`` on the cluster (its state as it is there),
        else ``.to()``."""
        return run_sync(
            self.aget_or_to, cluster, env, name, system=system, hint="`await obj.aget_or_to(c)`"
        )


class LocalModule(Module):
    """An instance made from an unbound ``rh.module(Cls)``: used here like the instance itself,
    and ``.to(cluster)`` sends it, state included (Runhouse's ``rh.module(Cls)().to(c)``)."""

    def __init__(self, obj: Any, name: str | None = None) -> None:
        object.__setattr__(self, "_rh_obj", obj)
        object.__setattr__(self, "_rh_name", name)

    def _rh_payload(self) -> Any:
        return self._rh_obj

    def _rh_default(self, key: str) -> Any:
        return self._rh_name if key == "name" else None

    @property
    def env(self) -> Env | None:
        """The object's own ``env`` if it has one, else the env this code runs in: on a
        cluster, its worker's (as in Runhouse); here, None."""
        own = getattr(self._rh_obj, "env", None)
        if own is not None:
            return own  # type: ignore[no-any-return]
        name = os.environ.get("RHZMQ_ENV")
        return as_env(name) if name else None

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._rh_obj, attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(self._rh_obj, attr, value)

    def __repr__(self) -> str:
        return f"<LocalModule {self._rh_obj!r}>"


class _ClassMethod(RemoteMethod):
    """A class- or static method of a bound class module: the class goes to the cluster with
    the first call."""

    def __init__(self, module: ModuleClass, method: str, kind: str) -> None:
        assert module.cluster is not None
        super().__init__(
            module.cluster, module.name, method, kind, f"{module.cls.__name__}.{method}"
        )
        self._module = module

    def _connected(self, loop: asyncio.AbstractEventLoop | None = None) -> Client | None:
        return super()._connected(loop) if self._module._placed else None

    async def _call(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        stream_logs: bool,
    ) -> Any:
        await self._module.aplaced()
        return await super()._call(args, kwargs, timeout, stream_logs)

    async def arun(self, *args: Any, run_name: str | None = None, **kwargs: Any) -> Run:
        await self._module.aplaced()
        return await super().arun(*args, run_name=run_name, **kwargs)

    async def _stream(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        stream_logs: bool,
    ) -> AsyncIterator[Any]:
        await self._module.aplaced()
        async for item in super()._stream(args, kwargs, timeout, stream_logs):
            yield item


class ModuleClass(Module):
    """A class, local until ``.to(cluster)``; then calling it constructs instances remotely,
    and its class- and static methods run remotely too (Runhouse's module from a class).

    Its class- and static methods are called on the class itself, held on the cluster under
    :attr:`name` (the class's name unless given another; sent with the first such call); each
    instance gets its own name (``RemoteCls(..., name="a")``, else a unique one).
    """

    def __init__(
        self,
        cls: type,
        cluster: Cluster | None = None,
        env: EnvLike = None,
        replicas: int = 1,
        name: str | None = None,
    ) -> None:
        if not isinstance(cls, type):
            raise TypeError(f"rh.module() needs a class, got {type(cls).__name__}")
        self.cls = cls
        self.cluster = cluster
        self.env = as_env(env)
        self.replicas = replicas
        self.name: str = plain_name(name) if name else cls.__name__
        self._placed = False  # the class itself is on the cluster (for its classmethods)
        self.__doc__ = cls.__doc__

    async def ato(  # type: ignore[override]
        self,
        cluster: Cluster | None = None,
        env: EnvLike = None,
        name: str | None = None,
        *,
        replicas: int = 1,
        system: Cluster | None = None,
    ) -> ModuleClass:
        return self.to(cluster, env, name, replicas=replicas, system=system)

    def to(  # type: ignore[override]
        self,
        cluster: Cluster | None = None,
        env: EnvLike = None,
        name: str | None = None,
        *,
        replicas: int = 1,
        system: Cluster | None = None,
    ) -> ModuleClass:
        """Bind the class to ``cluster``: instances made from the result live there (in ``env``;
        with ``replicas``, one instance per replica worker behind one name), and its class- and
        static methods run there, on the class held under ``name`` (default: the class's name;
        sent with the first such call). Binding sends nothing, so it never blocks."""
        return ModuleClass(self.cls, _system(cluster, system), env, replicas, name or self.name)

    async def aplaced(self) -> None:
        """Hold the class itself on the cluster under :attr:`name` (once)."""
        if self.cluster is None:
            raise RuntimeError(
                f"{self.cls.__name__} is not bound to a cluster: use rh.module(cls).to(cluster)"
            )
        if not self._placed:
            await self.cluster.aplace(self.name, object_spec(self.cls), self.env, self.replicas)
            self._placed = True

    async def aget_or_to(  # type: ignore[override]
        self,
        cluster: Cluster | None = None,
        env: EnvLike = None,
        name: str | None = None,
        *,
        system: Cluster | None = None,
    ) -> ModuleClass:
        target = _system(cluster, system)
        bound = ModuleClass(self.cls, target, env, self.replicas, name or self.name)
        bound._placed = bound.name in await target.akeys()
        await bound.aplaced()
        return bound

    def get_or_to(  # type: ignore[override]
        self,
        cluster: Cluster | None = None,
        env: EnvLike = None,
        name: str | None = None,
        *,
        system: Cluster | None = None,
    ) -> ModuleClass:
        """The class module already on the cluster under ``name``, else ``.to()``."""
        return run_sync(
            self.aget_or_to, cluster, env, name, system=system, hint="`await m.aget_or_to(c)`"
        )

    async def arename(self, name: str) -> ModuleClass:
        """Hold the class under ``name`` instead; instances already made are not affected."""
        name = plain_name(name)
        if self.cluster is not None and self._placed:
            await self.cluster.arename(self.name, name)
        self.name = name
        return self

    def rename(self, name: str) -> ModuleClass:
        return run_sync(self.arename, name, hint="`await module.arename(name)`")

    def __getattr__(self, attr: str) -> Any:
        # Only reached for names this object lacks: the class's own attributes. Class- and
        # static methods run remotely once bound (unless they are meant to run locally);
        # anything else is the local class's.
        if attr.startswith("__") or "cls" not in self.__dict__:
            raise AttributeError(attr)
        value = getattr(self.cls, attr)
        raw = inspect.getattr_static(self.cls, attr, None)
        cluster = self.__dict__.get("cluster")
        if cluster is not None and inspect.isfunction(raw) and not attr.startswith("_"):
            raise TypeError(
                f"{self.cls.__name__}.{attr} is an instance method: make an instance on the "
                f"cluster first, {self.cls.__name__}(...).{attr}(...) (rh.module(C).to(c) is "
                "the class; only its class- and static methods run on it)"
            )
        if cluster is None or not isinstance(raw, classmethod | staticmethod):
            return value
        if local_method(self.cls, attr) is not None:
            return value
        return _ClassMethod(self, attr, call_kind(raw.__func__))

    async def anew(
        self, *args: Any, name: str | None = None, max_concurrency: int | None = None, **kwargs: Any
    ) -> RemoteObject:
        """Construct an instance on the cluster from async code."""
        if self.cluster is None:
            raise RuntimeError(
                f"{self.cls.__name__} is not bound to a cluster: use rh.module(cls).to(cluster)"
            )
        name = _instance_name(self.cls, name)
        info = await self.cluster.aplace(
            name, construct_spec(self.cls, args, kwargs), self.env, self.replicas, max_concurrency
        )
        return RemoteObject(self.cluster, name, info, local=self.cls)

    def __call__(
        self, *args: Any, name: str | None = None, max_concurrency: int | None = None, **kwargs: Any
    ) -> Any:
        """Construct an instance on the cluster, held under ``name`` (default: a unique one).
        Not bound to a cluster yet, the instance is made here, and its ``.to()`` sends it."""
        if self.cluster is None:
            obj = self.cls(*args, **kwargs)
            return obj if isinstance(obj, Module) else LocalModule(obj, name)
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
        return f"<ModuleClass {self.name!r} ({self.cls.__qualname__}){where}>"


def module(
    cls: type | None = None,
    name: str | None = None,
    system: Cluster | None = None,
    env: EnvLike = None,
) -> Any:
    """Wrap a class so its instances can live on a cluster: ``rh.module(Cls).to(cluster)``;
    ``rh.module(name="counter")`` loads the remote object saved under that name; Runhouse's
    ``rh.module(Cls, system=cluster, env=..., name=...)`` binds it at once."""
    if cls is None:
        if name is None:
            raise TypeError("rh.module() needs a class (or the name of a saved remote object)")
        return _ModuleResource.load(name)
    wrapped = ModuleClass(cls, name=name)
    if system is not None:
        return wrapped.to(system, env, name)
    return wrapped
