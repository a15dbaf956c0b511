"""What every cluster offers, written once: ``rh.Cluster``, the abstract base.

A cluster is *transport and placement*: it knows how to reach its broker (:meth:`aclient`), how
to start and stop itself, and where an environment's workers run. Everything else — objects,
calls, environments, status — is the same broker protocol for every kind of cluster, so it lives
here, once, ``async``; the plain methods run that code through the portal
(:mod:`rhzmq._portal`). A new kind of cluster (local, SSH, on-demand...) is a sibling subclass
in its own module that declares its ``kind`` and implements the abstract methods.

Subclasses register themselves by ``kind``; :meth:`Cluster._from_config` picks the class of a
saved config by its ``kind`` (importing that kind's module by name when needed), so this module
never imports a subclass.
"""

from __future__ import annotations

import abc
import asyncio
import builtins
import functools
import importlib
import os
import weakref
from collections.abc import Sequence
from typing import Any, ClassVar

from .. import _portal
from .._env import Env, EnvLike, as_env
from .._portal import run_sync
from .._resources import Function
from .._runs import Run, _keeper_call
from .._store import Resource, list_saved, load, plain_name
from .._stubs import RemoteMethod, RemoteObject
from .._tasks import gather
from ..wire.client import Client, call_meta, connected_client
from ..wire.code import object_spec
from ..wire.exceptions import CallTimeout, ClusterError, ClusterNotRunning, ObjectNotFound
from ..wire.protocol import RH_DESCRIBE, RH_VALUE, Cmd, name_problem, pack_meta
from ..wire.serialization import dumps
from ..wire.settings import STOP_TIMEOUT


class Cluster(Resource, abc.ABC):
    """A set of nodes running one broker; get one with ``rh.cluster(...)``."""

    resource_type = "cluster"
    #: Which kind of cluster a subclass is (its configs say ``"kind": kind``).
    kind: ClassVar[str] = ""
    _kinds: ClassVar[dict[str, type[Cluster]]] = {}

    name: str
    _last_client: weakref.ref[Client] | None = None  # see loop_client

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Cluster._kinds[cls.kind] = cls

    # -- what each kind provides ----------------------------------------------------------------

    @abc.abstractmethod
    async def aclient(self) -> Client:
        """This loop's client for the cluster's broker (connecting first where that takes work,
        e.g. an SSH tunnel)."""

    def connected_client(self) -> Client | None:
        """The portal's client for this cluster if it is connected and a call needs no
        connecting work first: blocking stubs then call on a socket of their own thread beside
        it (rhzmq.wire.blocking), and go through :meth:`aclient` on the portal otherwise."""
        loop = _portal.started()
        return None if loop is None else self.loop_client(loop)

    def __getstate__(self) -> dict[str, Any]:
        # A cluster travels as an argument (a function given the cluster it runs on); the cache
        # of this process's client is not part of it, and a weak reference cannot be pickled.
        state = self.__dict__.copy()
        state.pop("_last_client", None)
        return state

    def loop_client(self, loop: asyncio.AbstractEventLoop) -> Client | None:
        """``loop``'s client for this cluster if it is connected and a call needs no connecting
        work first, else None (then :meth:`aclient` does that work). Asked on every call, so
        the last answer is kept, weakly (a client holds its loop): an async call skips the
        ``aclient`` coroutine and the per-loop lookup (measured in docs/performance.md)."""
        endpoint = self._connected_endpoint()
        if endpoint is None:
            return None
        last = self._last_client() if self._last_client is not None else None
        if last is not None and last.loop is loop and last.endpoint == endpoint and last.ready:
            return last
        client = connected_client(loop, endpoint)
        if client is not None:
            self._last_client = weakref.ref(client)
        return client

    def _connected_endpoint(self) -> str | None:
        """The broker endpoint when reaching it needs no work (no tunnel to check or remake)."""
        return None

    @abc.abstractmethod
    async def aup_if_not(self) -> Cluster:
        """Start the cluster unless it is up; returns it."""

    @abc.abstractmethod
    async def ateardown(self) -> None:
        """Stop the cluster: its daemons and workers; objects on it are gone."""

    @property
    @abc.abstractmethod
    def gateway_url(self) -> str | None:
        """The HTTP gateway's URL as reachable from here, if it runs."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]: ...

    def endpoint(self, external: bool = False) -> str:
        """The URL HTTP callers use (Runhouse's ``cluster.endpoint()``): the gateway's, as
        reachable from here. (The broker's ZeroMQ address is :attr:`broker_endpoint`.)"""
        url = self.gateway_url
        if not url:
            raise ClusterError(
                f"cluster {self.name!r} has no HTTP gateway running: start it with one "
                "(the local cluster serves it on port 32300 unless gateway_port=None)"
            )
        return url

    def gateway_headers(self) -> dict[str, str]:
        """Headers for HTTP calls to :attr:`gateway_url` (a bearer token, where one is set)."""
        return {}

    async def ais_up(self) -> bool:
        """Whether the cluster's broker answers."""
        try:
            await self._control(Cmd.PING, timeout=5.0)
        except (ClusterNotRunning, CallTimeout):
            return False
        return True

    async def aspawn(self, spec: dict[str, Any]) -> list[str]:
        """Make sure an environment's workers run (see rhzmq._env); returns their names."""
        result = await self._control(
            Cmd.SPAWN, spec["name"], [pack_meta(spec)], label=f"env {spec['name']}"
        )
        return list(result["workers"])

    async def aput_spec(
        self,
        name: str,
        spec: dict[str, Any],
        *,
        worker: str | None = None,
        max_concurrency: int | None = None,
    ) -> dict[str, Any]:
        """Send an object spec to a worker under ``name``; returns the worker's description."""
        _check_name(name)
        meta: dict[str, Any] = {"worker": worker or "default"}
        if max_concurrency is not None:
            meta["max_concurrency"] = max_concurrency
        info = await self._control(Cmd.PUT, name, [pack_meta(meta), *dumps(spec)], label=name)
        return dict(info)

    # -- lifecycle, sync twins ------------------------------------------------------------------

    def up_if_not(self) -> Cluster:
        """Start the cluster unless it is already up; returns it (for chaining)."""
        return run_sync(self.aup_if_not, hint="`await cluster.aup_if_not()`")

    def up(self) -> Cluster:
        return self.up_if_not()

    def is_up(self) -> bool:
        """Whether the cluster runs and answers."""
        return run_sync(self.ais_up, hint="`await cluster.ais_up()`")

    def teardown(self) -> None:
        """Stop the cluster's daemons and every worker; objects on it are gone."""
        run_sync(self.ateardown, hint="`await cluster.ateardown()`")

    # -- objects --------------------------------------------------------------------------------

    async def _control(self, cmd: Cmd, *args: Any, **kwargs: Any) -> Any:
        return await (await self.aclient()).control(cmd, *args, **kwargs)

    async def akeys(self, env: EnvLike = None) -> list[str]:
        if env is None:
            return sorted({*await self._control(Cmd.KEYS), *await self._env_names()})
        group = as_env(env).name  # type: ignore[union-attr]
        workers = (await self.astatus())["workers"]
        return sorted({o for w in workers if w["env"] == group for o in w["objects"]})

    def keys(self, env: EnvLike = None) -> list[str]:
        """Names of the objects on the cluster and of its environments (as in Runhouse; the
        implicit ``default`` one aside); with ``env``, the objects held in that env's workers."""
        return run_sync(self.akeys, env, hint="`await cluster.akeys()`")

    async def _env_names(self) -> set[str]:
        status = await self.astatus()
        return {w["env"] for w in status["workers"]} - {"default"}

    @property
    def default_env(self) -> Env:
        """The environment objects go to without ``env=``: the daemon's own ``default``."""
        default = Env(name="default")
        default._existing = True
        return default

    async def astatus(self) -> dict[str, Any]:
        return dict(await self._control(Cmd.STATUS))

    def status(self) -> dict[str, Any]:
        """The broker's view: workers (pid, objects, calls in flight), objects, versions."""
        return run_sync(self.astatus, hint="`await cluster.astatus()`")

    async def aplace(
        self,
        name: str,
        spec: dict[str, Any],
        env: Any = None,
        replicas: int = 1,
        max_concurrency: int | None = None,
        force_install: bool = False,
    ) -> dict[str, Any]:
        """Send an object spec to the default worker, or to every replica of ``env``."""
        if env is None and replicas == 1:
            return await self.aput_spec(name, spec, max_concurrency=max_concurrency)
        if env is None:
            env = Env(name=f"{name}-replicas")
        workers = await env.ato(self, replicas=replicas, force_install=force_install)
        infos = await gather(
            *(
                self.aput_spec(name, spec, worker=w, max_concurrency=max_concurrency)
                for w in workers
            )
        )
        return dict(infos[0])

    async def aprocesses(self) -> list[dict[str, Any]]:
        return list((await self.astatus())["workers"])

    def processes(self) -> list[dict[str, Any]]:
        """Worker processes: name, env, pid, node, objects, calls in flight, CPU seconds, RSS."""
        return run_sync(self.aprocesses, hint="`await cluster.aprocesses()`")

    async def aput(self, key: str, obj: Any, env: EnvLike = None) -> None:
        key = plain_name(key)
        await self.aplace(key, object_spec(obj, by_ref=False), as_env(env))

    def put(self, key: str, obj: Any, env: EnvLike = None) -> None:
        """Store ``obj`` (pickled) on the cluster under ``key`` (in ``env``'s workers if given;
        Runhouse's ``put(key=, obj=, env=)``)."""
        run_sync(self.aput, key, obj, env, hint=f"`await cluster.aput({key!r}, obj)`")

    async def aput_resource(self, resource: Any, env: EnvLike = None) -> Any:
        """Put a resource on the cluster: an env starts its workers, a function or an object
        goes there (Runhouse's ``put_resource``); returns what ``.to()`` returns."""
        if isinstance(resource, Env):
            await resource.ato(self)
            return resource
        if isinstance(resource, Function):
            return await resource.ato(self, env)
        await self.aput(getattr(resource, "name", None) or type(resource).__name__, resource, env)
        return resource

    def put_resource(self, resource: Any, env: EnvLike = None) -> Any:
        return run_sync(self.aput_resource, resource, env, hint="`await cluster.aput_resource(r)`")

    async def aget(self, key: str, default: Any = None, *, remote: bool = False) -> Any:
        key = plain_name(key)
        try:
            if remote:
                info = await self.acall(key, RH_DESCRIBE)
                if info.get("type") == "function":
                    return Function._bound(self, key, info)
                return RemoteObject(self, key, info)
            return await self.acall(key, RH_VALUE)
        except ObjectNotFound as exc:
            if key in await self._env_names():
                return as_env(key)  # an environment's name: the env (Runhouse's get)
            if default is KeyError:  # Runhouse's way of asking for the error
                raise ObjectNotFound(f"key {key} not found: {exc}", key, exc.matches) from None
            return default

    def get(self, key: str, default: Any = None, *, remote: bool = False) -> Any:
        """The object's value (a copy), or with ``remote=True`` a stub calling the remote object;
        ``default`` if there is none (``default=KeyError`` raises ObjectNotFound, a KeyError)."""
        return run_sync(
            self.aget, key, default, remote=remote, hint=f"`await cluster.aget({key!r})`"
        )

    # -- commands -------------------------------------------------------------------------------

    async def arun(
        self,
        commands: str | Sequence[str],
        env: EnvLike = None,
        *,
        python: bool = False,
        stream_logs: bool = True,
    ) -> list[tuple[int, str, str]]:
        from .._commands import RUNNER, run_commands

        commands = [commands] if isinstance(commands, str) else list(commands)
        target = as_env(env)
        name = RUNNER if target is None else f"{RUNNER}.{target.name}"
        client = await self.aclient()
        meta = call_meta("", stream_logs=stream_logs)
        try:
            result = await client.call(name.encode(), meta, (commands, python), label="run")
        except ObjectNotFound:
            await self.aplace(name, object_spec(run_commands), target)
            result = await client.call(name.encode(), meta, (commands, python), label="run")
        return [tuple(r) for r in result]

    def run(
        self, commands: str | Sequence[str], env: EnvLike = None, *, stream_logs: bool = True
    ) -> list[tuple[int, str, str]]:
        """Run shell commands on the cluster, in a worker of ``env`` (default: the default
        worker) so they see its venv and variables; output streams as it comes. Returns
        ``(exit code, stdout, stderr)`` per command."""
        return run_sync(
            self.arun, commands, env, stream_logs=stream_logs, hint="`await cluster.arun(cmds)`"
        )

    def run_python(
        self, commands: str | Sequence[str], env: EnvLike = None, *, stream_logs: bool = True
    ) -> list[tuple[int, str, str]]:
        """Run Python code (lines of one program) with the interpreter of ``env``'s workers;
        returns ``[(exit code, stdout, stderr)]``."""
        code = [commands] if isinstance(commands, str) else ["\n".join(commands)]
        return run_sync(
            self.arun,
            code,
            env,
            python=True,
            stream_logs=stream_logs,
            hint="`await cluster.arun(code, python=True)`",
        )

    def on_this_cluster(self) -> bool:
        """Whether this code runs in one of this cluster's workers."""
        return "RHZMQ_WORKER" in os.environ and self._hosts_me()

    def _hosts_me(self) -> bool:
        return "RHZMQ_NODE_INDEX" not in os.environ  # the local daemon's workers

    async def adelete(self, names: str | Sequence[str]) -> None:
        """Delete objects, or environments (their worker processes stop)."""
        names = [names] if isinstance(names, str) else list(names)
        if "default" in names:
            raise ValueError(
                "the default worker cannot be deleted: it is where objects go without an env "
                "(delete its objects by name, or tear the cluster down)"
            )
        client = await self.aclient()
        for name in names:
            await client.control(Cmd.DELETE, name)

    def delete(self, names: str | Sequence[str]) -> None:
        """Delete one or several objects from the cluster (ObjectNotFound if one is unknown)."""
        run_sync(self.adelete, names, hint="`await cluster.adelete(name)`")

    async def acall(
        self,
        name: str,
        method: str,
        *args: Any,
        stream_logs: bool = True,
        run_name: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if run_name is not None:
            return await RemoteMethod(self, name, method, "sync", f"{name}.{method}")._run_and_wait(
                args, kwargs, run_name, None, stream_logs
            )
        client = await self.aclient()
        return await client.call(
            name.encode(),
            call_meta(method, stream_logs=stream_logs),
            args,
            kwargs,
            label=f"{name}.{method}" if method else name,
        )

    def call(
        self,
        name: str,
        method: str,
        *args: Any,
        stream_logs: bool = True,
        run_name: str | None = None,
        run_async: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Call ``method`` of the object ``name`` (``""`` calls the object itself); a generator
        called this way returns its items as a list. ``stream_logs``, ``run_name`` (see
        :meth:`get_run`) and ``run_async`` (an awaitable) are Runhouse's options."""
        call = functools.partial(
            self.acall, name, method, *args, stream_logs=stream_logs, run_name=run_name, **kwargs
        )
        if run_async:
            return call()
        return run_sync(call, hint=f"`await cluster.acall({name!r}, {method!r}, ...)`")

    async def arename(self, name: str, new_name: str) -> None:
        """Hold the object ``name`` under ``new_name`` instead (the same object, state kept)."""
        client = await self.aclient()
        await client.control(
            Cmd.RENAME, plain_name(name), [pack_meta({"to": plain_name(new_name)})]
        )

    def rename(self, name: str, new_name: str) -> None:
        run_sync(self.arename, name, new_name, hint="`await cluster.arename(old, new)`")

    # -- runs (rhzmq._runs) ---------------------------------------------------------------------

    def get_run(self, name: str) -> Run:
        """The run ``name`` on this cluster (``fn.run(..., run_name=name)``), from any process."""
        return Run(plain_name(name), self)

    async def aruns(self) -> list[dict[str, Any]]:
        return list(await _keeper_call(self, "runs"))

    def runs(self) -> list[dict[str, Any]]:
        """Every run the cluster keeps: name, target, method, status, start and end times."""
        return run_sync(self.aruns, hint="`await cluster.aruns()`")

    # -- every cluster of this machine ------------------------------------------------------------

    async def asummary(self) -> dict[str, Any]:
        """One line of ``rh.Cluster.list()``: name, kind, status, nodes, instance type, uptime
        (seconds) and cost so far (where a price is known)."""
        summary: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "status": "down",
            "nodes": len(getattr(self, "hosts", None) or [self.name]),
            "instance_type": None,
            "uptime": None,
            "cost": None,
        }
        try:
            if await self.ais_up():
                summary.update(status="up", uptime=(await self.astatus()).get("uptime"))
        except ClusterError as exc:  # an SSH host that does not answer, say
            summary["status"] = f"unreachable ({exc})"
        return summary

    @classmethod
    def list(cls) -> builtins.list[dict[str, Any]]:
        """Every cluster of this machine: the local daemon and each saved cluster (local, SSH,
        on-demand), as :meth:`asummary` describes it (``rhzmq clusters`` prints this)."""
        clusters: builtins.list[Any] = [Cluster._from_config({"kind": "local", "name": "local"})]
        for item in list_saved("cluster"):
            try:
                clusters.append(Cluster._from_config(load(str(item["name"]), "cluster")[0]))
            except (ClusterError, ValueError, TypeError) as exc:
                clusters.append(_Unloadable(str(item["name"]), str(exc)))

        async def all_of_them() -> builtins.list[dict[str, Any]]:
            return builtins.list(await gather(*(c.asummary() for c in clusters)))

        return run_sync(all_of_them, hint="`rh.Cluster.list()` from a thread")

    # -- saved configs ----------------------------------------------------------------------------

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Cluster:
        kind = _kind_of(config)
        config = {k: v for k, v in config.items() if k not in ("type", "kind")}
        target = Cluster._kinds.get(kind)
        if target is None:  # a kind whose module is not imported yet (SSH: asyncssh is slow)
            importlib.import_module(f"rhzmq.clusters.{kind}")
            target = Cluster._kinds[kind]
        return target(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class _Unloadable:
    """A saved cluster whose config no longer loads (listed, with why)."""

    kind = "?"

    def __init__(self, name: str, why: str) -> None:
        self.name, self.why = name, why

    async def asummary(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "status": f"cannot load: {self.why}"}


def _kind_of(config: dict[str, Any]) -> str:
    # Configs saved before kinds existed: SSH clusters are the ones with hosts.
    return str(config.get("kind") or ("ssh" if config.get("host") else "local"))


def _check_name(name: str) -> None:
    problem = name_problem(name, "object name")
    if problem:
        raise ValueError(problem)


__all__ = ["STOP_TIMEOUT", "Cluster"]
