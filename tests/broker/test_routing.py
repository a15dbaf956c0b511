"""The broker's routing, in process: a real Broker whose socket is replaced by a fake pump that
records what it would send. Every table transition of the hot path and of the recovery window,
without processes or timing (the end-to-end suites cover those)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import msgpack
import pytest
from helpers import router_and_peer

from broker import Broker
from rhzmq.wire.config import MACHINE_ID
from rhzmq.wire.protocol import Cmd, Status, pack_header, pack_meta, read_call_id
from rhzmq.wire.pump import Pump
from rhzmq.wire.version import PROTOCOL_VERSION

pytestmark = pytest.mark.anyio

CLIENT = b"\x00client-a"
OTHER = b"\x00client-b"


class FakePump:
    def __init__(self) -> None:
        self.sent: list[list[Any]] = []

    def send(self, frames: list[Any]) -> None:
        self.sent.append(list(frames))

    def take(self) -> list[list[Any]]:
        sent, self.sent = self.sent, []
        return sent


def make_broker() -> tuple[Broker, FakePump]:
    broker = Broker("inproc://unused")
    pump = FakePump()
    broker._pump = pump  # type: ignore[assignment]
    return broker, pump


def ready(broker: Broker, wid: bytes, name: str, pid: int, objects: tuple[str, ...] = ()) -> None:
    meta = {"name": name, "pid": pid, "protocol": PROTOCOL_VERSION, "objects": list(objects)}
    broker._on_message([wid, pack_header(Cmd.READY, 0, 0, name.encode()), b"", pack_meta(meta)])


def call(broker: Broker, client: bytes, call_id: int, name: str, payload: bytes = b"args") -> None:
    header = pack_header(Cmd.CALL, call_id, 0, name.encode())
    broker._on_message([client, header, pack_meta({"m": ""}), payload])


def final(broker: Broker, wid: bytes, client: bytes, call_id: int, status: int = 0) -> None:
    broker._on_message([wid, pack_header(Cmd.FINAL, call_id, status), client, b"result"])


def put(broker: Broker, client: bytes, call_id: int, name: str, worker: str = "default") -> None:
    header = pack_header(Cmd.PUT, call_id, 0, name.encode())
    broker._on_message([client, header, pack_meta({"worker": worker}), b"spec"])


def finals_to(sent: list[list[Any]], client: bytes) -> list[tuple[int, int, dict[str, Any]]]:
    """(call id, status, error body or {}) of each FINAL sent to ``client``."""
    out = []
    for msg in sent:
        if msg[0] == client and msg[1][3] == Cmd.FINAL:
            body = msgpack.unpackb(msg[2]) if msg[1][12] else {}
            out.append((read_call_id(msg[1]), msg[1][12], body))
    return out


async def test_a_call_is_routed_untouched_and_its_final_comes_back() -> None:
    broker, pump = make_broker()
    ready(broker, b"W1", "default", 101, objects=("add",))
    pump.take()
    call(broker, CLIENT, 7, "add", payload=b"\x01\x02")
    (msg,) = pump.take()
    assert msg[0] == b"W1" and msg[2] == CLIENT and msg[-1] == b"\x01\x02"
    assert read_call_id(msg[1]) == 7
    assert len(broker.inflight) == 1 and broker.clients[CLIENT][0] == 1
    final(broker, b"W1", CLIENT, 7)
    (back,) = pump.take()
    assert back[0] == CLIENT and back[1][3] == Cmd.FINAL and back[2] == b"result"
    assert broker.inflight == {} and broker.clients[CLIENT][0] == 0


async def test_unknown_names_are_not_found_with_close_matches() -> None:
    broker, pump = make_broker()
    ready(broker, b"W1", "default", 101, objects=("counter",))
    pump.take()
    call(broker, CLIENT, 1, "countr")
    ((cid, status, body),) = finals_to(pump.take(), CLIENT)
    assert (cid, status) == (1, Status.NOT_FOUND)
    assert body["matches"] == ["counter"] and "Did you mean 'counter'" in body["message"]


async def test_replicas_get_the_least_loaded_calls() -> None:
    broker, pump = make_broker()
    ready(broker, b"W1", "env", 101, objects=("f",))
    meta = {"name": "env.1", "group": "env", "pid": 102, "protocol": PROTOCOL_VERSION}
    broker._on_message([b"W2", pack_header(Cmd.READY, 0, 0, b"env.1"), b"", pack_meta(meta)])
    put(broker, CLIENT, 1, "f", worker="env.1")
    final(broker, b"W2", CLIENT, 1)
    pump.take()
    for i in range(2, 6):
        call(broker, CLIENT, i, "f")
    targets = [msg[0] for msg in pump.take()]
    assert targets.count(b"W1") == 2 and targets.count(b"W2") == 2


async def test_a_dead_workers_calls_fail_and_its_objects_wait_for_the_rebuild() -> None:
    broker, pump = make_broker()
    ready(broker, b"W1", "default", 101)
    put(broker, CLIENT, 1, "obj")
    final(broker, b"W1", CLIENT, 1)
    call(broker, CLIENT, 2, "obj")
    pump.take()
    broker.worker_exited("default", 101, "killed by SIGKILL")
    ((cid, status, body),) = finals_to(pump.take(), CLIENT)
    assert (cid, status) == (2, Status.WORKER_DIED) and "SIGKILL" in body["message"]
    # The window: the object is still listed and calls to it are parked, not "not found".
    assert broker.held[b"obj"].workers == {"default"}
    call(broker, OTHER, 3, "obj")
    assert finals_to(pump.take(), OTHER) == []
    assert broker.status()["rebuilding"]["obj"]["waiting_calls"] == 1
    # The worker comes back: the broker replays the PUT; once it is built, the call goes in.
    ready(broker, b"W9", "default", 109)
    (rebuild,) = [m for m in pump.take() if m[0] == b"W9" and m[1][3] == Cmd.PUT]
    assert rebuild[2] == b"" and rebuild[-1] == b"spec"  # client id b"": the broker's own
    broker._on_message([b"W9", pack_header(Cmd.FINAL, read_call_id(rebuild[1]), 0), b"", b"x"])
    (delivered,) = pump.take()
    assert delivered[0] == b"W9" and delivered[2] == OTHER and read_call_id(delivered[1]) == 3
    assert broker.held == {} and broker.parked == {}


async def test_a_failed_rebuild_fails_the_waiting_calls_with_its_reason() -> None:
    broker, pump = make_broker()
    ready(broker, b"W1", "default", 101)
    put(broker, CLIENT, 1, "obj")
    final(broker, b"W1", CLIENT, 1)
    broker.worker_exited("default", 101, "exited with code 3")
    call(broker, OTHER, 5, "obj")
    ready(broker, b"W2", "default", 102)
    (rebuild,) = [m for m in pump.take() if m[0] == b"W2" and m[1][3] == Cmd.PUT]
    error = msgpack.packb({"type": "RemoteError", "message": "ValueError: bad config"})
    broker._on_message(
        [b"W2", pack_header(Cmd.FINAL, read_call_id(rebuild[1]), Status.REMOTE), b"", error]
    )
    ((cid, status, body),) = finals_to(pump.take(), OTHER)
    assert (cid, status) == (5, Status.WORKER_DIED)
    assert "rebuilding it failed: ValueError: bad config" in body["message"]


async def test_a_worker_not_back_in_time_fails_parked_calls_and_puts() -> None:
    broker, pump = make_broker()
    ready(broker, b"W1", "default", 101, objects=("agent",))
    broker.worker_exited("default", 101, "killed by SIGKILL")
    call(broker, CLIENT, 1, "agent")
    put(broker, CLIENT, 2, "new")  # .to() waits for the default worker too
    assert finals_to(pump.take(), CLIENT) == []
    broker.worker_exited("default", 555, "exited with code 7")  # a restart that died early
    broker._expire_restarts(broker.restarting["default"].deadline + 1)
    results = {cid: (status, body) for cid, status, body in finals_to(pump.take(), CLIENT)}
    assert results[1][0] == results[2][0] == Status.WORKER_DIED
    assert "the last exited with code 7" in results[2][1]["message"]
    call(broker, CLIENT, 3, "agent")  # past the limit: fails at once, still listed
    ((_, status, _),) = finals_to(pump.take(), CLIENT)
    assert status == Status.WORKER_DIED and "agent" in broker.status()["objects"]


async def test_cancel_and_delete_reach_parked_calls() -> None:
    broker, pump = make_broker()
    ready(broker, b"W1", "default", 101)
    put(broker, CLIENT, 1, "obj")
    final(broker, b"W1", CLIENT, 1)
    broker.worker_exited("default", 101, "killed by SIGKILL")
    pump.take()
    call(broker, CLIENT, 2, "obj")
    call(broker, OTHER, 3, "obj")
    broker._on_message([CLIENT, pack_header(Cmd.CANCEL, 2)])
    assert len(broker.held[b"obj"].parked) == 1
    broker._on_message([CLIENT, pack_header(Cmd.DELETE, 4, 0, b"obj")])
    sent = pump.take()
    assert finals_to(sent, CLIENT) == [(4, Status.OK, {})]
    ((cid, status, _),) = finals_to(sent, OTHER)
    assert (cid, status) == (3, Status.CANCELLED) and b"obj" not in broker.specs
    ready(broker, b"W2", "default", 102)  # nothing left to rebuild
    assert not [m for m in pump.take() if m[1][3] == Cmd.PUT]


async def test_silent_clients_lose_their_calls_unless_their_process_lives_here() -> None:
    broker, pump = make_broker()
    ready(broker, b"W1", "default", 101, objects=("slow",))
    hello = pack_meta({"pid": os.getpid(), "machine": MACHINE_ID})
    broker._on_message([CLIENT, pack_header(Cmd.PING), hello])  # alive: this very process
    dead = pack_meta({"pid": 2**22 + 12345, "machine": MACHINE_ID})
    broker._on_message([OTHER, pack_header(Cmd.PING), dead])
    call(broker, CLIENT, 1, "slow")
    call(broker, OTHER, 2, "slow")
    pump.take()
    broker._reap_clients(broker._now + 10)
    sent = pump.take()
    assert [m for m in sent if m[0] == b"W1" and m[1][3] == Cmd.CANCEL and m[2] == OTHER]
    ((cid, status, body),) = finals_to(sent, OTHER)
    assert (cid, status) == (2, Status.CANCELLED) and "heard nothing" in body["message"]
    assert CLIENT in broker.clients and OTHER not in broker.clients
    assert len(broker.inflight) == 1


async def test_a_malformed_header_gets_a_protocol_error() -> None:
    broker, pump = make_broker()
    broker._on_message([CLIENT, b"RZ\x01\x01" + b"\x00" * 8])  # too short
    ((_, status, body),) = finals_to(pump.take(), CLIENT)
    assert status == Status.PROTOCOL and "shorter than" in body["message"]


async def test_only_the_worker_a_call_went_to_may_answer_it() -> None:
    broker, pump = make_broker()
    ready(broker, b"W1", "default", 101, objects=("obj",))
    ready(broker, b"ROGUE", "rogue", 666)
    call(broker, CLIENT, 1, "obj")
    pump.take()
    # Another peer forges the answer (and a streamed line) for the client's call: dropped.
    broker._on_message([b"ROGUE", pack_header(Cmd.PARTIAL, 1, 1), CLIENT, b"FORGED line"])
    final(broker, b"ROGUE", CLIENT, 1)
    assert pump.take() == [] and len(broker.inflight) == 1
    final(broker, b"W1", CLIENT, 1)
    ((cid, status, _),) = finals_to(pump.take(), CLIENT)
    assert (cid, status) == (1, Status.OK)


async def test_a_live_workers_name_cannot_be_taken() -> None:
    broker, pump = make_broker()
    ready(broker, b"W1", "default", 101)
    put(broker, CLIENT, 1, "obj")
    final(broker, b"W1", CLIENT, 1)
    pump.take()
    ready(broker, b"ROGUE", "default", 101)  # its name, even its pid
    assert [w.wid for w in broker.workers.values()] == [b"W1"]
    assert not [m for m in pump.take() if m[0] == b"ROGUE"]  # no specs replayed to it
    assert broker.directory[b"obj"] == [b"W1"]
    broker.worker_exited("default", 101, "killed by SIGKILL")
    ready(broker, b"W2", "default", 102)  # a genuine restart, once the old one is gone
    assert [m for m in pump.take() if m[0] == b"W2" and m[1][3] == Cmd.PUT]


async def test_puts_and_deletes_count_so_a_dead_clients_calls_are_cancelled() -> None:
    """A PUT's FINAL once took one off a counter it never added to: after one .to() a client with
    a call running looked idle, and its call outlived it."""
    broker, pump = make_broker()
    ready(broker, b"W1", "default", 101, objects=("slow",))
    dead = pack_meta({"pid": 2**22 + 54321, "machine": MACHINE_ID})
    broker._on_message([CLIENT, pack_header(Cmd.PING), dead])
    put(broker, CLIENT, 1, "thing")
    final(broker, b"W1", CLIENT, 1)
    call(broker, CLIENT, 2, "slow")
    assert broker.clients[CLIENT][0] == 1
    pump.take()
    broker._reap_clients(broker._now + 10)
    assert broker.inflight == {}  # cancelled, not left running
    assert [m for m in pump.take() if m[0] == b"W1" and m[1][3] == Cmd.CANCEL]


async def test_a_worker_cannot_report_objects_it_does_not_own() -> None:
    broker, pump = make_broker()
    ready(broker, b"AGENT", "__node__.0", 100, objects=("__node__.0",))
    meta = {"name": "env", "group": "env", "pid": 7, "protocol": PROTOCOL_VERSION}
    broker._on_message([b"W2", pack_header(Cmd.READY, 0, 0, b"env"), b"", pack_meta(meta)])
    put(broker, CLIENT, 1, "precious", worker="env")
    final(broker, b"W2", CLIENT, 1)
    rogue = {**meta, "name": "rogue", "group": "rogue", "objects": ["__node__.0", "precious"]}
    broker._on_message([b"R", pack_header(Cmd.READY, 0, 0, b"rogue"), b"", pack_meta(rogue)])
    assert broker.directory[b"__node__.0"] == [b"AGENT"]
    assert broker.directory[b"precious"] == [b"W2"]
    assert not [m for m in pump.take() if m[1][3] == Cmd.DELETE]  # nobody lost anything


async def test_an_exit_report_names_its_worker_not_just_a_pid() -> None:
    broker, _ = make_broker()
    ready(broker, b"W1", "default", 500)
    meta = {"name": "far", "group": "far", "pid": 500, "protocol": PROTOCOL_VERSION}
    broker._on_message([b"W2", pack_header(Cmd.READY, 0, 0, b"far"), b"", pack_meta(meta)])
    broker.worker_exited("default", 500, "killed by SIGKILL")  # same pid, another host's worker
    assert [w.name for w in broker.workers.values()] == ["far"]


async def test_calls_waiting_for_a_rebuild_end_when_its_worker_leaves() -> None:
    broker, pump = make_broker()
    ready(broker, b"W1", "default", 101)
    put(broker, CLIENT, 1, "obj")
    final(broker, b"W1", CLIENT, 1)
    broker.worker_exited("default", 101, "killed by SIGKILL")
    ready(broker, b"W2", "default", 102)  # rebuilding obj...
    call(broker, OTHER, 2, "obj")
    pump.take()
    broker._on_message([b"W2", pack_header(Cmd.DISCONNECT)])  # ...and leaves on purpose
    ((cid, status, _),) = finals_to(pump.take(), OTHER)
    assert (cid, status) == (2, Status.NOT_FOUND) and broker.parked == {}


async def test_a_dead_client_with_many_calls_is_reaped_and_the_broker_goes_on() -> None:
    # The reaper cancels a dead client's calls and tells the client; that reply is unroutable
    # (the client is gone), which drops the client again from inside the first drop. With 20
    # calls a send in the middle once did that (an early flush), and the outer loop then hit
    # a KeyError for a call the inner drop had removed: the heartbeat task died with the broker.
    # A real ROUTER pump here: the fake one above never fails a send.
    router, worker = router_and_peer("inproc://broker-reap-many", b"W1")
    broker = Broker("inproc://unused")
    pump = Pump(router, broker._route, router=True, on_unroutable=broker._unroutable)
    broker._pump = pump
    try:
        ready(broker, b"W1", "default", 101, objects=("slow",))
        dead = pack_meta({"pid": 2**22 + 12345, "machine": MACHINE_ID})  # no such process
        gone = b"\x00gone-client"
        broker._on_message([gone, pack_header(Cmd.PING), dead])
        for i in range(1, 21):
            call(broker, gone, i, "slow")
        assert len(broker.inflight) == 20
        broker._reap_clients(broker._now + 60)
        for _ in range(20):  # the queued CANCELs and replies leave
            await asyncio.sleep(0)
        assert not broker.inflight and gone not in broker.clients
        call(broker, CLIENT, 1, "slow")  # still routing
        assert len(broker.inflight) == 1
    finally:
        pump.close()
        worker.close(0)
