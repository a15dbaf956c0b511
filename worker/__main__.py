"""``python -m worker --broker tcp://127.0.0.1:PORT --name default``: run one worker process."""

from __future__ import annotations

import argparse

from rhzmq.wire.spin import SPIN

from ._worker import run


def main(argv: list[str] | None = None) -> None:
    SPIN.off()  # the cluster's own process: its CPU is for calls (rhzmq.wire.spin)
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument(
        "--broker", required=True, help="broker endpoint, e.g. tcp://127.0.0.1:5555"
    )
    parser.add_argument("--name", default="default", help="worker name (the env it serves)")
    parser.add_argument(
        "--parent-pid", type=int, default=None, help="exit when this process is gone"
    )
    parser.add_argument("--group", default=None, help="environment the worker belongs to")
    parser.add_argument("--node", default=None, help="name of this host in its cluster")
    parser.add_argument("--curve-dir", default=None, help="CURVE key directory (rhzmq.wire.curve)")
    parser.add_argument("--ready-fd", type=int, default=None, help="say READY here once registered")
    args = parser.parse_args(argv)
    curve = None
    if args.curve_dir:
        from pathlib import Path

        from rhzmq.wire.curve import client_keys

        curve = client_keys(Path(args.curve_dir))
    run(
        args.broker,
        args.name,
        parent_pid=args.parent_pid,
        group=args.group,
        curve=curve,
        node=args.node,
        ready_fd=args.ready_fd,
    )


if __name__ == "__main__":
    main()
