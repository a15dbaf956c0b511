"""``python -m den``: run the registry, or administer its database directly.

::

    python -m den serve [--db URL] [--host 127.0.0.1] [--port 32400] [--allowed-hosts a,b]
    python -m den admin init NAME            the first user, a server admin; prints its token
    python -m den admin create-user NAME [--admin]           prints the new user's token
    python -m den admin create-token USER [--name N]         prints a new token for USER
    python -m den admin migrate              bring the schema to the newest version

The database is ``--db URL``, else ``$RHZMQ_DEN_DB``, else the SQLite file
``$RHZMQ_HOME/den/den.db``. A URL with a password belongs in ``RHZMQ_DEN_DB``: ``ps`` shows
every process's arguments to every user. Admin commands need no server (they open the database
themselves, so whoever runs them can read it anyway), and print a token on stdout once, nothing
else there: it goes into no log.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ._db import Database, DatabaseURLError, default_url, safe_url
from ._errors import DenError
from ._serve import DEFAULT_PORT, ServeError, serve
from ._store import Store


def _database(args: argparse.Namespace) -> Database:
    db = Database(args.db or default_url())
    db.migrate()
    return db


def cmd_serve(args: argparse.Namespace) -> int:
    import uvloop

    uvloop.run(
        serve(
            args.db or default_url(),
            args.host,
            args.port,
            hosts=args.allowed_hosts.split(","),
            max_body=args.max_body,
            log_level=args.log_level,
        )
    )
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    print(Store(_database(args)).bootstrap(args.name, admin=True, first=True))
    return 0


def cmd_create_user(args: argparse.Namespace) -> int:
    print(Store(_database(args)).bootstrap(args.name, admin=args.admin))
    return 0


def cmd_create_token(args: argparse.Namespace) -> int:
    print(Store(_database(args)).token_for(args.user, args.name))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    db = _database(args)
    print(f"{safe_url(db.url)}: schema up to date", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m den", description="Den, rhzmq's resource registry."
    )
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument(
        "--db",
        default=None,
        help="database URL: sqlite:///path or postgresql+psycopg://user@host/db (default: "
        "$RHZMQ_DEN_DB, else $RHZMQ_HOME/den/den.db)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", parents=[db], help="serve the registry over HTTP")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help="0: any free port")
    s.add_argument(
        "--allowed-hosts",
        default="",
        help="comma-separated Host names to answer besides loopback and the bind address ('*': any)",
    )
    s.add_argument("--max-body", type=int, default=None, help="largest request body in bytes")
    s.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    s.set_defaults(fn=cmd_serve)
    admin = sub.add_parser("admin", help="manage users and tokens in the database directly")
    asub = admin.add_subparsers(dest="admin_command", required=True)
    a = asub.add_parser("init", parents=[db], help="make the first user, an admin; print its token")
    a.add_argument("name")
    a.set_defaults(fn=cmd_init)
    a = asub.add_parser("create-user", parents=[db], help="make a user; print their first token")
    a.add_argument("name")
    a.add_argument("--admin", action="store_true", help="a server admin (may create users)")
    a.set_defaults(fn=cmd_create_user)
    a = asub.add_parser("create-token", parents=[db], help="print a new token for a user")
    a.add_argument("user")
    a.add_argument("--name", default="cli", help="what the token is for")
    a.set_defaults(fn=cmd_create_token)
    a = asub.add_parser("migrate", parents=[db], help="bring the schema to the newest version")
    a.set_defaults(fn=cmd_migrate)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(getattr(args, "log_level", "warning")).upper()),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [den %(process)d] %(name)s: %(message)s",
    )
    try:
        code = args.fn(args)
    except (DenError, DatabaseURLError, ServeError) as exc:
        print(f"den: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
