"""Runs: calls that outlive their caller (Runhouse's ``run_name``).

``fn.run(*args, run_name="train-1")`` asks the cluster's **run keeper** — one object,
``rhzmq.runs``, in the head's default worker — to make the call. The keeper calls the target
like any client, records every printed chunk and log record with its time, and keeps the final
answer; the caller may leave at once. Any process reattaches with ``rh.run("train-1")`` or
``cluster.get_run("train-1")``: ``status()``, ``logs(follow=True)`` (replayed from the start,
then live), ``result()``, ``cancel()``; ``cluster.runs()`` lists them. ``fn(..., run_name=...)``
is a run the caller waits for, its output shown live as for any call.

What the keeper stores, in ``$RHZMQ_HOME/runs/<name>/`` on the head: ``run.json`` (target,
method, status, times), ``events.msgpack`` (``[time, kind, data]`` records appended as they
arrive) and ``final.msgpack`` (the answer's status and frames, exactly as the target's worker
sent them: the keeper never unpickles a caller's arguments or a result — the caller decodes).
Finished runs are kept within a budget: at most ``RHZMQ_RUNS_MAX_BYTES`` (default 512 MiB) in all
and ``RHZMQ_RUNS_MAX_AGE`` seconds (default 7 days); the oldest finished runs go first. A run's
own log is capped at ``RHZMQ_RUN_LOG_BYTES`` (default 64 MiB; beyond it a line says what was
dropped). A run still going when the keeper's worker restarted is ``lost``: its answer had
nowhere to go.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from ._portal import iter_sync, run_sync
from ._store import Resource, load_config, plain_name, save_config
from .wire import config as _config
from .wire.client import STREAM_CREDIT, call_meta, decode_final, get_client, local_broker
from .wire.code import construct_spec
from .wire.exceptions import ObjectNotFound, RunError
from .wire.protocol import Partial, Status, is_internal, name_problem

if TYPE_CHECKING:
    from .clusters import Cluster

#: The name the run keeper is held under on a cluster (placed on first use).
KEEPER = "rhzmq.runs"

RUNNING, COMPLETED, FAILED, CANCELLED, LOST = "running", "completed", "failed", "cancelled", "lost"
_KINDS: dict[int, str] = {Partial.STDOUT: "stdout", Partial.STDERR: "stderr", Partial.LOG: "log"}


def _limit(variable: str, default: float) -> float:
    try:
        return float(os.environ.get(variable, default))
    except ValueError:
        return default


# -- the keeper (runs on the cluster) -------------------------------------------------------------


def _failure(message: str, status: int = Status.REMOTE) -> tuple[int, list[bytes]]:
    """A FINAL's status and frames for an answer the keeper makes up itself."""
    body: dict[str, Any] = {"message": message}
    if status == Status.REMOTE:  # re-raised at the caller as a RunError
        body.update(type="RunError", exc=pickle.dumps(RunError(message)))
    else:
        body["type"] = "CallCancelled"
    return int(status), [msgpack.packb(body)]


class _Record:
    """One run the keeper knows: its metadata, its events so far, who waits for more."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.meta = meta
        self.events: list[list[Any]] | None = None  # loaded on first read
        self.log_bytes = 0
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def save_meta(self) -> None:
        tmp = self.path / "run.json.tmp"
        tmp.write_text(json.dumps(self.meta))
        os.replace(tmp, self.path / "run.json")

    def load_events(self) -> list[list[Any]]:
        """The run's events: kept in memory while it runs (followers wait on them), read from
        its file once it has ended (a keeper holding every old run's log would only grow)."""
        if self.events is not None:
            return self.events
        events: list[list[Any]] = []
        try:
            with open(self.path / "events.msgpack", "rb") as f:
                events.extend(msgpack.Unpacker(f, raw=False))
        except FileNotFoundError:
            pass
        if self.meta.get("status") == RUNNING:
            self.events = events
        return events

    def append(self, kind: str, data: Any) -> None:
        events = self.load_events()
        size = len(data) if isinstance(data, str) else len(str(data.get("msg", "")))
        cap = _limit("RHZMQ_RUN_LOG_BYTES", 64 * 2**20)
        if self.log_bytes + size > cap:
            if self.log_bytes <= cap:
                kind, data = (
                    "stderr",
                    f"[rhzmq: the run's log passed {cap:,.0f} bytes; the rest is dropped]\n",
                )
                self.log_bytes = int(cap) + 1
            else:
                return
        else:
            self.log_bytes += size
        record = [time.time(), kind, data]
        events.append(record)
        with open(self.path / "events.msgpack", "ab") as f:
            f.write(msgpack.packb(record))
        self.wake()

    def wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def info(self) -> dict[str, Any]:
        return dict(self.meta)


def _finish(record: _Record, status: int, frames: list[bytes]) -> None:
    """Keep a run's answer and mark it ended (small local writes: fine on the loop)."""
    (record.path / "final.msgpack").write_bytes(msgpack.packb([status, frames]))
    record.meta["ended"] = time.time()
    record.meta["bytes"] = sum(p.stat().st_size for p in record.path.iterdir())
    record.save_meta()
    record.task = None
    record.events = None  # on disk; readers load it from there
    record.wake()


class RunKeeper:
    """The cluster side of runs (see the module docstring); one per cluster, in its head's
    default worker. Its methods are called by :class:`Run` and the cluster's ``runs()``."""

    def __init__(self) -> None:
        self.root = _config.home() / "runs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, _Record] = {}
        for path in sorted(self.root.iterdir()):
            try:
                meta = json.loads((path / "run.json").read_text())
            except (OSError, ValueError):
                continue
            meta.setdefault("name", path.name)
            record = _Record(path, meta)
            if meta.get("status") == RUNNING:  # it ran when this keeper's worker went away
                meta.update(status=LOST, ended=time.time(), error="the run keeper restarted")
                record.save_meta()
            self.records[meta["name"]] = record

    async def start(
        self, name: str, target: str, method: str, payload: list[bytes], label: str
    ) -> dict[str, Any]:
        """Start calling ``target.method`` with already serialized arguments, as run ``name``."""
        problem = name_problem(name, "run name")
        if problem:
            raise ValueError(problem)
        if is_internal(target):
            raise ValueError(f"{target!r} is the cluster's own machinery, not something to run")
        old = self.records.get(name)
        if old is not None:
            if old.meta["status"] == RUNNING:
                raise RunError(
                    f"run {name!r} is still running: wait for it (rh.run({name!r}).result()) "
                    "or cancel it (rh.run(...).cancel()) before starting another under its name"
                )
            shutil.rmtree(old.path, ignore_errors=True)
        self._prune()
        path = self.root / name
        if path.resolve().parent != self.root.resolve():  # belt and braces: name_problem
            raise ValueError(f"run name {name!r} would leave {self.root}")
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "name": name,
            "target": target,
            "method": method,
            "label": label,
            "status": RUNNING,
            "started": time.time(),
            "ended": None,
            "error": None,
        }
        record = self.records[name] = _Record(path, meta)
        record.events = []
        record.save_meta()
        record.task = asyncio.get_running_loop().create_task(
            self._run(record, payload), name=f"run {name}"
        )
        return record.info()

    async def _run(self, record: _Record, payload: list[bytes]) -> None:
        meta = record.meta
        status, frames = _failure("the run ended without an answer")
        try:
            client = get_client(*local_broker())  # the keeper's own cluster, as any client
            stream = client.events(meta["target"].encode(), call_meta(meta["method"]), payload)
            async for kind, data in stream:
                if kind == -1:
                    status, frames = data
                elif kind == Partial.LOG:
                    record.append("log", msgpack.unpackb(data[0]))
                elif kind in _KINDS:
                    record.append(_KINDS[kind], data[0].decode(errors="replace"))
            meta["status"] = COMPLETED if status == Status.OK else FAILED
        except asyncio.CancelledError:
            meta["status"] = CANCELLED
            status, frames = _failure(f"run {meta['name']!r} was cancelled", Status.CANCELLED)
        except Exception as exc:  # the keeper could not make the call: say so in the run
            meta.update(status=FAILED, error=f"{type(exc).__name__}: {exc}")
            status, frames = _failure(f"the run keeper could not make the call: {exc}")
        finally:
            _finish(record, status, frames)

    def _record(self, name: str) -> _Record:
        record = self.records.get(name)
        if record is None:
            known = ", ".join(sorted(self.records)[:20]) or "none"
            raise ObjectNotFound(f"no run named {name!r} on this cluster (runs: {known})", name)
        return record

    def info(self, name: str) -> dict[str, Any]:
        return self._record(name).info()

    def runs(self) -> list[dict[str, Any]]:
        return sorted((r.info() for r in self.records.values()), key=lambda m: m["started"])

    async def logs(self, name: str, follow: bool = False) -> AsyncIterator[list[Any]]:
        """The run's events from the start; with ``follow``, then the new ones until it ends."""
        record = self._record(name)
        sent = 0
        while True:
            events = record.load_events()
            while sent < len(events):
                yield events[sent]
                sent += 1
            if not follow or record.meta["status"] != RUNNING:
                return
            await record.changed.wait()

    async def result(self, name: str) -> list[Any]:
        """Wait for the run to end; its answer as ``[status, frames]``."""
        record = self._record(name)
        while record.meta["status"] == RUNNING:
            await record.changed.wait()
        try:
            answer: list[Any] = msgpack.unpackb((record.path / "final.msgpack").read_bytes())
        except FileNotFoundError:
            return list(_failure(f"run {name!r} is {record.meta['status']}: it has no answer"))
        return answer

    def cancel(self, name: str) -> bool:
        """Cancel a running run (its remote call is cancelled too); False if it had ended."""
        record = self._record(name)
        if record.task is None:
            return False
        record.task.cancel()
        return True

    def delete(self, name: str) -> None:
        record = self._record(name)
        if record.task is not None:
            record.task.cancel()
        del self.records[name]
        shutil.rmtree(record.path, ignore_errors=True)

    def _prune(self) -> None:
        """Drop finished runs past the age limit, then the oldest until within the size budget."""
        now = time.time()
        max_age = _limit("RHZMQ_RUNS_MAX_AGE", 7 * 86400)
        max_bytes = _limit("RHZMQ_RUNS_MAX_BYTES", 512 * 2**20)
        done = sorted(
            (r for r in self.records.values() if r.meta["status"] != RUNNING),
            key=lambda r: r.meta.get("ended") or 0,
        )
        total = sum(int(r.meta.get("bytes") or 0) for r in done)
        for record in done:
            if now - (record.meta.get("ended") or now) <= max_age and total <= max_bytes:
                continue
            total -= int(record.meta.get("bytes") or 0)
            del self.records[record.meta["name"]]
            shutil.rmtree(record.path, ignore_errors=True)


# -- the caller's side ----------------------------------------------------------------------------


async def _keeper_call(cluster: Cluster, method: str, *args: Any, **kwargs: Any) -> Any:
    try:
        return await cluster.acall(KEEPER, method, *args, **kwargs)
    except ObjectNotFound as exc:
        if exc.name != KEEPER:
            raise
    await cluster.aput_spec(KEEPER, construct_spec(RunKeeper, (), {}))
    return await cluster.acall(KEEPER, method, *args, **kwargs)


def _show(event: list[Any]) -> str:
    """One recorded event as text: prints as they were, log records as ``LEVEL name: msg``."""
    _, kind, data = event
    if kind == "log":
        import logging

        level = logging.getLevelName(int(data.get("levelno", logging.INFO)))
        return f"{level} {data.get('name') or 'root'}: {data.get('msg', '')}\n"
    return str(data)


class Run(Resource):
    """A call kept by its cluster (see the module docstring). ``status()`` is one of
    ``running``, ``completed``, ``failed``, ``cancelled``, ``lost``."""

    resource_type = "run"

    def __init__(self, name: str, cluster: Cluster) -> None:
        self.name = name
        self.cluster = cluster

    @classmethod
    async def astart(
        cls,
        cluster: Cluster,
        name: str,
        target: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        label: str,
    ) -> Run:
        from .wire.serialization import dumps_call

        name = plain_name(name)
        problem = name_problem(name, "run name")
        if problem:
            raise ValueError(problem)
        payload = [bytes(f) for f in dumps_call(args, kwargs)]
        await _keeper_call(cluster, "start", name, target, method, payload, label)
        run = cls(name, cluster)
        save_config(run.config(), "~/" + name)  # rh.run(name) finds its cluster, on this machine
        return run

    async def ainfo(self) -> dict[str, Any]:
        """Target, method, status, start and end times, error, bytes kept."""
        return dict(await _keeper_call(self.cluster, "info", self.name))

    def info(self) -> dict[str, Any]:
        return run_sync(self.ainfo, hint="`await run.ainfo()`")

    async def astatus(self) -> str:
        return str((await self.ainfo())["status"])

    def status(self) -> str:
        return run_sync(self.astatus, hint="`await run.astatus()`")

    async def alogs(self, follow: bool = False) -> AsyncIterator[str]:
        """The run's output from its start, line by line (prints and log records, in order);
        with ``follow``, then live until it ends."""
        client = await self.cluster.aclient()
        meta = call_meta("logs", credit=STREAM_CREDIT)
        async for event in client.stream(KEEPER.encode(), meta, (self.name, follow)):
            for line in _show(event).splitlines(keepends=True):
                yield line

    def logs(self, follow: bool = False) -> Iterator[str]:
        return iter_sync(self.alogs(follow), hint="`async for line in run.alogs()`")

    async def aresult(self, timeout: float | None = None, *, stream_logs: bool = False) -> Any:
        """Wait for the run's answer: its value, or its exception raised here. With
        ``stream_logs`` its output is shown as it comes (from the start)."""
        if stream_logs:
            await self._show_logs()
        client = await self.cluster.aclient()
        status, frames = await client.call(
            KEEPER.encode(), call_meta("result"), (self.name,), timeout=timeout, label=self.name
        )
        return decode_final(status, frames)

    async def _show_logs(self) -> None:
        from .wire.output import PrefixedWriter, emit_log

        client = await self.cluster.aclient()
        out, err = PrefixedWriter(self.name, "stdout"), PrefixedWriter(self.name, "stderr")
        meta = call_meta("logs", credit=STREAM_CREDIT)
        async for _, kind, data in client.stream(KEEPER.encode(), meta, (self.name, True)):
            if kind == "log":
                emit_log(data, self.name)
            else:
                (out if kind == "stdout" else err).write(data)

    def result(self, timeout: float | None = None, *, stream_logs: bool = False) -> Any:
        return run_sync(
            self.aresult, timeout, stream_logs=stream_logs, hint="`await run.aresult()`"
        )

    async def acancel(self) -> bool:
        return bool(await _keeper_call(self.cluster, "cancel", self.name))

    def cancel(self) -> bool:
        """Cancel the run (and its remote call); False if it had already ended."""
        return run_sync(self.acancel, hint="`await run.acancel()`")

    async def adelete(self) -> None:
        await _keeper_call(self.cluster, "delete", self.name)

    def delete(self) -> None:
        """Forget the run: its log and answer are deleted from the cluster."""
        run_sync(self.adelete, hint="`await run.adelete()`")

    def config(self) -> dict[str, Any]:
        return {"type": "run", "name": self.name, "system": self.cluster.config()}

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Run:
        return cls(config["name"], Resource.from_config(config["system"]))

    def __repr__(self) -> str:
        return f"<Run {self.name!r} on {self.cluster.name!r}>"


def run(name: str, cluster: Cluster | None = None) -> Run:
    """Reattach to a run by name: on ``cluster``, else on the cluster this machine started it on
    (recorded in the local store when it started)."""
    if cluster is not None:
        return Run(plain_name(name), cluster)
    try:
        found: Run = Resource.from_config(load_config("~/" + plain_name(name), "run"))
    except KeyError:
        raise RunError(
            f"no run named {name!r} was started from this machine; name its cluster: "
            f"rh.run({name!r}, cluster=...) or cluster.get_run({name!r})"
        ) from None
    return found
