"""``python -m broker --address tcp://127.0.0.1:5555``: run a broker alone (no workers).

The usual way to run one is the cluster daemon (``rhzmq start``), which runs a broker together with
the node supervisor and the gateway; this entry point serves tests and custom deployments.
"""

from __future__ import annotations

import argparse
import logging
import sys

import anyio

from rhzmq.wire.handshake import Announcer

from ._broker import Broker


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m broker", description=__doc__)
    parser.add_argument(
        "--address",
        action="append",
        help="ZeroMQ endpoint to bind (repeatable; default tcp://127.0.0.1:0)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def serve() -> None:
        broker = Broker(args.address or ["tcp://127.0.0.1:0"])
        async with anyio.create_task_group() as tg:
            endpoints = await tg.start(broker.serve)
            Announcer(sys.stdout.fileno()).ready(" ".join(endpoints))

    anyio.run(serve, backend_options={"use_uvloop": True})


if __name__ == "__main__":
    main()
