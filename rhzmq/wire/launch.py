"""How a daemon is launched: its arguments, built by starters and parsed by the daemon from one
definition (``python -m rhzmqd`` on this machine, or over SSH on a cluster's hosts).

The gateway token never travels in argv (``ps`` shows argv to every user): a starter passes it
in the ``RHZMQ_TOKEN`` environment variable or as ``token_file``, a path to an owner-only file.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field

MODULE = "rhzmqd"


@dataclass(frozen=True)
class DaemonArgs:
    """The daemon's command line (``python -m rhzmqd --help``)."""

    port: int = field(default=0, metadata={"help": "broker port (0: any free port)"})
    host: str = field(
        default="127.0.0.1", metadata={"help": "address to bind (loopback by default)"}
    )
    gateway_port: int | None = field(
        default=None, metadata={"help": "HTTP gateway port (none: off)"}
    )
    token_file: str | None = field(default=None, metadata={"help": "read the gateway's token here"})
    ready_fd: int | None = field(
        default=None, metadata={"help": "handshake stream (rhzmq.wire.handshake)"}
    )
    detach: bool = field(default=False, metadata={"help": "fork into the background first"})
    curve: bool = field(default=False, metadata={"help": "CURVE even on loopback"})
    head: str | None = field(
        default=None, metadata={"help": "join the cluster whose broker is here"}
    )
    node_index: int | None = field(default=None, metadata={"help": "this host's index"})
    node_label: str | None = field(
        default=None, metadata={"help": "this host's address in the cluster"}
    )
    default_env: str | None = field(
        default=None,
        metadata={"help": "a JSON env spec file: the default env of every worker (rh.env)"},
    )
    autostop_mins: float = field(
        default=-1.0, metadata={"help": "idle minutes before stopping; -1 never"}
    )
    on_autostop: str | None = field(
        default=None,
        metadata={
            "help": "a module run as `python -m MODULE` once autostop stopped the daemon (an "
            "on-demand cluster's head: terminate its machines)"
        },
    )

    def argv(self) -> list[str]:
        """The arguments after ``python -m rhzmqd`` (only those that differ from the defaults)."""
        out: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            flag = "--" + f.name.replace("_", "-")
            out += [flag] if value is True else [flag, str(value)]
        return out

    def command(self, python: str = sys.executable) -> list[str]:
        return [python, "-m", MODULE, *self.argv()]

    @classmethod
    def parse(cls, argv: list[str] | None = None) -> DaemonArgs:
        parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
        for f in dataclasses.fields(cls):
            flag = "--" + f.name.replace("_", "-")
            help_ = f.metadata.get("help")
            if f.type == "bool":
                parser.add_argument(flag, action="store_true", help=help_)
                continue
            kind = {"int": int, "int | None": int, "float": float}.get(str(f.type), str)
            parser.add_argument(flag, type=kind, default=f.default, help=help_)
        return cls(**vars(parser.parse_args(argv)))
