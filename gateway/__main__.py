"""``python -m gateway --broker tcp://127.0.0.1:PORT [--host 127.0.0.1] [--port 32300]``.

The token comes from the ``RHZMQ_TOKEN`` environment variable, never argv (``ps`` shows argv to
every user); binding to a non-loopback address without one is refused.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from rhzmq.wire.exceptions import ClusterError
from rhzmq.wire.settings import DEFAULT_GATEWAY_PORT
from rhzmq.wire.spin import SPIN

from ._serve import serve


def main(argv: list[str] | None = None) -> None:
    SPIN.off()  # the cluster's own process: its CPU is for calls (rhzmq.wire.spin)
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_GATEWAY_PORT)
    parser.add_argument("--max-body", type=int, default=None, help="largest request body in bytes")
    parser.add_argument("--curve-dir", default=None, help="CURVE key directory (rhzmq.wire.curve)")
    parser.add_argument(
        "--allowed-hosts",
        default="",
        help="comma-separated Host names to answer besides loopback and the bind address ('*': any)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [gateway %(process)d] %(name)s: %(message)s",
    )
    try:
        import uvloop

        uvloop.run(
            serve(
                args.broker,
                args.host,
                args.port,
                os.environ.pop("RHZMQ_TOKEN", None),
                args.max_body,
                args.curve_dir,
                hosts=args.allowed_hosts.split(","),
            )
        )
    except ClusterError as exc:
        print(f"rhzmq gateway: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
