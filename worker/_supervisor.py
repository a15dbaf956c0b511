"""The node supervisor: starts worker processes, restarts them when they die, stops them.

It reports every exit to ``on_exit`` at once, saying whether the worker comes back (the broker
fails that worker's calls immediately, without waiting ~3 s for missed heartbeats, and parks
calls to its objects until they are rebuilt), then restarts the worker with exponential back-off
(0.1 s doubling to 5 s, reset after a worker stayed up for 10 s) so a worker that crashes at import
time does not spin the CPU.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import IO, Any

import anyio
from anyio.abc import Process

from rhzmq.wire import handshake

log = logging.getLogger("rhzmq.supervisor")

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
STABLE_AFTER = 10.0


def exit_reason(returncode: int | None) -> str:
    if returncode is None:
        return "it stopped answering"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


class Supervisor:
    """Runs worker processes for one node; ``run_worker`` is a task per worker.

    ``broker`` is the endpoint workers connect to; ``curve_dir`` makes them authenticate with
    CURVE; ``node`` is this host's name in its cluster (workers report it) and ``env`` is set in
    every worker (``RHZMQ_NODE_INDEX``...). Each worker says READY on a pipe once the broker has
    registered it (:mod:`rhzmq.wire.handshake`): :meth:`wait_registered` waits for that, without
    asking the broker (which, for a node of a cluster, is on another host).
    """

    def __init__(
        self,
        broker: str,
        *,
        log_file: IO[Any] | None = None,
        on_exit: Callable[[str, int, str, bool], None] | None = None,
        curve_dir: str | None = None,
        node: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.broker = broker
        self.log_file = log_file
        self.on_exit = on_exit
        self.curve_dir = curve_dir
        self.node = node
        self.env = dict(env or {})
        self.processes: dict[str, Process] = {}
        self.restarts: dict[str, int] = {}
        self.groups: dict[str, str] = {}  # worker name -> environment
        self._stopping = False
        self._stopped: set[str] = set()  # workers stopped on purpose: not restarted
        self._registered: dict[str, anyio.Event] = {}  # set by the running process's READY

    def command(
        self, name: str, python: str | None = None, group: str | None = None, ready_fd: int = -1
    ) -> list[str]:
        return [
            python or sys.executable,
            "-m",
            "worker",
            "--broker",
            self.broker,
            "--name",
            name,
            "--group",
            group or name,
            "--parent-pid",
            str(os.getpid()),
            *(["--curve-dir", self.curve_dir] if self.curve_dir else []),
            *(["--node", self.node] if self.node else []),
            *(["--ready-fd", str(ready_fd)] if ready_fd >= 0 else []),
        ]

    async def wait_registered(self, names: list[str]) -> None:
        """Wait until a process of each of these workers has registered with the broker."""
        for name in names:
            await self._registered.setdefault(name, anyio.Event()).wait()

    @staticmethod
    async def _read_ready(fd: int, registered: anyio.Event) -> None:
        try:
            if await handshake.read_ready(handshake.fd_chunks(fd)) is not None:
                registered.set()
        finally:
            os.close(fd)

    async def run_worker(
        self,
        name: str,
        env_vars: dict[str, str] | None = None,
        python: str | None = None,
        cwd: str | None = None,
        group: str | None = None,
    ) -> None:
        """Keep a worker called ``name`` running until :meth:`stop` or :meth:`stop_workers`."""
        backoff = BACKOFF_FIRST
        # The gateway's token is the daemon's alone: user code in a worker never sees it.
        env = {k: v for k, v in os.environ.items() if k != "RHZMQ_TOKEN"}
        env.update(self.env)
        if python is not None:
            # The env's venv first on PATH, as an activated venv: `pip`, `python` and the
            # venv's console scripts in cluster.run(..., env=e) are the env's own.
            bin_dir = os.path.dirname(python)
            env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
            env["VIRTUAL_ENV"] = os.path.dirname(bin_dir)
        env.update(env_vars or {})
        self._stopped.discard(name)
        self.groups[name] = group or name
        while not self._stopping and name not in self._stopped:
            started = time.monotonic()
            registered = self._registered.get(name)
            if registered is None or registered.is_set():
                registered = self._registered[name] = anyio.Event()
            read_fd, write_fd = os.pipe()
            try:
                proc = await anyio.open_process(
                    self.command(name, python, group, write_fd),
                    stdin=None,
                    stdout=self.log_file,
                    stderr=self.log_file,
                    env=env,
                    cwd=cwd,
                    pass_fds=(write_fd,),
                )
            except BaseException:
                os.close(read_fd)
                raise
            finally:
                os.close(write_fd)
            self.processes[name] = proc
            log.info("started worker %r (pid %d)", name, proc.pid)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._read_ready, read_fd, registered)
                    code = await proc.wait()
                    tg.cancel_scope.cancel()
            finally:
                self.processes.pop(name, None)
            if self._stopping:
                return
            if name in self._stopped:
                if self.on_exit is not None:
                    self.on_exit(name, proc.pid, "its environment was deleted", False)
                return
            reason = exit_reason(code)
            log.warning(
                "worker %r (pid %d) %s; restarting in %.1f s", name, proc.pid, reason, backoff
            )
            if self.on_exit is not None:
                self.on_exit(name, proc.pid, reason, True)  # restarted below, under the same name
            self.restarts[name] = self.restarts.get(name, 0) + 1
            if time.monotonic() - started > STABLE_AFTER:
                backoff = BACKOFF_FIRST
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def group_members(self, group: str) -> list[str]:
        return [n for n, g in self.groups.items() if g == group and n not in self._stopped]

    async def stop_workers(self, names: list[str], grace: float = 5.0) -> None:
        """Stop these workers for good (an environment was deleted)."""
        self._stopped.update(names)
        for name in names:
            # A worker started again under this name must register anew: waiting on the old,
            # already-set event answered a spawn before its worker was known to the broker.
            self._registered.pop(name, None)
        await self._terminate([p for n, p in self.processes.items() if n in names], grace)

    async def stop(self, grace: float = 5.0) -> None:
        """Terminate every worker; kill those still alive after ``grace`` seconds."""
        self._stopping = True
        await self._terminate(list(self.processes.values()), grace)

    async def _terminate(self, procs: list[Process], grace: float) -> None:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        with anyio.move_on_after(grace):
            for proc in procs:
                await proc.wait()
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
