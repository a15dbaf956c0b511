"""10,000 short-lived clients leave the broker's memory and tables flat."""

from __future__ import annotations

import time

import remote_objects as ro
import zmq

import rhzmq as rh
from rhzmq.wire.protocol import Cmd, pack_header


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_ten_thousand_short_lived_clients(cluster: rh.Cluster) -> None:
    rh.function(ro.add).to(cluster, name="churn_add")
    daemon = cluster.status()["pid"]
    ctx = zmq.Context.instance()

    def churn(n: int) -> None:
        for i in range(n):
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVTIMEO, 5000)
            sock.connect(cluster.broker_endpoint)
            sock.send_multipart([pack_header(Cmd.PING, i + 1)])
            assert sock.recv_multipart()[0][3] == Cmd.FINAL
            sock.close()

    churn(500)  # warm up the allocator
    before = rss(daemon)
    churn(10_000)
    grown = rss(daemon) - before
    assert grown < 8 * 1024 * 1024, f"broker grew {grown / 2**20:.1f} MiB over 10,000 clients"
    deadline = time.monotonic() + 6  # silent clients are forgotten after 3 heartbeat intervals
    while cluster.status()["clients"] > 1:
        assert time.monotonic() < deadline, "the broker still remembers dead clients"
        time.sleep(0.2)
    assert rh.Function._bound(cluster, "churn_add", {"call": "sync"})(1, 1) == 2
