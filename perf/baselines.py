"""Baselines measured in the same run as rhzmq: the ceilings for Python on this machine.

* ``zmq_proxy``: blocking DEALER client -> ``zmq.proxy`` (ROUTER/DEALER, in C) -> blocking echo
  worker. No Python in the broker at all: the best a ZeroMQ broker design can hope for.
* ``asyncio_tcp``: a raw asyncio TCP echo with uvloop, no ZeroMQ, no broker: the floor for a
  Python round trip here.

Each runs in its own processes, started and stopped by PID, with a handshake (the first echo)
instead of sleeps.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
import time
from typing import Any

import zmq

LAT_CALLS = 3000
TPUT_CALLS = 60000


def _proxy(q: Any) -> None:
    ctx = zmq.Context()
    f = ctx.socket(zmq.ROUTER)
    b = ctx.socket(zmq.DEALER)
    q.put((f.bind_to_random_port("tcp://127.0.0.1"), b.bind_to_random_port("tcp://127.0.0.1")))
    zmq.proxy(f, b)


def _echo_worker(back: str) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.REP)
    s.connect(back)
    while True:
        s.send_multipart(s.recv_multipart())


def zmq_proxy(inflight: int = 64, payload: bytes = b"x" * 16) -> dict[str, float]:
    """p50/p99 sequential latency (µs) and calls/s with ``inflight`` pipelined requests."""
    ctx = zmq.Context()
    q: Any = mp.Queue()
    procs = [mp.Process(target=_proxy, args=(q,), daemon=True)]
    procs[0].start()
    p1, p2 = q.get(timeout=30)
    front, back = f"tcp://127.0.0.1:{p1}", f"tcp://127.0.0.1:{p2}"
    procs.append(mp.Process(target=_echo_worker, args=(back,), daemon=True))
    procs[1].start()
    try:
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, 30_000)  # a broken baseline fails the run instead of hanging
        s.connect(front)
        s.send_multipart([b"", payload])
        s.recv_multipart()  # handshake: the whole path answers
        lat = []
        for _ in range(LAT_CALLS):
            t = time.perf_counter()
            s.send_multipart([b"", payload])
            s.recv_multipart()
            lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        sent = received = 0
        while received < TPUT_CALLS:
            while sent < TPUT_CALLS and sent - received < inflight:
                s.send_multipart([b"", payload])
                sent += 1
            s.recv_multipart()
            received += 1
        rate = TPUT_CALLS / (time.perf_counter() - t)
        s.close()
        return _summary(lat, rate)
    finally:
        for p in procs:
            p.kill()
            p.join()


def _tcp_server(port_q: Any) -> None:
    import uvloop

    async def main() -> None:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while True:
                data = await r.read(65536)
                if not data:
                    return
                w.write(data)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    uvloop.run(main())


def asyncio_tcp(inflight: int = 64, size: int = 16) -> dict[str, float]:
    """Fixed-size request/response echo over one TCP connection with uvloop, no ZeroMQ.

    Throughput keeps ``inflight`` requests outstanding and sends one more per response, like an
    RPC client would (not one big pipelined write).
    """
    import uvloop

    q: Any = mp.Queue()
    proc = mp.Process(target=_tcp_server, args=(q,), daemon=True)
    proc.start()
    port = q.get(timeout=30)
    payload = b"x" * size

    async def main() -> dict[str, float]:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        lat = []
        for _ in range(LAT_CALLS):
            t = time.perf_counter()
            w.write(payload)
            await r.readexactly(size)
            lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        w.write(payload * inflight)
        for i in range(TPUT_CALLS):
            await r.readexactly(size)
            if i < TPUT_CALLS - inflight:
                w.write(payload)
        rate = TPUT_CALLS / (time.perf_counter() - t)
        w.close()
        return _summary(lat, rate)

    try:
        return uvloop.run(main())
    finally:
        proc.kill()
        proc.join()


def zmq_proxy_payload(size: int, calls: int) -> float:
    """MiB/s each way of the zmq.proxy echo for one payload size (4 in flight)."""
    ctx = zmq.Context()
    q: Any = mp.Queue()
    procs = [mp.Process(target=_proxy, args=(q,), daemon=True)]
    procs[0].start()
    p1, p2 = q.get(timeout=30)
    procs.append(mp.Process(target=_echo_worker, args=(f"tcp://127.0.0.1:{p2}",), daemon=True))
    procs[1].start()
    payload = b"x" * size
    try:
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, 60_000)
        s.connect(f"tcp://127.0.0.1:{p1}")
        s.send_multipart([b"", payload], copy=False)
        s.recv_multipart(copy=False)
        t = time.perf_counter()
        sent = received = 0
        while received < calls:
            while sent < calls and sent - received < 4:
                s.send_multipart([b"", payload], copy=False)
                sent += 1
            s.recv_multipart(copy=False)
            received += 1
        s.close()
        return calls * size / (time.perf_counter() - t) / (1 << 20)
    finally:
        for p in procs:
            p.kill()
            p.join()


def _summary(lat: list[float], rate: float) -> dict[str, float]:
    lat.sort()
    return {
        "p50_us": statistics.median(lat) * 1e6,
        "p99_us": lat[int(len(lat) * 0.99)] * 1e6,
        "calls_per_s": rate,
    }


if __name__ == "__main__":
    print("zmq_proxy", zmq_proxy())
    print("asyncio_tcp", asyncio_tcp())
