"""Role-aware fuzzing of the broker (issue 13): random messages of every command, with valid-
looking headers and bodies, from peers of every role. Whatever arrives, a role never gets past
its permissions: no message from a non-caller reaches a worker, no key registers a worker its
role may not, and the broker never raises. In process with a real Broker, like
tests/broker/test_roles.py, so hypothesis can try thousands of sequences in seconds."""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st
from test_roles import NODE1, NODE2, USER, make_broker

from broker._broker import NODE_PERMITTED, PERMITTED
from rhzmq.wire.curve import CLIENT, GATEWAY, HEAD, node_role
from rhzmq.wire.protocol import Cmd, node_agent, pack_header, pack_meta
from rhzmq.wire.pump import split_batch
from rhzmq.wire.version import PROTOCOL_VERSION

ROLES = [CLIENT, GATEWAY, node_role(1), node_role(2), "", "node:9"]
PEERS = {CLIENT: USER, GATEWAY: b"\x00gw", node_role(1): NODE1, node_role(2): NODE2}
NAMES = ["f", "default", "train", node_agent(0), node_agent(1), node_agent(2), "__x"]
HEAD_WORKER = b"\x00w0"

metas = st.one_of(
    st.builds(
        lambda name, group, objects: pack_meta(
            {
                "name": name,
                "group": group,
                "pid": 7,
                "protocol": PROTOCOL_VERSION,
                "objects": objects,
            }
        ),
        st.sampled_from(NAMES),
        st.sampled_from([*NAMES, "__node__"]),
        st.lists(st.sampled_from(NAMES), max_size=3),
    ),
    st.builds(
        lambda group, node: msgpack.packb({"group": group, "node": node}),
        st.sampled_from(NAMES),
        st.integers(-1, 3),
    ),
    st.just(pack_meta({"m": "f", "worker": "default"})),
    st.binary(max_size=16),
    st.builds(
        msgpack.packb,
        st.recursive(st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5), st.lists),
    ),
)
messages = st.tuples(
    st.sampled_from(ROLES),
    st.sampled_from(list(Cmd)),
    st.integers(0, 5),
    st.integers(0, 3),
    st.sampled_from(NAMES),
    st.lists(st.one_of(metas, st.sampled_from([USER, NODE1, b""])), max_size=4),
)


def _allowed(role: str) -> frozenset[int]:
    if role in PERMITTED:
        return PERMITTED[role]
    return NODE_PERMITTED if role in (node_role(1), node_role(2)) else frozenset()


@settings(max_examples=400, deadline=None)
@given(st.lists(messages, min_size=1, max_size=25))
def test_no_role_gets_past_its_permissions(batch: list[tuple[Any, ...]]) -> None:
    broker, pump = make_broker()
    pump.user = HEAD
    meta = {"name": "default", "pid": 1, "protocol": PROTOCOL_VERSION, "objects": ["f"]}
    broker._on_message(
        [HEAD_WORKER, pack_header(Cmd.READY, 0, 0, b"default"), b"", pack_meta(meta)]
    )
    pump.take()
    for role, cmd, call_id, flags, target, body in batch:
        sender = PEERS.get(role, b"\x00anon")
        pump.user = role
        broker._on_message([sender, pack_header(cmd, call_id, flags, target.encode()), *body])
        sent = pump.take()
        to_workers = [m for m in sent if m[0] == HEAD_WORKER or m[0] in broker.workers]
        if cmd not in _allowed(role):
            # Refused: at most an answer to the sender, never anything to a worker.
            assert to_workers == [] and all(m[0] == sender for m in sent), (role, cmd, sent)
        for m in sent:
            assert isinstance(m[1], bytes)
            if m[1][:2] == b"RZ" and m[1][3] == Cmd.BATCH:
                split_batch(m[2])
    for w in broker.workers.values():
        if w.role == node_role(1):
            assert w.name == node_agent(1) or broker.placement.get(w.group) == node_role(1)
        assert w.role in (HEAD, node_role(1), node_role(2)), w
