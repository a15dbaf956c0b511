"""The broker: one ROUTER socket that routes calls between clients and workers.

It keeps three tables and nothing else:

* ``workers``   routing id -> :class:`WorkerInfo` (name, pid, objects, calls it holds, liveness)
* ``directory`` object name -> routing ids of the workers holding it (several for replicas;
  a call goes to the replica with the fewest calls in flight)
* ``inflight``  client id + call id -> (worker id, name to bind on success, client id)

The hot path (CALL in, PARTIAL/FINAL out) reads the header's command byte, slices the call id and
target, does one or two dict operations and re-orders frame references: no payload is decoded and
nothing is unpickled, so the broker is safe to run next to untrusted payloads and cheap per message.

Why the in-flight table: a worker can die at any moment (SIGKILL, OOM). The broker learns it from
the node supervisor at once (process exit) or from heartbeats within ``HEARTBEAT_LIVENESS``
intervals, and then sends every call that worker held a FINAL ``WORKER_DIED`` error, so no caller
waits forever on an answer that will never come.

Clients die too. A client with calls in flight PINGs every heartbeat interval (see
rhzmq.wire.client), and its PINGs say which process it is (pid and machine). One silent for
``HEARTBEAT_LIVENESS`` intervals has its calls cancelled on their workers and forgotten, so a
killed client leaves neither running work nor table entries behind; each of its calls is also
answered with a CANCELLED FINAL saying why, so a client that was only frozen never waits
forever. Except: a client on this machine whose process still exists is stopped or suspended
(Ctrl-Z, a laptop that slept), not dead, and keeps its calls. ZeroMQ cannot tell the broker when a
peer's connection closes (``ZMQ_ROUTER_NOTIFY`` is a draft API, absent from pyzmq's libzmq), so
the pid is what tells the two apart; for a client on another machine (through an SSH tunnel)
nothing can, and silence means gone.

Rebuilding after a crash, with no blind window: the broker keeps each PUT's spec frames (opaque
bytes, never decoded) per object and worker name. When a worker dies without saying goodbye
(killed, crashed, hung, connection lost) its supervisor restarts it under the same name, so the
broker keeps *serving what it knows* meanwhile: the worker name is ``restarting`` and every
object left without a live holder is ``held``. ``keys()`` and ``status()`` still list them (marked
as rebuilding); calls to a held object, and PUTs to a restarting worker, are parked and replayed
once the worker registered and the object was rebuilt (the broker replays the PUTs into it, so
objects come back with their initial state). A parked call ends with its caller's ``timeout=``,
or with ``WORKER_DIED`` naming the cause if the rebuild fails or the worker is not back within
``rebuild_timeout`` (``RHZMQ_REBUILD_TIMEOUT``, 30 s). A worker that leaves on purpose (its
DISCONNECT, its environment deleted) is not waited for.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import msgpack
import zmq

from rhzmq.wire.config import MACHINE_ID, process_exists
from rhzmq.wire.curve import CLIENT, GATEWAY, HEAD, RoleAuthenticator, node_role, server_keys
from rhzmq.wire.exceptions import ObjectNotFound
from rhzmq.wire.limits import Limits
from rhzmq.wire.protocol import (
    CALL_ID,
    COMMAND,
    FLAGS,
    HEADER_SIZE,
    KEY_PEER,
    MAGIC,
    MAGIC_BYTES,
    NODE_GROUP,
    PREFIX,
    PREFIX_BYTES,
    TARGET,
    VERSION_BYTE,
    Cmd,
    Status,
    check_header,
    final_error,
    is_internal,
    key_call_id,
    name_problem,
    node_agent,
    pack_header,
    read_call_id,
    unpack_meta,
    version_message,
)
from rhzmq.wire.pump import Pump
from rhzmq.wire.settings import HEARTBEAT_INTERVAL, HEARTBEAT_LIVENESS
from rhzmq.wire.types import Identity
from rhzmq.wire.version import PROTOCOL_VERSION, __version__

log = logging.getLogger("rhzmq.broker")

_CALL, _CANCEL, _PARTIAL, _FINAL = Cmd.CALL, Cmd.CANCEL, Cmd.PARTIAL, Cmd.FINAL
_NOT_FOUND = Status.NOT_FOUND
_HB = pack_header(Cmd.HEARTBEAT)
_DISCONNECT = pack_header(Cmd.DISCONNECT)

# What each role may send (the roles: rhzmq.wire.curve). Checked for every message on a broker
# with CURVE; a broker on a 0700 unix socket only has the owner's processes as peers.
_WORKER_CMDS = frozenset({Cmd.READY, Cmd.HEARTBEAT, Cmd.DISCONNECT, _PARTIAL, _FINAL})
_CALLER_CMDS = frozenset({_CALL, _CANCEL, Cmd.CREDIT, Cmd.KEYS, Cmd.STATUS, Cmd.PING})
_OWNER_CMDS = _CALLER_CMDS | {Cmd.PUT, Cmd.DELETE, Cmd.RENAME, Cmd.SPAWN, Cmd.PLACE, Cmd.SHUTDOWN}
PERMITTED: dict[str, frozenset[int]] = {
    HEAD: _OWNER_CMDS | _WORKER_CMDS,  # the head's own processes: workers, agent, local clients
    CLIENT: _OWNER_CMDS,  # a user's machine: never a worker
    GATEWAY: _CALLER_CMDS,  # calls objects (never ``__*`` names), reads keys and status
}
#: A node's agent and workers: they register (only what is placed on their node) and answer the
#: calls routed to them; STATUS shows them only their own workers (the node reaps unlisted ones).
NODE_PERMITTED = _WORKER_CMDS | {Cmd.PING, Cmd.STATUS}


class NodeHooks(Protocol):
    """What the broker asks of the node supervisor running beside it (see rhzmqd)."""

    def spawn(self, cid: Identity, call_id: int, meta: dict[str, Any]) -> None:
        """Make sure the workers of an environment run; answer the caller when they do."""

    def stop_group(self, cid: Identity, call_id: int, group: str) -> None:
        """Stop every worker of an environment; answer the caller when they are gone."""

    def kill(self, name: str, pid: int) -> None:
        """Kill a hung worker process (``name`` with ``pid``) so it gets restarted."""


@dataclass
class Restarting:
    """A worker name that died without a goodbye and that its supervisor brings back."""

    group: str
    reason: str
    since: float  # time.monotonic()
    deadline: float
    parked: list[list[Any]] = field(default_factory=list)  # PUTs for it, replayed on READY
    expired: str = ""  # past the rebuild limit: why PUTs for it fail at once until it is back
    failed_restarts: int = 0
    last_failure: str = ""

    def why(self) -> str:
        """Its death, and what became of its restarts since."""
        if not self.failed_restarts:
            return self.reason
        return (
            f"{self.reason}; {self.failed_restarts} restart(s) since failed, the last "
            f"{self.last_failure}"
        )


@dataclass
class Held:
    """An object whose every holder is restarting: calls to it wait for the rebuild."""

    workers: set[str]  # worker names that bring it back (by rebuild, or by reporting it)
    reason: str
    since: float
    parked: list[list[Any]] = field(default_factory=list)  # CALL messages, replayed on rebind
    failed: str = ""  # its worker is past the rebuild limit: why calls fail at once meanwhile


@dataclass
class WorkerInfo:
    wid: Identity
    name: str
    pid: int
    node: str
    capacity: int
    version: str
    expiry: float
    objects: set[bytes] = field(default_factory=set)
    calls: set[bytes] = field(default_factory=set)
    started: float = field(default_factory=time.time)
    calls_done: int = 0
    group: str = "default"
    stats: dict[str, Any] = field(default_factory=dict)
    leaving: bool = False  # stopped on purpose (its env is being deleted): not waited for
    role: str = HEAD  # its key's role (rhzmq.wire.curve); HEAD on a broker without CURVE


class Broker:
    """Route calls between clients and workers; see the module docstring.

    ``await task_group.start(broker.serve)`` binds and returns the bound endpoint.
    ``on_shutdown`` is called when a client sends SHUTDOWN (the daemon stops its workers and then
    calls :meth:`finish_shutdown`).
    """

    def __init__(
        self,
        address: str | list[str] = "tcp://127.0.0.1:0",
        *,
        hwm: int = 100_000,
        on_shutdown: Callable[[], Any] | None = None,
        node: NodeHooks | None = None,
        curve_dir: Path | None = None,
    ) -> None:
        self.curve_dir = (
            curve_dir  # set: CURVE on every endpoint, ZAP allow-list (rhzmq.wire.curve)
        )
        # Several endpoints on one socket: ipc:// for peers on this machine (no TCP stack; it
        # measured ~100 us faster per call), loopback TCP for SSH tunnels and other hosts.
        self.addresses = [address] if isinstance(address, str) else list(address)
        self.hwm = hwm
        self.on_shutdown = on_shutdown
        self.node = node
        self.workers: dict[Identity, WorkerInfo] = {}
        self.directory: dict[bytes, list[Identity]] = {}
        # object name -> worker name -> the PUT's [meta, *spec] frames, for rebuilds
        self.specs: dict[bytes, dict[str, list[bytes]]] = {}
        self._own_ids = itertools.count(1)
        self.inflight: dict[bytes, tuple[Identity, bytes | None, Identity]] = {}
        self.endpoints: list[str] = []
        self.started = time.time()
        # Told in every PING answer: a client that sees another value knows the broker it sent
        # its calls to is gone (restarted at the same endpoint), and with it those calls.
        self.instance = os.urandom(8).hex()
        self.calls_routed = 0
        self._pump: Pump | None = None
        self._shutdown_waiters: list[tuple[Identity, bytes]] = []
        self._put_frames: dict[bytes, list[bytes]] = {}
        # client id -> [calls in flight, when we last heard from it, its pid if on this machine,
        # its share, its role]: one lookup per message. The share is the in-flight count the
        # limit applies to: per role (one key: every socket of a peer together) with CURVE, per
        # socket without (all peers are the owner's processes then).
        self.clients: dict[Identity, list[Any]] = {}
        self._shares: dict[str, list[int]] = {}
        # Roles (rhzmq.wire.curve): what each granted role may send (None: no CURVE, no checks),
        # and which node's role each environment was placed on (PLACE, by a client).
        self.auth: RoleAuthenticator | None = None
        self._permits: dict[str, frozenset[int]] | None = None
        self._gateway_permits: frozenset[int] | None = None
        self.placement: dict[str, str] = {}
        self._denials_logged: set[tuple[str, int]] = set()
        self.limits = Limits.from_env()
        self.max_inflight = self.limits.max_inflight
        # The recovery window (see the module docstring): worker names coming back, objects
        # waiting for them, and where each parked call sits (for CANCEL and dead clients).
        self.restarting: dict[str, Restarting] = {}
        self.held: dict[bytes, Held] = {}
        self.parked: dict[bytes, bytes] = {}  # client id + call id -> held object name
        self._now = time.monotonic()  # refreshed by the heartbeat loop: cheap on the hot path
        self._stopped = anyio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The first bound endpoint (the one local peers should use)."""
        return self.endpoints[0] if self.endpoints else ""

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[list[str]] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # unroutable sends raise instead of vanishing
        sock.setsockopt(zmq.SNDHWM, self.hwm)
        sock.setsockopt(zmq.RCVHWM, self.hwm)
        # A hard guard for peers that skip the sender-side size check (they get disconnected).
        sock.setsockopt(zmq.MAXMSGSIZE, self.limits.max_message_bytes + (1 << 20))
        auth = None
        if self.curve_dir is not None:
            # The authenticator must answer before the first peer connects: start it first.
            auth = self.auth = RoleAuthenticator(self.curve_dir / "authorized")
            auth.start()
            self._grant(auth.reload())
            self._load_placement()
            keys = server_keys(self.curve_dir)
            sock.curve_server = True
            sock.curve_secretkey = keys["secret"]
            sock.curve_publickey = keys["public"]
        try:
            for address in self.addresses:
                if address.startswith("tcp://") and address.endswith(":0"):
                    base = address.rsplit(":", 1)[0]
                    self.endpoints.append(f"{base}:{sock.bind_to_random_port(base)}")
                else:
                    sock.bind(address)
                    self.endpoints.append(sock.getsockopt_string(zmq.LAST_ENDPOINT))
        except zmq.ZMQError:
            sock.close(linger=0)
            if auth is not None:
                auth.stop()
            raise
        self._pump = Pump(
            sock,
            # Without CURVE there are no roles to check: messages go straight to routing (one
            # Python call less per message on the hot path).
            self._on_message if auth is not None else self._route,
            router=True,
            on_unroutable=self._unroutable,
            zero_copy=True,
            user_ids=auth is not None,
        )
        log.info(
            "broker %s (protocol v%d) listening on %s",
            __version__,
            PROTOCOL_VERSION,
            ", ".join(self.endpoints),
        )
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeat_loop)
                task_status.started(self.endpoints)
                await self._stopped.wait()
                tg.cancel_scope.cancel()
        finally:
            # Bounded linger: the last replies (SHUTDOWN's among them) are still delivered when
            # the process terminates the context, without a stuck peer holding it up.
            self._pump.close(linger=100)
            if auth is not None:
                auth.stop()

    def stop(self) -> None:
        self._stopped.set()

    def attach_node(self, node: NodeHooks) -> None:
        """The node supervisor beside this broker (it needs the bound endpoint, so it comes
        after :meth:`serve` started)."""
        self.node = node

    def busy(self) -> bool:
        """Whether anything is going on: calls in flight, or clients heard from lately
        (autostop waits for neither)."""
        return bool(self.inflight or self.clients or self.parked)

    def finish_shutdown(self) -> None:
        """Tell the node agents of other hosts to stop, answer the SHUTDOWN callers, then stop."""
        for w in self.workers.values():
            if w.group == NODE_GROUP:
                self._send([w.wid, pack_header(Cmd.SHUTDOWN)])
        for cid, call_id in self._shutdown_waiters:
            self._send(
                [
                    cid,
                    pack_header(_FINAL, int.from_bytes(call_id, "big"), Status.OK),
                    msgpack.packb(None),
                ]
            )
        self.stop()

    # -- sending -------------------------------------------------------------------------------

    def _send(self, frames: list[Any]) -> None:
        assert self._pump is not None
        self._pump.send(frames)

    def _unroutable(self, peer: Identity) -> None:
        """A message could not be delivered: the peer disconnected (ROUTER_MANDATORY told us)."""
        if peer in self.workers:
            self._worker_gone(peer, "its connection closed")
        elif peer in self.clients:
            self._drop_client(peer, "")  # its socket is closed: nobody will read its answers
        else:
            log.info("client %s is gone; dropped a message for it", peer.hex())

    def reply_error(
        self, cid: Identity, call_id: int, status: int, message: str, **extra: Any
    ) -> None:
        self._send([cid, *final_error(call_id, status, message, **extra)])

    # -- the hot path ------------------------------------------------------------------------

    def _on_message(self, frames: list[bytes]) -> None:
        """A message from a peer: checked against its sender's role, then routed."""
        if self._permits is not None and len(frames) > 1:
            assert self._pump is not None
            permits = self._permits.get(self._pump.user)
            if permits is None and self.auth is not None:
                # A key added since the last look (the handshake saw it before we did).
                self._grant(self.auth.reload())
                permits = self._permits.get(self._pump.user)
            header = frames[1]
            cmd = header[COMMAND] if len(header) > COMMAND else -1
            if (
                permits is None
                or cmd not in permits
                or (
                    permits is self._gateway_permits
                    and cmd == _CALL
                    and is_internal(bytes(header[TARGET]))
                )
            ):
                return self._deny(frames[0], header, cmd)
        self._route(frames)

    def _route(self, frames: list[bytes]) -> None:
        """Route a message (also replays of parked ones, whose sender was checked when they
        came in)."""
        if len(frames) < 2:
            log.warning(
                "dropped a %d-frame message from %s: too short to hold a header",
                len(frames),
                frames[0].hex(),
            )
            return
        sender = frames[0]
        header = frames[1]
        if header[PREFIX_BYTES] != PREFIX or len(header) < HEADER_SIZE:
            return self._bad_header(sender, header)
        cmd = header[COMMAND]
        if cmd == _PARTIAL or cmd == _FINAL:
            # [wid, header, cid, *payload] -> [cid, header, *payload]
            if len(frames) < 3:
                return self._protocol_error(
                    sender, header, "PARTIAL/FINAL without a client id frame"
                )
            cid = frames[2]
            key = cid + header[CALL_ID]
            entry = self.inflight.get(key)
            # Only the worker a call was routed to may answer it: any other peer's PARTIAL or
            # FINAL (forged, or a late answer to a call failed meanwhile) goes nowhere.
            if entry is None or entry[0] != sender:
                return
            if cmd == _FINAL:
                del self.inflight[key]
                client = self.clients.get(cid)
                if client is not None:
                    client[0] -= 1
                    client[3][0] -= 1
                worker = self.workers.get(sender)
                if worker is not None:
                    worker.calls.discard(key)
                    worker.calls_done += 1
                    if entry[1] is not None:
                        self._put_done(entry[1], worker, key, header[FLAGS], frames[3:])
            if cid:  # an empty client id marks a reply to the broker's own request
                self._send([cid, header, *frames[3:]])
            return
        if cmd == _CALL:
            # [cid, header, meta, *payload] -> [wid, header, cid, meta, *payload]
            wids = self.directory.get(header[TARGET])
            if not wids:
                return self._park_call(sender, header, frames)
            client = self.clients.get(sender)
            if client is None:
                client = self._new_client(sender)
            share = client[3]
            if share[0] >= self.max_inflight:
                return self._too_many(sender, header, share[0])
            share[0] += 1
            client[0] += 1
            client[1] = self._now
            # Least loaded replica: fewest calls in flight (usually just one candidate).
            wid = wids[0] if len(wids) == 1 else min(wids, key=self._load)
            key = sender + header[CALL_ID]
            self.inflight[key] = (wid, None, sender)
            self.workers[wid].calls.add(key)
            self.calls_routed += 1
            self._send([wid, header, sender, *frames[2:]])
            return
        self._on_control(cmd, sender, header, frames)

    # -- everything else -------------------------------------------------------------------------

    def _on_control(self, cmd: int, sender: Identity, header: bytes, frames: list[bytes]) -> None:
        problem = check_header(header)
        if problem:
            return self._protocol_error(sender, header, problem)
        call_id = read_call_id(header)
        target = header[TARGET]
        if cmd == Cmd.HEARTBEAT:
            w = self.workers.get(sender)
            if w is None:
                # A worker we do not know (we restarted): ask it to register again.
                self._send([sender, _DISCONNECT])
            else:
                w.expiry = time.monotonic() + HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS
                if len(frames) > 2:
                    try:
                        w.stats = unpack_meta(frames[2])
                    except Exception:
                        log.warning("worker %r sent an undecodable heartbeat", w.name)
        elif cmd == Cmd.CANCEL or cmd == Cmd.CREDIT:
            key = sender + header[CALL_ID]
            entry = self.inflight.get(key)
            if entry is not None:
                self._send([entry[0], header, sender])
            elif cmd == Cmd.CANCEL and key in self.parked:
                self._unpark(key)  # the caller gave up waiting for a rebuild
        elif cmd == Cmd.READY:
            self._on_ready(sender, frames)
        elif cmd == Cmd.DISCONNECT:
            if sender in self.workers:
                self._worker_gone(sender, "it disconnected", expect_back=False)
        elif cmd == Cmd.PUT:
            self._on_put(sender, header, call_id, target, frames)
        elif cmd == Cmd.DELETE:
            self._on_delete(sender, header, call_id, target)
        elif cmd == Cmd.RENAME:
            self._on_rename(sender, header, call_id, target, frames)
        elif cmd == Cmd.SPAWN:
            if self.node is None:
                return self.reply_error(
                    sender,
                    call_id,
                    Status.LIMIT,
                    "this broker has no node supervisor to start workers",
                )
            try:
                meta = unpack_meta(frames[2])
            except Exception as exc:
                return self._protocol_error(sender, header, f"SPAWN meta frame: {exc}")
            self.node.spawn(sender, call_id, meta)
        elif cmd == Cmd.PLACE:
            self._on_place(sender, header, call_id, frames)
        elif cmd == Cmd.KEYS:
            names = sorted(n.decode() for n in {*self.directory, *self.held})
            self._send([sender, pack_header(_FINAL, call_id, Status.OK), msgpack.packb(names)])
        elif cmd == Cmd.STATUS:
            role = self._role()
            body = self.status() if role in PERMITTED else self.node_status(role)
            self._send([sender, pack_header(_FINAL, call_id, Status.OK), msgpack.packb(body)])
        elif cmd == Cmd.PING:
            client = self.clients.get(sender)
            if client is None:
                client = self._new_client(sender)
            else:
                client[1] = self._now
            if len(frames) > 2:  # who it is: a process on this machine can be checked for life
                try:
                    hello = unpack_meta(frames[2])
                    if hello.get("machine") == MACHINE_ID:
                        client[2] = int(hello.get("pid") or 0)
                except Exception:
                    log.warning("client %s sent an undecodable PING", sender.hex())
            body = {
                "version": __version__,
                "protocol": PROTOCOL_VERSION,
                "pid": os.getpid(),
                "instance": self.instance,
            }
            self._send([sender, pack_header(_FINAL, call_id, Status.OK), msgpack.packb(body)])
        elif cmd == Cmd.SHUTDOWN:
            self._shutdown_waiters.append((sender, header[CALL_ID]))
            if self.on_shutdown is not None:
                self.on_shutdown()
            else:
                self.finish_shutdown()
        else:
            self._protocol_error(
                sender, header, f"command {Cmd(cmd).name} is not accepted by the broker"
            )

    # -- roles (rhzmq.wire.curve) ----------------------------------------------------------------

    def _role(self) -> str:
        """The role of the message being handled (HEAD on a broker without CURVE)."""
        return self._pump.user if self._permits is not None and self._pump is not None else HEAD

    def _grant(self, roles: set[str]) -> None:
        """Permit what the allow-list grants; peers admitted under a role it no longer grants
        (their key file was removed) are dropped."""
        permits = {r: PERMITTED.get(r, NODE_PERMITTED) for r in roles}
        self._gateway_permits = permits.get(GATEWAY)
        revoked = set(self._permits or ()) - set(permits)
        self._permits = permits
        for role in revoked:
            log.warning("key role %r was revoked: dropping its peers", role)
            for w in [w for w in self.workers.values() if w.role == role]:
                self._worker_gone(w.wid, f"its key ({role}) was revoked", expect_back=False)
            for cid in [c for c, entry in self.clients.items() if entry[4] == role]:
                self._drop_client(cid, f"this client's key ({role}) was revoked")
            self._shares.pop(role, None)

    def _deny(self, sender: Identity, header: bytes, cmd: int) -> None:
        role = self._pump.user if self._pump is not None else ""
        try:
            what = Cmd(cmd).name
        except ValueError:
            what = f"command {cmd}"
        if (role, cmd) not in self._denials_logged and len(self._denials_logged) < 1024:
            self._denials_logged.add((role, cmd))
            log.warning("refused %s from peer %s with role %r", what, sender.hex(), role)
        if cmd in _WORKER_CMDS or len(header) < HEADER_SIZE:
            return  # nothing to answer
        if self._permits is None or role not in self._permits:
            why = "its key is not (or no longer) on the broker's allow-list"
        elif cmd == _CALL:
            name = header[TARGET].decode(errors="replace")
            why = (
                f"a key with role {role!r} may not call {name!r}"
                if role == GATEWAY
                else f"a key with role {role!r} (a node's agent and workers) may not call objects"
            )
        else:
            why = f"a key with role {role!r} may not send {what}"
        self.reply_error(
            sender,
            read_call_id(header),
            Status.DENIED,
            f"the broker refused this message: {why}. Roles and what each may do: docs/security.md",
        )

    def _on_place(self, sender: Identity, header: bytes, call_id: int, frames: list[bytes]) -> None:
        """A client says where an environment runs: only that node's key may register its
        workers."""
        try:
            meta = unpack_meta(frames[2])
            group, node = str(meta["group"]), int(meta["node"])
        except Exception as exc:
            return self._protocol_error(sender, header, f"PLACE meta frame: {exc}")
        problem = name_problem(group, "environment name")
        if problem or not 0 <= node < 10_000:
            return self._protocol_error(sender, header, problem or f"no node {node}")
        role = HEAD if node == 0 else node_role(node)
        if self.placement.get(group) != role:
            self.placement[group] = role
            self._save_placement()
        self._send([sender, pack_header(_FINAL, call_id, Status.OK), msgpack.packb(None)])

    def _placement_file(self) -> Path | None:
        return self.curve_dir / "placement.json" if self.curve_dir is not None else None

    def _load_placement(self) -> None:
        """Placements outlive a broker restart: node workers re-register with the new one."""
        path = self._placement_file()
        try:
            saved = json.loads(path.read_text()) if path is not None and path.exists() else {}
            self.placement = {str(k): str(v) for k, v in dict(saved).items()}
        except (OSError, ValueError, TypeError) as exc:
            log.warning("could not read %s (%s): environments must be placed again", path, exc)

    def _save_placement(self) -> None:
        path = self._placement_file()
        if path is not None:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.placement))
            tmp.replace(path)

    def _may_register(self, role: str, name: str, group: str) -> bool:
        """Whether a peer with ``role`` may register worker ``name`` of ``group``."""
        if role == HEAD:
            return True
        if not role.startswith("node:"):
            return False
        if group == NODE_GROUP:
            return name == node_agent(int(role[5:]))
        return self.placement.get(group) == role

    def _on_ready(self, sender: Identity, frames: list[bytes]) -> None:
        try:
            meta = unpack_meta(frames[3])
            name, pid = str(meta["name"]), int(meta["pid"])
            group = str(meta.get("group") or name)
        except Exception as exc:
            log.warning("bad READY from %s: %s", sender.hex(), exc)
            return
        role = self._role()
        if not self._may_register(role, name, group):
            log.warning(
                "peer %s with role %r may not register worker %r of environment %r: ignored",
                sender.hex(),
                role,
                name,
                group,
            )
            return
        if meta.get("protocol") != PROTOCOL_VERSION:
            log.error("worker %r: %s", name, version_message(meta.get("protocol", 0)))
            self._send([sender, _DISCONNECT])
            return
        for other in list(self.workers.values()):
            if other.name == name and other.wid != sender:
                # A live worker keeps its name: a peer claiming it (to take its objects and
                # their specs) is ignored, and a genuine restart is let in once the old process
                # is known dead (at once from its supervisor, within HEARTBEAT_LIVENESS
                # intervals otherwise; the new one re-sends READY meanwhile).
                log.warning(
                    "peer %s claims worker name %r, held by live pid %d: ignored",
                    sender.hex(),
                    name,
                    other.pid,
                )
                return
        previous = self.workers.get(sender)
        if previous is not None:  # the same process registering again (it lost us for a while)
            previous.expiry = time.monotonic() + HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS
            self._send([sender, _HB])
            return
        worker = WorkerInfo(
            wid=sender,
            name=name,
            pid=pid,
            node=str(meta.get("node", socket.gethostname())),
            capacity=int(meta.get("capacity", 0)),
            version=str(meta.get("version", "?")),
            expiry=time.monotonic() + HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS,
            group=group,
            role=role,
        )
        self.workers[sender] = worker
        reported = {str(o).encode() for o in meta.get("objects", ())}
        for obj in list(reported):
            # A worker re-registering (after a broker restart) reports what it holds; it may not
            # take a name another env's live worker holds, nor a node agent's that is not its own.
            holders = [self.workers[w] for w in self.directory.get(obj, ()) if w in self.workers]
            foreign = any(h.group != worker.group for h in holders)
            held = self.held.get(obj)
            foreign = foreign or (held is not None and name not in held.workers)
            if foreign or (obj.startswith(b"__") and obj.decode(errors="replace") != name):
                log.warning("worker %r reported %r, which is not its own: ignored", name, obj)
                reported.discard(obj)
                continue
            self._bind(obj, worker)
        log.info("worker %r registered (pid %d, %d objects)", name, pid, len(worker.objects))
        self._send([sender, _HB])
        rebuilt = self._rebuild(worker, reported)
        back = self.restarting.pop(name, None)
        for held_name, held in list(self.held.items()):
            if name in held.workers and held_name not in rebuilt and held_name not in reported:
                # Nothing to bring it back with (no spec for this worker name): it is gone.
                self._give_up(held_name, name, Status.NOT_FOUND, "it had no spec to rebuild from")
        if back is not None:
            for msg in back.parked:  # PUTs that waited for this worker: their turn now
                self._route(msg)

    def _on_put(
        self, sender: Identity, header: bytes, call_id: int, target: bytes, frames: list[bytes]
    ) -> None:
        problem = name_problem(target.decode(errors="replace"), "object name")
        if problem or b"\xef\xbf\xbd" in target:
            return self._protocol_error(sender, header, problem or "the name is not UTF-8")
        try:
            meta = unpack_meta(frames[2])
        except Exception as exc:
            return self._protocol_error(sender, header, f"PUT meta frame: {exc}")
        wname = str(meta.get("worker") or "default")
        wid = next((w.wid for w in self.workers.values() if w.name == wname), None)
        restarting = self.restarting.get(wname) if wid is None else None
        if restarting is not None:
            if restarting.expired:
                return self.reply_error(sender, call_id, Status.WORKER_DIED, restarting.expired)
            restarting.parked.append(frames)  # sent once it is back
            if sender not in self.clients:
                self._new_client(sender)  # now, while its role is the message's
            return
        if wid is None:
            names = sorted(w.name for w in self.workers.values())
            return self.reply_error(
                sender,
                call_id,
                Status.NOT_FOUND,
                f"no worker named {wname!r} is running on the cluster (running: {', '.join(names) or 'none'})",
            )
        key = sender + header[CALL_ID]
        self.inflight[key] = (wid, target, sender)
        self._count(sender)
        self.workers[wid].calls.add(key)
        self._put_frames[key] = frames[2:]
        self._send([wid, header, sender, *frames[2:]])

    def _put_done(
        self, name: bytes, worker: WorkerInfo, key: bytes, status: int, body: list[Any]
    ) -> None:
        spec = self._put_frames.pop(key, None)
        own = not key[KEY_PEER]  # the broker's own rebuild (client id b"")
        if status != Status.OK:
            if own:
                why = _error_message(body)
                log.error(
                    "rebuilding %r in worker %r failed; it stays gone: %s",
                    name.decode(),
                    worker.name,
                    why,
                )
                self._give_up(name, worker.name, Status.WORKER_DIED, f"rebuilding it failed: {why}")
            return
        if own and worker.name not in self.specs.get(name, {}):
            # Deleted while it was being rebuilt: it must not come back.
            self._send([worker.wid, pack_header(Cmd.DELETE, 0, 0, name), b""])
            return
        self._bind(name, worker)
        if spec is not None:
            self.specs.setdefault(name, {})[worker.name] = spec

    def _bind(self, name: bytes, worker: WorkerInfo) -> None:
        holders = self.directory.get(name, [])
        keep = []
        for wid in holders:
            other = self.workers.get(wid)
            if other is None or wid == worker.wid:
                continue
            if other.group == worker.group:
                keep.append(wid)  # another replica of the same group
            else:
                # The name moved to another worker: the old copy must not linger there.
                other.objects.discard(name)
                self.specs.get(name, {}).pop(other.name, None)
                self._send([wid, pack_header(Cmd.DELETE, 0, 0, name), b""])
        keep.append(worker.wid)
        self.directory[name] = keep
        worker.objects.add(name)
        held = self.held.pop(name, None)
        if held is not None:
            for msg in self._take_parked(held):  # calls that waited for the rebuild go to it now
                self._route(msg)

    def _rebuild(self, worker: WorkerInfo, reported: set[bytes]) -> set[bytes]:
        """Replay the PUTs of objects this worker name held before it restarted; returns their
        names."""
        rebuilt: set[bytes] = set()
        for name, per_worker in self.specs.items():
            spec = per_worker.get(worker.name)
            if spec is None or name in reported:
                continue
            rebuilt.add(name)
            # Calls wait for it from now until it is bound (or its rebuild fails).
            held = self.held.get(name)
            if held is None:
                self.held[name] = Held({worker.name}, "its worker restarted", time.monotonic())
            else:
                held.workers.add(worker.name)
                held.failed = ""
            call_id = next(self._own_ids)
            key = call_id.to_bytes(8, "big")  # client id b"": the broker's own request
            self.inflight[key] = (worker.wid, name, b"")
            worker.calls.add(key)
            self._put_frames[key] = spec
            log.info(
                "rebuilding %r in restarted worker %r (its state starts afresh)",
                name.decode(),
                worker.name,
            )
            self._send([worker.wid, pack_header(Cmd.PUT, call_id, 0, name), b"", *spec])
        return rebuilt

    # -- the recovery window (see the module docstring) ------------------------------------------

    def _park_call(self, sender: Identity, header: bytes, frames: list[Any]) -> None:
        """A CALL to a name with no live holder: wait for its rebuild, or say it is unknown."""
        held = self.held.get(header[TARGET])
        if held is None:
            return self._not_found(sender, header)
        if held.failed:
            call_id = read_call_id(header)
            return self.reply_error(sender, call_id, Status.WORKER_DIED, held.failed)
        key = sender + header[CALL_ID]
        self.parked[key] = header[TARGET]
        held.parked.append(frames)
        client = self.clients.get(sender)
        if client is None:
            self._new_client(sender)
        else:
            client[1] = self._now

    def _take_parked(self, held: Held) -> list[list[Any]]:
        """Every call parked on ``held``, out of the queue and the index (to replay or fail)."""
        parked, held.parked = held.parked, []
        for msg in parked:
            self.parked.pop(msg[0] + msg[1][CALL_ID], None)
        return parked

    def _unpark(self, key: bytes) -> list[Any] | None:
        """Take a parked call out of its queue (its caller cancelled, or is gone)."""
        name = self.parked.pop(key, None)
        held = self.held.get(name) if name is not None else None
        if held is None:
            return None
        for i, msg in enumerate(held.parked):
            if msg[0] + msg[1][CALL_ID] == key:
                return held.parked.pop(i)
        return None

    def _give_up(
        self, name: bytes, worker: str, status: int, why: str, *, keep: bool = False
    ) -> None:
        """``worker`` will not bring ``name`` back (``keep``: not soon); if no other worker will,
        fail its callers. A kept name stays listed, and calls to it fail at once, until its
        worker is back and rebuilds it."""
        held = self.held.get(name)
        if held is None:
            return
        if not keep:
            held.workers.discard(worker)
            if held.workers:
                return
            del self.held[name]
        text = name.decode(errors="replace")
        message = (
            f"object {text!r} is gone: its worker {worker!r} died ({held.reason}) and {why}."
            if status == Status.NOT_FOUND
            else f"worker {worker!r} holding {text!r} died ({held.reason}) and {why}. "
            "See `rhzmq logs`; send the object again with .to(cluster) once the cause is fixed."
        )
        if keep:
            held.failed = message
        for msg in self._take_parked(held):
            extra = {"name": text} if status == Status.NOT_FOUND else {}
            self.reply_error(msg[0], read_call_id(msg[1]), status, message, **extra)

    def _expire_restarts(self, now: float) -> None:
        """Workers not back within the rebuild limit: their callers stop waiting."""
        for wname, r in self.restarting.items():
            if r.deadline > now or r.expired:
                continue
            why = f"it was not back within RHZMQ_REBUILD_TIMEOUT={self.limits.rebuild_timeout:g} s"
            r.expired = f"worker {wname!r} died ({r.why()}) and {why}. See `rhzmq logs`."
            log.error("worker %r did not come back after %s; calls to it fail", wname, r.reason)
            parked, r.parked = r.parked, []
            for msg in parked:
                call_id = read_call_id(msg[1])
                self.reply_error(msg[0], call_id, Status.WORKER_DIED, r.expired)
            for name, held in list(self.held.items()):
                if wname in held.workers:
                    held.reason = r.why()
                    self._give_up(name, wname, Status.WORKER_DIED, why, keep=True)

    def _on_delete(self, sender: Identity, header: bytes, call_id: int, target: bytes) -> None:
        if target == b"default" and b"default" not in self.directory:
            return self.reply_error(
                sender, call_id, Status.LIMIT, "the default worker cannot be deleted"
            )
        wids = self.directory.pop(target, None)
        self.specs.pop(target, None)
        held = self.held.pop(target, None)
        if held is not None:
            # Being rebuilt: it will not be (no spec left); its waiting callers are told.
            message = (
                f"object {target.decode(errors='replace')!r} was deleted while it was being rebuilt"
            )
            for msg in self._take_parked(held):
                self.reply_error(msg[0], read_call_id(msg[1]), Status.CANCELLED, message)
            if not wids:
                self._send([sender, pack_header(_FINAL, call_id, Status.OK), msgpack.packb(None)])
                return
        if not wids:
            group = target.decode(errors="replace")
            if self.node is not None and any(w.group == group for w in self.workers.values()):
                # Deleting an environment: its worker processes stop, and what they held goes.
                self.node.stop_group(sender, call_id, group)
                return
            return self._not_found(sender, header)
        key = sender + header[CALL_ID]
        first = True
        for wid in wids:
            worker = self.workers[wid]
            worker.objects.discard(target)
            if first:  # one replica answers the caller; the others are told quietly
                self.inflight[key] = (wid, None, sender)
                self._count(sender)
                worker.calls.add(key)
                self._send([wid, header, sender])
                first = False
            else:
                self._send([wid, pack_header(Cmd.DELETE, 0, 0, target), b""])

    def _on_rename(
        self, sender: Identity, header: bytes, call_id: int, target: bytes, frames: list[bytes]
    ) -> None:
        """Hold an object under another name: the directory, the rebuild specs and every worker
        holding it move to the new name at once (calls already running are not disturbed)."""
        try:
            new = str(unpack_meta(frames[2])["to"])
        except Exception as exc:
            return self._protocol_error(
                sender, header, f'RENAME meta frame needs {{"to": name}}: {exc}'
            )
        problem = name_problem(new, "new object name")
        if problem:
            return self.reply_error(sender, call_id, Status.PROTOCOL, problem)
        to = new.encode()
        old = target.decode(errors="replace")
        if target[:2] == b"__":
            return self.reply_error(
                sender, call_id, Status.PROTOCOL, f"{old!r} is the cluster's own: it keeps its name"
            )
        if target in self.held:
            return self.reply_error(
                sender, call_id, Status.WORKER_DIED, f"object {old!r} is being rebuilt; try again"
            )
        wids = self.directory.get(target)
        if not wids:
            return self._not_found(sender, header)
        if to in self.directory or to in self.held or to in self.specs:
            return self.reply_error(
                sender,
                call_id,
                Status.LIMIT,
                f"cannot rename {old!r} to {new!r}: an object named {new!r} exists; delete it first",
            )
        self.directory[to] = self.directory.pop(target)
        if target in self.specs:
            self.specs[to] = self.specs.pop(target)
        for wid in wids:
            worker = self.workers[wid]
            worker.objects.discard(target)
            worker.objects.add(to)
            self._send([wid, pack_header(Cmd.RENAME, 0, 0, target), b"", to])
        self._send([sender, pack_header(_FINAL, call_id, Status.OK), msgpack.packb(None)])

    def forget_group(self, group: str) -> None:
        """An environment is being deleted: its objects must not be rebuilt or routed to."""
        names = {w.name for w in self.workers.values() if w.group == group}
        names |= {n for n, r in self.restarting.items() if r.group == group}
        for per_worker in self.specs.values():
            for name in names:
                per_worker.pop(name, None)
        for name in names:
            self.restarting.pop(name, None)
        for obj, held in list(self.held.items()):
            for name in names & held.workers:
                self._give_up(obj, name, Status.NOT_FOUND, "its environment was deleted")
        for wid, w in self.workers.items():
            if w.group == group:
                w.leaving = True
                for obj in w.objects:
                    holders = self.directory.get(obj)
                    if holders and wid in holders:
                        holders.remove(wid)
                        if not holders:
                            del self.directory[obj]

    def _new_client(self, cid: Identity) -> list[Any]:
        """The entry of a client first heard from (the message being handled is its)."""
        role = self._role()
        share = self._shares.setdefault(role, [0]) if self._permits is not None else [0]
        client = self.clients[cid] = [0, self._now, 0, share, role]
        return client

    def _count(self, cid: Identity) -> None:
        """One more request of ``cid`` in flight (every in-flight entry counts: its FINAL, or
        its worker's death, takes one off)."""
        client = self.clients.get(cid)
        if client is None:
            client = self._new_client(cid)
        client[0] += 1
        client[3][0] += 1
        client[1] = self._now

    def _client_done(self, cid: Identity) -> None:
        client = self.clients.get(cid)
        if client is not None:
            client[0] -= 1
            client[3][0] -= 1

    def _too_many(self, sender: Identity, header: bytes, n: int) -> None:
        self.reply_error(
            sender,
            read_call_id(header),
            Status.LIMIT,
            f"this client already has {n:,} calls in flight (counted per key: all its sockets "
            "together), the most the broker accepts; wait for some to finish (fn.map bounds its "
            "calls), or raise RHZMQ_MAX_INFLIGHT on the daemon",
        )

    def _load(self, wid: Identity) -> int:
        return len(self.workers[wid].calls)

    # -- replies on behalf of the node supervisor ------------------------------------------------

    def reply(self, cid: Identity, call_id: int, status: int, frames: list[Any]) -> None:
        self._send([cid, pack_header(_FINAL, call_id, status), *frames])

    def partial(self, cid: Identity, call_id: int, kind: int, frames: list[Any]) -> None:
        self._send([cid, pack_header(Cmd.PARTIAL, call_id, kind), *frames])

    def _not_found(self, sender: Identity, header: bytes) -> None:
        name = header[TARGET].decode(errors="replace")
        known = [n.decode() for n in self.directory] + sorted(
            {w.group for w in self.workers.values()}
        )
        err = ObjectNotFound.for_name(name, known)
        self.reply_error(
            sender,
            read_call_id(header),
            _NOT_FOUND,
            str(err),
            name=name,
            matches=err.matches,
        )

    def _bad_header(self, sender: Identity, header: bytes) -> None:
        if (
            len(header) >= 12
            and header[MAGIC_BYTES] == MAGIC
            and header[VERSION_BYTE] != PROTOCOL_VERSION
        ):
            call_id = read_call_id(header)
            log.warning("peer %s: %s", sender.hex(), version_message(header[VERSION_BYTE]))
            return self.reply_error(
                sender, call_id, Status.VERSION, version_message(header[VERSION_BYTE])
            )
        self._protocol_error(sender, header, check_header(header) or "malformed header")

    def _protocol_error(self, sender: Identity, header: bytes, problem: str) -> None:
        log.warning("protocol error from peer %s: %s", sender.hex(), problem)
        if sender in self.workers:
            return  # a worker gets no reply it could confuse with a call
        call_id = read_call_id(header) if len(header) >= 12 else 0
        self.reply_error(
            sender, call_id, Status.PROTOCOL, f"the broker rejected a message: {problem}"
        )

    # -- liveness ----------------------------------------------------------------------------

    def worker_exited(self, name: str, pid: int, reason: str, restarting: bool = True) -> None:
        """Called by the node supervisor when a worker process ends (faster than heartbeats);
        ``restarting``: the supervisor brings it back under the same name."""
        for w in list(self.workers.values()):
            if w.pid == pid and w.name == name:  # pids repeat across hosts: the name too
                return self._worker_gone(w.wid, reason, expect_back=restarting)
        r = self.restarting.get(name)
        if r is not None:  # a restart that died before it registered
            r.failed_restarts += 1
            r.last_failure = reason

    def _worker_gone(self, wid: Identity, reason: str, expect_back: bool = True) -> None:
        worker = self.workers.pop(wid, None)
        if worker is None:
            return
        expect_back = expect_back and not worker.leaving
        now = time.monotonic()
        if not expect_back:
            # Calls parked for objects it was rebuilding must not wait for it.
            for obj, waiting in list(self.held.items()):
                if worker.name in waiting.workers:
                    self._give_up(obj, worker.name, Status.NOT_FOUND, "its worker left")
        if expect_back:
            self.restarting[worker.name] = Restarting(
                worker.group, reason, now, now + self.limits.rebuild_timeout
            )
        log.warning(
            "worker %r (pid %d) is gone: %s; failing %d calls",
            worker.name,
            worker.pid,
            reason,
            len(worker.calls),
        )
        for name in worker.objects:
            holders = self.directory.get(name)
            if holders and wid in holders:
                holders.remove(wid)
                if not holders:
                    del self.directory[name]
                    if expect_back:
                        held = self.held.get(name)
                        if held is None:
                            self.held[name] = Held({worker.name}, reason, now)
                        else:
                            held.workers.add(worker.name)
        message = (
            f"worker {worker.name!r} (pid {worker.pid}) died during the call: {reason}. "
            "Its supervisor restarts it and rebuilds the objects it held from their specs, "
            "with their state starting afresh."
        )
        if self.node is not None and "heartbeat" in reason:
            # Hung (e.g. stuck in C holding the GIL): restart it. The node kills the pid only if
            # it is its own process under that name: a peer claiming a real worker's pid in its
            # READY and then falling silent must not get that worker killed.
            self.node.kill(worker.name, worker.pid)
        for key in worker.calls:
            self._put_frames.pop(key, None)
            entry = self.inflight.pop(key, None)
            if entry is not None and entry[2]:
                self._client_done(entry[2])
            if entry is not None and entry[2]:
                self.reply_error(entry[2], key_call_id(key), Status.WORKER_DIED, message)

    def _reap_clients(self, now: float) -> None:
        """Forget clients silent for HEARTBEAT_LIVENESS intervals, cancelling their calls, unless
        the process is alive on this machine (see the module docstring)."""
        deadline = now - HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS
        for cid, (calls, seen, pid, _, _) in list(self.clients.items()):
            if seen >= deadline:
                continue
            busy = calls > 0 or any(k[KEY_PEER] == cid for k in self.parked)
            if not busy:
                del self.clients[cid]
            elif not (pid and process_exists(pid)):
                self._drop_client(
                    cid,
                    f"the broker heard nothing from this client for {now - seen:.0f} s and "
                    "cancelled its calls, taking it for dead (a client on another machine that "
                    "slept, or lost its connection, cannot be told apart from one that died)",
                )

    def _drop_client(self, cid: Identity, why: str) -> None:
        """Cancel a client's calls on their workers and forget it; ``why``: tell the client (it
        may still be there, e.g. a process that was stopped), or "" when its connection closed."""
        for key, (wid, _, owner) in list(self.inflight.items()):
            # pop, not del: a send below can fail and run _unroutable, which may drop this
            # client (or a worker) too and take calls from inflight before this loop reaches them.
            if owner != cid or self.inflight.pop(key, None) is None:
                continue
            self._put_frames.pop(key, None)
            worker = self.workers.get(wid)
            call_id = key_call_id(key)
            if worker is not None:
                worker.calls.discard(key)
                self._send([wid, pack_header(Cmd.CANCEL, call_id), cid])
            if why:
                self.reply_error(cid, call_id, Status.CANCELLED, why)
            log.info(
                "client %s is gone: cancelled its call on worker %r",
                cid.hex(),
                worker.name if worker else "?",
            )
        for key in [k for k in self.parked if k[KEY_PEER] == cid]:
            if self._unpark(key) is not None and why:
                self.reply_error(cid, key_call_id(key), Status.CANCELLED, why)
        client = self.clients.pop(cid, None)
        if client is not None:
            client[3][0] -= client[0]  # its calls no longer count against its key's share

    async def _heartbeat_loop(self) -> None:
        while True:
            await anyio.sleep(HEARTBEAT_INTERVAL)
            now = self._now = time.monotonic()
            if self.auth is not None:
                roles = self.auth.reload()
                if self._permits is not None and roles != set(self._permits):
                    self._grant(roles)
            self._reap_clients(now)
            if self.restarting:
                self._expire_restarts(now)
            for w in list(self.workers.values()):
                if w.expiry < now:
                    self._worker_gone(
                        w.wid, f"no heartbeat for {HEARTBEAT_LIVENESS * HEARTBEAT_INTERVAL:.0f} s"
                    )
                else:
                    self._send([w.wid, _HB])

    def node_status(self, role: str) -> dict[str, Any]:
        """What a node's key may see: the workers registered with it."""
        full = self.status()
        own = {w.name for w in self.workers.values() if w.role == role}
        return {
            "version": full["version"],
            "protocol": full["protocol"],
            "workers": [w for w in full["workers"] if w["name"] in own],
        }

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "pid": os.getpid(),
            "endpoints": self.endpoints,
            "uptime": time.time() - self.started,
            "calls_routed": self.calls_routed,
            "inflight": len(self.inflight),
            "clients": len(self.clients),
            "objects": {
                **{
                    n.decode(): ", ".join(sorted(h.workers)) + " (rebuilding)"
                    for n, h in self.held.items()
                },
                **{
                    n.decode(): ", ".join(self.workers[w].name for w in ws if w in self.workers)
                    for n, ws in self.directory.items()
                },
            },
            # Objects whose worker died and is being restarted: calls to them wait.
            "rebuilding": {
                n.decode(): {
                    "workers": sorted(h.workers),
                    "reason": h.reason,
                    "seconds": round(now - h.since, 1),
                    "waiting_calls": len(h.parked),
                    **({"failed": h.failed} if h.failed else {}),
                }
                for n, h in self.held.items()
            },
            "restarting": [
                {"name": n, "env": r.group, "reason": r.reason, "seconds": round(now - r.since, 1)}
                for n, r in self.restarting.items()
            ],
            "workers": [
                {
                    "name": w.name,
                    "env": w.group,
                    "pid": w.pid,
                    "node": w.node,
                    "version": w.version,
                    "objects": sorted(o.decode() for o in w.objects),
                    "inflight": len(w.calls),
                    "calls_done": w.calls_done,
                    "uptime": time.time() - w.started,
                    "cpu_seconds": w.stats.get("cpu"),
                    "rss_bytes": w.stats.get("rss"),
                }
                for w in self.workers.values()
            ],
        }


def _error_message(body: list[Any]) -> str:
    """The message of an error FINAL's body (a small msgpack map; never a pickle)."""
    try:
        return str(msgpack.unpackb(bytes(body[0])).get("message", "")) or "no reason given"
    except Exception:
        return "an undecodable error"
