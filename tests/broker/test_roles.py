"""Roles on the bus, in process (issue 13): a real Broker checking every message against the
role its sender's key has (rhzmq.wire.curve), with a fake pump that records what it would send
and says which role the message being handled came with (the real pump reads ZeroMQ's User-Id).
The same rules over real CURVE handshakes: tests/security/test_roles.py."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from test_routing import FakePump, finals_to

from broker import Broker
from rhzmq.wire.curve import CLIENT, GATEWAY, HEAD, node_role
from rhzmq.wire.protocol import Cmd, Status, node_agent, pack_header, pack_meta
from rhzmq.wire.version import PROTOCOL_VERSION

pytestmark = pytest.mark.anyio

USER = b"\x00user"
USER_2 = b"\x00user-2"
GW = b"\x00gateway"
NODE1 = b"\x00node-1"
NODE2 = b"\x00node-2"


class RolePump(FakePump):
    user = ""


def make_broker(max_inflight: int | None = None) -> tuple[Broker, RolePump]:
    broker = Broker("inproc://unused")
    pump = RolePump()
    broker._pump = pump  # type: ignore[assignment]
    broker._grant({HEAD, CLIENT, GATEWAY, node_role(1), node_role(2)})
    if max_inflight is not None:
        broker.max_inflight = max_inflight
    return broker, pump


def send(broker: Broker, pump: RolePump, role: str, frames: list[Any]) -> list[list[Any]]:
    pump.user = role
    broker._on_message(frames)
    return pump.take()


def ready(
    broker: Broker, pump: RolePump, role: str, wid: bytes, name: str, group: str = "", **meta: Any
) -> list[list[Any]]:
    body = {
        "name": name,
        "group": group or name,
        "pid": 100 + wid[-1],
        "protocol": PROTOCOL_VERSION,
    }
    header = pack_header(Cmd.READY, 0, 0, name.encode())
    return send(broker, pump, role, [wid, header, b"", pack_meta({**body, **meta})])


def call(broker: Broker, pump: RolePump, role: str, sender: bytes, n: int, name: str) -> Any:
    header = pack_header(Cmd.CALL, n, 0, name.encode())
    return send(broker, pump, role, [sender, header, pack_meta({"m": "f"}), b"args"])


def place(broker: Broker, pump: RolePump, group: str, node: int) -> None:
    meta = msgpack.packb({"group": group, "node": node})
    sent = send(broker, pump, CLIENT, [USER, pack_header(Cmd.PLACE, 1), meta])
    assert finals_to(sent, USER) == [(1, Status.OK, {})]


def denied(sent: list[list[Any]], to: bytes) -> str:
    ((_, status, body),) = finals_to(sent, to)
    assert status == Status.DENIED, body
    return str(body["message"])


async def test_a_nodes_key_cannot_call_put_spawn_or_shut_down() -> None:
    broker, pump = make_broker()
    ready(broker, pump, HEAD, b"\x00w0", "default", objects=["secret_fn"])
    assert "may not call objects" in denied(
        call(broker, pump, node_role(1), NODE1, 7, "secret_fn"), NODE1
    )
    for cmd in (Cmd.PUT, Cmd.SPAWN, Cmd.SHUTDOWN, Cmd.DELETE, Cmd.PLACE):
        sent = send(broker, pump, node_role(1), [NODE1, pack_header(cmd, 8, 0, b"x"), b"{}"])
        assert f"may not send {cmd.name}" in denied(sent, NODE1)
    assert broker.inflight == {} and broker.calls_routed == 0
    # The same call from the user's key goes through.
    (routed,) = call(broker, pump, CLIENT, USER, 9, "secret_fn")
    assert routed[0] == b"\x00w0" and routed[2] == USER


async def test_a_clients_key_is_never_a_worker() -> None:
    broker, pump = make_broker()
    ready(broker, pump, CLIENT, USER, "default", objects=["f"])
    assert broker.workers == {} and broker.directory == {}
    # Nor can it answer calls: a FINAL from it goes nowhere.
    ready(broker, pump, HEAD, b"\x00w0", "default", objects=["f"])
    call(broker, pump, CLIENT, USER_2, 1, "f")
    forged = [USER, pack_header(Cmd.FINAL, 1, 0), USER_2, b"FORGED"]
    assert send(broker, pump, CLIENT, forged) == []


async def test_the_gateways_key_calls_objects_but_never_the_machinery() -> None:
    broker, pump = make_broker()
    ready(broker, pump, HEAD, b"\x00w0", "default", objects=["f"])
    ready(broker, pump, HEAD, b"\x00a0", node_agent(0), group="__node__", objects=[node_agent(0)])
    (routed,) = call(broker, pump, GATEWAY, GW, 1, "f")
    assert routed[0] == b"\x00w0"
    message = denied(call(broker, pump, GATEWAY, GW, 2, node_agent(0)), GW)
    assert "'gateway' may not call '__node__.0'" in message
    sent = send(broker, pump, GATEWAY, [GW, pack_header(Cmd.PUT, 3, 0, b"g"), b"{}", b"spec"])
    assert "may not send PUT" in denied(sent, GW)
    # The built-in objects run shell commands, keep runs (forwarding pickles), write files and
    # deliver secrets as the cluster's owner: the gateway's key never reaches them either.
    ready(broker, pump, HEAD, b"\x00w1", "tools", objects=["rhzmq.run", "rhzmq.runs", "rhzmq.data"])
    for n, builtin in enumerate(["rhzmq.run", "rhzmq.runs", "rhzmq.data", "rhzmq.deliver"], 10):
        assert f"may not call {builtin!r}" in denied(
            call(broker, pump, GATEWAY, GW, n, builtin), GW
        )
    (routed,) = call(broker, pump, CLIENT, USER, 20, "rhzmq.runs")  # the owner's key does
    assert routed[0] == b"\x00w1"


async def test_the_machinery_keeps_its_names() -> None:
    broker, pump = make_broker()
    ready(broker, pump, HEAD, b"\x00a0", node_agent(0), group="__node__", objects=[node_agent(0)])
    ready(broker, pump, HEAD, b"\x00w0", "default", objects=["f", "g"])
    rename = pack_header(Cmd.RENAME, 1, 0, node_agent(0).encode())
    sent = send(broker, pump, CLIENT, [USER, rename, pack_meta({"to": "hijack"})])
    ((_, status, body),) = finals_to(sent, USER)
    assert status == Status.PROTOCOL and "keeps its name" in str(body["message"])
    for n, bad in enumerate(["..", ".", "__x", "a/b"], 2):
        header = pack_header(Cmd.RENAME, n, 0, b"f")
        ((_, status, _),) = finals_to(
            send(broker, pump, CLIENT, [USER, header, pack_meta({"to": bad})]), USER
        )
        assert status == Status.PROTOCOL
    assert set(broker.directory) == {node_agent(0).encode(), b"f", b"g"}


async def test_a_node_registers_only_its_own_agent_and_what_is_placed_on_it() -> None:
    broker, pump = make_broker()
    ready(broker, pump, HEAD, b"\x00a0", node_agent(0), group="__node__", objects=[node_agent(0)])
    # Node 1 may be __node__.1, never the head's agent or another node's.
    ready(broker, pump, node_role(1), NODE1 + b"a", node_agent(0), group="__node__")
    ready(broker, pump, node_role(1), NODE1 + b"b", node_agent(2), group="__node__")
    ready(
        broker, pump, node_role(1), NODE1, node_agent(1), group="__node__", objects=[node_agent(1)]
    )
    assert {w.name for w in broker.workers.values()} == {node_agent(0), node_agent(1)}
    # An environment nobody placed, or placed on node 2: not node 1's to register.
    ready(broker, pump, node_role(1), NODE1 + b"c", "train")
    place(broker, pump, "train", 2)
    ready(broker, pump, node_role(1), NODE1 + b"d", "train")
    assert "train" not in {w.name for w in broker.workers.values()}
    ready(broker, pump, node_role(2), NODE2, "train")
    assert broker.workers[NODE2].role == node_role(2)
    # Placement is the client's word alone.
    sent = send(
        broker,
        pump,
        node_role(1),
        [NODE1, pack_header(Cmd.PLACE, 5), msgpack.packb({"group": "train", "node": 1})],
    )
    assert "may not send PLACE" in denied(sent, NODE1)
    assert broker.placement["train"] == node_role(2)


async def test_a_node_cannot_claim_objects_another_env_is_rebuilding() -> None:
    broker, pump = make_broker()
    place(broker, pump, "a", 1)
    place(broker, pump, "b", 2)
    ready(broker, pump, node_role(1), NODE1, "a")
    put = [USER, pack_header(Cmd.PUT, 2, 0, b"model"), pack_meta({"worker": "a"}), b"spec"]
    send(broker, pump, CLIENT, put)
    send(broker, pump, node_role(1), [NODE1, pack_header(Cmd.FINAL, 2, 0), USER, b"ok"])
    broker._worker_gone(NODE1, "killed")  # its supervisor brings it back: "model" is held
    assert b"model" in broker.held
    # Node 2's env reports holding it, to get the calls parked for it: refused.
    ready(broker, pump, node_role(2), NODE2, "b", objects=["model"])
    assert b"model" not in broker.workers[NODE2].objects and b"model" in broker.held


async def test_a_nodes_status_shows_only_its_own_workers() -> None:
    broker, pump = make_broker()
    ready(broker, pump, HEAD, b"\x00w0", "default", objects=["f"])
    ready(broker, pump, node_role(1), NODE1, node_agent(1), group="__node__")
    sent = send(broker, pump, node_role(1), [NODE1, pack_header(Cmd.STATUS, 4)])
    body = msgpack.unpackb(sent[0][2])
    assert [w["name"] for w in body["workers"]] == [node_agent(1)]
    assert "objects" not in body and "endpoints" not in body
    sent = send(broker, pump, CLIENT, [USER, pack_header(Cmd.STATUS, 5)])
    assert len(msgpack.unpackb(sent[0][2])["workers"]) == 2


async def test_the_in_flight_limit_is_per_key_not_per_socket() -> None:
    broker, pump = make_broker(max_inflight=3)
    ready(broker, pump, HEAD, b"\x00w0", "default", objects=["f"])
    call(broker, pump, CLIENT, USER, 1, "f")
    call(broker, pump, CLIENT, USER, 2, "f")
    call(broker, pump, CLIENT, USER_2, 1, "f")  # the same key on a second socket
    ((_, status, body),) = finals_to(call(broker, pump, CLIENT, USER_2, 2, "f"), USER_2)
    assert status == Status.LIMIT and "per key" in body["message"]
    # Another key has its own share; a FINAL gives one back.
    assert call(broker, pump, HEAD, b"\x00local", 1, "f")[0][0] == b"\x00w0"
    send(broker, pump, HEAD, [b"\x00w0", pack_header(Cmd.FINAL, 1, 0), USER, b"r"])
    assert call(broker, pump, CLIENT, USER_2, 3, "f")[0][0] == b"\x00w0"


async def test_a_revoked_key_is_dropped_and_refused() -> None:
    broker, pump = make_broker()
    place(broker, pump, "train", 1)
    ready(broker, pump, node_role(1), NODE1, "train", objects=["model"])
    call(broker, pump, CLIENT, USER, 2, "model")
    broker._grant({HEAD, CLIENT, GATEWAY, node_role(2)})  # node-1.key removed from authorized/
    sent = pump.take()
    ((_, status, body),) = finals_to(sent, USER)
    assert status == Status.WORKER_DIED and "revoked" in body["message"]
    assert NODE1 not in broker.workers and b"model" not in broker.directory
    # Its connection is still open: whatever it sends now is refused.
    assert "allow-list" in denied(
        send(broker, pump, node_role(1), [NODE1, pack_header(Cmd.PING, 3)]), NODE1
    )
    ready(broker, pump, node_role(1), NODE1, "train", objects=["model"])
    assert NODE1 not in broker.workers


async def test_messages_without_a_role_are_refused() -> None:
    broker, pump = make_broker()
    ready(broker, pump, HEAD, b"\x00w0", "default", objects=["f"])
    assert "allow-list" in denied(call(broker, pump, "", b"\x00anon", 1, "f"), b"\x00anon")
    assert send(broker, pump, "", [b"\x00anon", b"xx"]) == []  # too short to answer
