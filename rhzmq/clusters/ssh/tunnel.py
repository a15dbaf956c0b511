"""The client's way in: SSH local forwards to the head's broker and gateway.

Nothing but SSH is exposed to the client. With ``tunnel_workers=True`` the other hosts reach the
head through the client too: each gets a remote forward of its loopback port ``server_port + 1``
(+1: never the broker's own port, should a host run both) to the client's forward of the head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from ...wire.exceptions import ClusterError
from .transport import forward


@dataclass
class Tunnel:
    """Where this process reaches a running head, and the SSH connection carrying it."""

    endpoint: str
    gateway_url: str | None
    conn: asyncssh.SSHClientConnection
    listeners: list[asyncssh.SSHListener] = field(default_factory=list)

    def close(self) -> None:
        """End the forwards (the SSH connections stay, cached): a restart opens new ones, and
        the hosts' remote ports must be free for it."""
        for listener in self.listeners:
            listener.close()

    async def aclose(self) -> None:
        """:meth:`close`, returning once the hosts released their ports."""
        self.close()
        for listener in self.listeners:
            await listener.wait_closed()


async def open_tunnel(
    conn: asyncssh.SSHClientConnection,
    head_state: dict[str, Any],
    *,
    nodes: Sequence[tuple[str, asyncssh.SSHClientConnection]] = (),
    node_port: int = 0,
) -> Tunnel:
    """Forward a local port to the head's broker (and gateway, if it runs); with ``nodes`` (the
    other hosts, for ``tunnel_workers``), forward their ``node_port`` back to it."""
    port = int(str(head_state["tcp_endpoint"]).rsplit(":", 1)[1])
    local, listener = await forward(conn, port)
    listeners = [listener]
    gateway_url = None
    if head_state.get("gateway"):
        gateway, listener = await forward(conn, int(str(head_state["gateway"]).rsplit(":", 1)[1]))
        listeners.append(listener)
        gateway_url = f"http://127.0.0.1:{gateway}"
    for host, node in nodes:
        try:
            listeners.append(
                await node.forward_remote_port("127.0.0.1", node_port, "127.0.0.1", local)
            )
        except asyncssh.Error as exc:
            for opened in listeners:
                opened.close()
            raise ClusterError(
                f"cannot forward port {node_port} on {host} back to the head "
                f"(tunnel_workers=True): {exc}. Is another client of this cluster connected? With "
                "tunnel_workers one client at a time carries the traffic."
            ) from None
    return Tunnel(f"tcp://127.0.0.1:{local}", gateway_url, conn, listeners)
