"""The ``rhzmq`` command: start, stop and inspect the local cluster daemon, or with
``-c NAME`` a cluster saved with ``cluster.save()`` (e.g. an SSH cluster).

rhzmq start [--port N] [--gateway-port 32300 | --no-gateway] [--token-file F]
rhzmq status [--json]        rhzmq keys        rhzmq logs [-f] [-n 50]        rhzmq stop
rhzmq token                  (the HTTP gateway's bearer token)
rhzmq status -c gpu-box      rhzmq logs -c gpu-box --node 1      rhzmq stop -c gpu-box
rhzmq den serve [--db URL] [--port 32400]      rhzmq den admin init NAME      (the registry)
rhzmq login URL [--token-file F]      rhzmq logout
rhzmq resources ls|show|history|rollback|share|revoke|rm ...      (saved resources)
rhzmq secrets ls|show [--reveal]|rm ...      (saved secrets; values masked)
rhzmq clusters [--json]      (every cluster: status, nodes, instance type, uptime, cost so far)
rhzmq down NAME              (tear a saved cluster down; an on-demand one's machines terminated)
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import _store
from ._secrets import Secret
from .clusters import LocalCluster, cluster
from .wire import config as _config
from .wire.exceptions import RhzmqError
from .wire.net import is_loopback
from .wire.settings import DEFAULT_GATEWAY_PORT


def _cluster(args: argparse.Namespace) -> LocalCluster:
    gateway = (
        None
        if getattr(args, "no_gateway", False)
        else getattr(args, "gateway_port", DEFAULT_GATEWAY_PORT)
    )
    return LocalCluster(
        "local",
        gateway_port=gateway,
        port=getattr(args, "port", 0),
        token=_token(args),
        bind=getattr(args, "bind", "127.0.0.1"),
    )


def _target(args: argparse.Namespace) -> Any:
    """The cluster a command is about: ``-c NAME`` (a saved one) or the local daemon."""
    return cluster(args.cluster) if getattr(args, "cluster", None) else LocalCluster("local")


def _token(args: argparse.Namespace) -> str | None:
    """The gateway token to start with: from a file or RHZMQ_TOKEN, never argv (``ps`` shows
    every process's argv to every user of the machine)."""
    path = getattr(args, "token_file", None)
    if path:
        return Path(path).read_text().strip() or None
    return os.environ.get("RHZMQ_TOKEN") or None


def cmd_start(args: argparse.Namespace) -> int:
    if getattr(args, "token", None):
        print(
            "rhzmq: --token would show the token to every user of this machine (in `ps`): set "
            "RHZMQ_TOKEN, or pass --token-file with a file only you can read",
            file=sys.stderr,
        )
        return 2
    if args.cluster:
        _target(args).up_if_not()
        return 0
    c = _cluster(args)
    if not args.no_gateway and not _token(args) and not is_loopback(args.bind):
        print(
            f"rhzmq: refusing to serve HTTP on {args.bind} without a token: set RHZMQ_TOKEN (or "
            "pass --token-file), or --no-gateway",
            file=sys.stderr,
        )
        return 2
    if c.is_up():
        print(
            f"already running: broker {c.broker_endpoint}"
            + (f", gateway {c.gateway_url}" if c.gateway_url else "")
        )
        return 0
    c.up_if_not()
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    c = _target(args)
    if not c.is_up():
        print("not running")
        return 0
    c.teardown()
    print("stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    c = _target(args)
    if not c.is_up():
        start = f"rhzmq start -c {args.cluster}" if args.cluster else "rhzmq start"
        print(f"not running (start it with `{start}`)")
        return 1
    st = c.status()
    st["gateway"] = c.gateway_url
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    print(
        f"rhzmq {st['version']} (protocol v{st['protocol']}), daemon pid {st['pid']}, up {_ago(st['uptime'])}"
    )
    print(
        f"broker   {', '.join(st['endpoints'])}   calls routed {st['calls_routed']}, in flight {st['inflight']}"
    )
    auth = "  (needs 'Authorization: Bearer <token>'; `rhzmq token` prints it)"
    print(f"gateway  {st['gateway'] or 'off'}{auth if st['gateway'] else ''}")
    for w in st["workers"]:
        objs = ", ".join(w["objects"]) or "-"
        print(
            f"worker   {w['name']:<12} pid {w['pid']:<7} node {w['node']:<16} in flight {w['inflight']:<4} objects: {objs}"
        )
    for n in st.get("nodes", ()):
        if n.get("up") is False:
            print(f"node {n['index']}   {n['address']:<16} DOWN")
        else:
            print(
                f"node {n['index']}   {n['address']:<16} {n['role']:<12} daemon pid {n['pid']:<7} "
                f"build {n['build']}  workers: {', '.join(n['workers']) or '-'}"
            )
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Print the gateway's bearer token (asked for explicitly: rhzmq never shows it otherwise)."""
    c = _target(args)
    token = c.gateway_token if hasattr(c, "gateway_token") else None
    if not token:
        print("no gateway token yet: it is made when the cluster starts", file=sys.stderr)
        return 1
    print(token)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    for name in _target(args).keys():
        print(name)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    if args.cluster:
        follow = " -f" if args.follow else ""
        log = f'tail -n {int(args.lines)}{follow} "${{RHZMQ_HOME:-$HOME/.rhzmq}}/local/daemon.log"'
        codes = _target(args).run_bash(log, node=_node(args.node))
        return max(codes, default=0)
    path = _config.log_file()
    if not path.exists():
        print(f"no log yet at {path}")
        return 1
    with open(path, errors="replace") as f:
        lines = f.readlines()
        sys.stdout.writelines(lines[-args.lines :])
        sys.stdout.flush()
        while args.follow:
            line = f.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.2)  # tail -f: nothing to wait on but the file growing
    return 0


def cmd_den(args: argparse.Namespace) -> int:
    """``rhzmq den ...`` is ``python -m den ...``: the registry is a server, run as its own
    process (the library never imports it). Its stdout (a token from ``admin``) and stderr
    pass straight through."""
    try:
        return subprocess.run([sys.executable, "-m", "den", *args.den_args]).returncode
    except KeyboardInterrupt:
        return 130


def _node(node: str) -> int | str:
    return int(node) if node.isdigit() else node


def _ago(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def cmd_clusters(args: argparse.Namespace) -> int:
    from .clusters import Cluster

    rows = Cluster.list()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'NAME':<20} {'KIND':<9} {'STATUS':<12} {'NODES':>5}  {'INSTANCE TYPE':<26} UPTIME   COST"
    )
    for r in rows:
        uptime = _ago(r["uptime"]) if r.get("uptime") is not None else "-"
        cost = f"${r['cost']:.2f}" if r.get("cost") is not None else "-"
        print(
            f"{r['name']:<20} {r['kind']:<9} {r['status']!s:<12} {r.get('nodes', '-')!s:>5}  "
            f"{r.get('instance_type') or '-':<26} {uptime:<8} {cost}"
        )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    c = cluster(args.name)
    c.teardown()
    print(f"{args.name}: down")
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    elif sys.stdin.isatty():
        token = getpass.getpass("registry token: ").strip()
    else:
        token = sys.stdin.readline().strip()
    me = _store.login(args.url, token)
    print(f"logged in to {args.url} as {me['name']} (saved in {_store.config_file()})")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    _store.logout()
    print("logged out")
    return 0


def cmd_resources_ls(args: argparse.Namespace) -> int:
    rows = _store.list_saved(args.type, args.shared)
    for row in rows:
        access = f"  ({row['access']})" if row.get("access") else ""
        print(f"{row['type']:<9} {row['name']:<40} v{row['version']}{access}")
    if not rows:
        print("nothing saved yet")
    return 0


def cmd_resources_show(args: argparse.Namespace) -> int:
    config, meta = _store.load(args.name, version=args.version)
    if config.get("type") == "secret":  # values only through `rhzmq secrets show --reveal`
        config = {**config, "values": dict.fromkeys(config.get("values") or {}, "****")}
    print(f"# {meta.get('store')} {meta.get('key')} version {meta.get('version')}")
    print(json.dumps(config, indent=2, sort_keys=True))
    return 0


def cmd_resources_history(args: argparse.Namespace) -> int:
    for v in _store.history(args.name):
        when = v.get("created_at")
        stamp = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
            if isinstance(when, float | int)
            else str(when)
        )
        back = f"  (rollback of v{v['rollback_of']})" if v.get("rollback_of") else ""
        print(
            f"v{v['version']:<4} {stamp}  {v.get('author', '?'):<12} {v['content_hash'][:12]}{back}"
        )
    return 0


def cmd_resources_rollback(args: argparse.Namespace) -> int:
    meta = _store.rollback(args.name, args.version)
    print(f"{args.name}: version {meta['version']} is now version {args.version}'s config")
    return 0


def cmd_resources_share(args: argparse.Namespace) -> int:
    level = "write" if args.write else "read"
    for share in _store.share(args.name, args.principals, level):
        print(f"{share['principal']:<20} {share['access_level']}")
    return 0


def cmd_resources_revoke(args: argparse.Namespace) -> int:
    _store.revoke(args.name, args.principals)
    print(f"{args.name}: no longer shared with {', '.join(args.principals)}")
    return 0


def cmd_resources_rm(args: argparse.Namespace) -> int:
    _store.delete_config(args.name)
    print(f"{args.name}: deleted")
    return 0


def cmd_secrets_ls(args: argparse.Namespace) -> int:
    names = Secret.list()
    for name in names:
        found = Secret.load(name)
        print(f"{name:<30} {found.provider or 'custom':<12} {', '.join(found.values)}")
    if not names:
        print("no saved secrets")
    return 0


def cmd_secrets_show(args: argparse.Namespace) -> int:
    found = Secret.load(args.name)
    if args.reveal:
        prompt = f"Reveal the values of secret {args.name!r} on this terminal? [y/N] "
        if sys.stdin.isatty():
            answer = input(prompt)
        else:
            print(prompt, end="", flush=True)
            answer = sys.stdin.readline()
        if answer.strip().lower() not in ("y", "yes"):
            print("not revealed")
            return 1
    print(f"{found.name} ({found.provider or 'custom'})")
    for key, value in found.values.items():
        print(f"  {key} = {value if args.reveal else '****'}")
    return 0


def cmd_secrets_rm(args: argparse.Namespace) -> int:
    Secret.load(args.name).delete_configs()
    print(f"secret {args.name}: deleted")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rhzmq", description="Run and inspect the local rhzmq cluster, or a saved one."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    which = argparse.ArgumentParser(add_help=False)
    which.add_argument(
        "-c", "--cluster", default=None, help="a cluster saved with cluster.save() (not local)"
    )
    clusters = sub.add_parser(
        "clusters", help="every cluster: status, nodes, instance type, uptime, cost so far"
    )
    clusters.add_argument("--json", action="store_true")
    clusters.set_defaults(fn=cmd_clusters)
    down = sub.add_parser("down", help="tear a saved cluster down (on-demand: terminate it)")
    down.add_argument("name")
    down.set_defaults(fn=cmd_down)
    start = sub.add_parser(
        "start", parents=[which], help="start the local daemon (broker, default worker, gateway)"
    )
    start.add_argument("--port", type=int, default=0, help="broker port (default: any free port)")
    start.add_argument("--gateway-port", type=int, default=DEFAULT_GATEWAY_PORT)
    start.add_argument("--no-gateway", action="store_true", help="do not start the HTTP gateway")
    start.add_argument(
        "--token-file",
        default=None,
        help="a file holding the gateway's bearer token (or set RHZMQ_TOKEN; default: one is "
        "made at the first start)",
    )
    start.add_argument("--token", default=None, help=argparse.SUPPRESS)  # refused: see _token
    start.add_argument(
        "--bind",
        default="127.0.0.1",
        help="address to listen on; anything but loopback turns on CURVE for ZeroMQ "
        "and needs a token for HTTP (RHZMQ_TOKEN or --token-file)",
    )
    start.set_defaults(fn=cmd_start)
    sub.add_parser("stop", parents=[which], help="stop the daemon(s) and workers").set_defaults(
        fn=cmd_stop
    )
    status = sub.add_parser(
        "status", parents=[which], help="show workers, objects, calls in flight (and nodes)"
    )
    status.add_argument("--json", action="store_true")
    status.set_defaults(fn=cmd_status)
    sub.add_parser("keys", parents=[which], help="list the objects on the cluster").set_defaults(
        fn=cmd_keys
    )
    sub.add_parser(
        "token", parents=[which], help="print the HTTP gateway's bearer token"
    ).set_defaults(fn=cmd_token)
    logs = sub.add_parser("logs", parents=[which], help="show the daemon's log")
    logs.add_argument("--node", default="all", help="with -c: a host's index or address")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.set_defaults(fn=cmd_logs)
    den = sub.add_parser(
        "den",
        add_help=False,
        help="the resource registry: `rhzmq den serve`, `rhzmq den admin init NAME` (see "
        "`rhzmq den --help`)",
    )
    den.add_argument("den_args", nargs=argparse.REMAINDER)
    den.set_defaults(fn=cmd_den)
    login = sub.add_parser("login", help="remember a registry and your token on this machine")
    login.add_argument("url", help="the registry's URL, e.g. http://den.internal:32400")
    login.add_argument(
        "--token-file",
        default=None,
        help="a file holding your token (default: read from stdin, or asked for without echo)",
    )
    login.set_defaults(fn=cmd_login)
    sub.add_parser("logout", help="forget this machine's registry login").set_defaults(
        fn=cmd_logout
    )
    res = sub.add_parser(
        "resources", help="saved resources: ls, show, history, rollback, share, revoke, rm"
    ).add_subparsers(dest="verb", required=True)
    ls = res.add_parser("ls", help="list what you may read (the registry's when logged in)")
    ls.add_argument("--type", default=None, help="function, module, env, cluster, run, ...")
    ls.add_argument("--shared", action="store_true", help="only what others shared with you")
    ls.set_defaults(fn=cmd_resources_ls)
    show = res.add_parser("show", help="a resource's config (latest version, or --version)")
    show.add_argument("name")
    show.add_argument("--version", type=int, default=None)
    show.set_defaults(fn=cmd_resources_show)
    hist = res.add_parser("history", help="every version: who, when, content hash")
    hist.add_argument("name")
    hist.set_defaults(fn=cmd_resources_history)
    back = res.add_parser("rollback", help="save a new version equal to an old one")
    back.add_argument("name")
    back.add_argument("version", type=int)
    back.set_defaults(fn=cmd_resources_rollback)
    share = res.add_parser("share", help="share with users (bob) or groups (@ml)")
    share.add_argument("name")
    share.add_argument("principals", nargs="+")
    share.add_argument("--write", action="store_true", help="write access (default: read)")
    share.set_defaults(fn=cmd_resources_share)
    revoke = res.add_parser("revoke", help="take shares back")
    revoke.add_argument("name")
    revoke.add_argument("principals", nargs="+")
    revoke.set_defaults(fn=cmd_resources_revoke)
    rm = res.add_parser("rm", help="delete every saved version of a resource")
    rm.add_argument("name")
    rm.set_defaults(fn=cmd_resources_rm)
    sec = sub.add_parser("secrets", help="saved secrets: ls, show (masked), rm").add_subparsers(
        dest="verb", required=True
    )
    sec.add_parser("ls", help="names, providers and keys (never values)").set_defaults(
        fn=cmd_secrets_ls
    )
    show_secret = sec.add_parser("show", help="a secret's keys, values masked")
    show_secret.add_argument("name")
    show_secret.add_argument("--reveal", action="store_true", help="show the values (asks first)")
    show_secret.set_defaults(fn=cmd_secrets_show)
    rm_secret = sec.add_parser("rm", help="delete a saved secret")
    rm_secret.add_argument("name")
    rm_secret.set_defaults(fn=cmd_secrets_rm)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["den"]:  # everything after it is den's, --help included
        sys.exit(cmd_den(argparse.Namespace(den_args=argv[1:])))
    args = build_parser().parse_args(argv)
    try:
        code: Any = args.fn(args)
    except RhzmqError as exc:
        print(f"rhzmq: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
