"""`edge console serve|user ...`: the operator console on the trial database, and its users.

The console needs the `console` extra (FastAPI, uvicorn, Jinja2, argon2-cffi); its modules are
imported only when a console verb runs, so `edge --help` works without it.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import socket
import sys
from pathlib import Path

from edge.commands.common import CommandError, print_json, settings_from

DB_HELP = "the trial database edge collect fills: sqlite:///FILE (or a file path) or postgresql://USER@HOST:PORT/DB"


def _require_extra() -> None:
    """One line, not a traceback, on a host without the console extra (a device, a bare install)."""
    try:
        for module in ("fastapi", "uvicorn", "jinja2", "argon2", "multipart", "sqlalchemy"):
            importlib.import_module(module)
    except ImportError as e:
        raise CommandError(
            f"the console needs its extra ({e.name} is missing): pip install 'edge[console,central]'"
        ) from None


def _password(confirm: bool) -> str:
    """From the terminal (asked twice), or the first line of standard input; never an argument."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if confirm and getpass.getpass("again: ") != first:
        raise CommandError("the two passwords differ; nothing changed")
    return first


def run_serve(args: argparse.Namespace) -> int:
    _require_extra()
    from edge.central.fleet.folder import FleetDir
    from edge.console.app import ConsoleServer, create_app
    from edge.console.delivery import Deliveries
    from edge.console.fleet import FleetAccess
    from edge.console.names import Names
    from edge.console.schema import open_database

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise CommandError(f"--listen {args.listen!r}: give HOST:PORT, e.g. 127.0.0.1:8080")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise CommandError("--tls-cert and --tls-key go together")
    if (args.fleet is None) != (args.broker is None):
        raise CommandError("--fleet and --broker go together (the fleet page reads devices through the broker)")
    if args.deliver_every < 0:
        raise CommandError(f"--deliver-every {args.deliver_every:g}: give seconds, or 0 for after changes only")
    fleet = None if args.fleet is None else FleetAccess(FleetDir(args.fleet).require(), args.broker)
    settings, _, _ = settings_from(args, **{"models.models_dir": args.models})
    tls = args.tls_cert is not None
    _check_free(host.strip("[]"), int(port))
    names = Names(args.gallery) if args.gallery else None
    with open_database(args.db) as store:
        deliveries = None if fleet is None else Deliveries(store.engine, fleet, settings, args.deliver_every)
        secure = tls or args.behind_tls_proxy
        app = create_app(store, secure_cookies=secure, fleet=fleet, names=names, deliveries=deliveries)
        print(f"console on {'https' if tls else 'http'}://{args.listen}/ (Ctrl-C stops it)", file=sys.stderr)
        ConsoleServer(
            app,
            host=host.strip("[]"),
            port=int(port),
            ssl_certfile=args.tls_cert,
            ssl_keyfile=args.tls_key,
            log_level="warning",
            proxy_headers=args.behind_tls_proxy,
            forwarded_allow_ips=args.proxy or "127.0.0.1",
        ).run()
    return 0


def _check_free(host: str, port: int) -> None:
    """Refuse, in one line, an address this host cannot listen on (in use, not its own)."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise CommandError(f"--listen {host}:{port}: cannot listen there ({e.strerror})") from None


def run_user(args: argparse.Namespace) -> int:
    _require_extra()
    from edge.console import audit, users
    from edge.console.schema import open_database

    with open_database(args.db) as store:
        engine = store.engine
        if args.action == "list":
            print_json([{"name": u.name, "role": u.role, "sites": list(u.sites)} for u in users.listed(engine)])
            return 0
        if args.action == "add":
            user = users.add(engine, args.name, args.role, args.site, _password(confirm=True))
            detail = f"{user.role} {' '.join(user.sites)}".strip()
        elif args.action == "remove":
            users.remove(engine, args.name)
            detail = None
        else:
            if users.get(engine, args.name) is None:  # before a password is asked for
                raise users.UserError(f"no user {args.name!r}")
            users.set_password(engine, args.name, _password(confirm=True))
            detail = "password changed; sessions ended"
        audit.record(engine, f"user_{args.action}", "ok", f"cli:{getpass.getuser()}", None, args.name, detail)
    print(f"user {args.name}: {args.action} done")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("console", help="the operator console (web) on the trial database, and its users")
    verbs = p.add_subparsers(dest="verb", required=True)
    serve = verbs.add_parser("serve", help="serve the console")
    serve.add_argument("--db", required=True, help=DB_HELP)
    serve.add_argument(
        "--fleet", type=Path, help="the fleet folder (edge fleet init): the fleet page and signed changes"
    )
    serve.add_argument("--broker", help="mqtts://HOST:PORT the fleet's devices use (with --fleet)")
    serve.add_argument(
        "--gallery",
        type=Path,
        action="append",
        default=[],
        help="a gallery file whose people's names the alerts show beside their ids (several allowed; re-read "
        "when it changes)",
    )
    serve.add_argument(
        "--deliver-every",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="with --fleet: send each deployment's gallery to devices that lack it this often, and after each "
        "watchlist change made in the console (default: 30; 0: only after changes)",
    )
    serve.add_argument("--models", type=Path, help="models folder that builds galleries (default: the bundled models/)")
    serve.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to listen on (default: 127.0.0.1:8080)")
    serve.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--tls-key", help="the certificate's private key (PEM)")
    serve.add_argument(
        "--behind-tls-proxy",
        action="store_true",
        help="a TLS reverse proxy (Caddy, nginx) on this host serves the console: secure cookies, and the "
        "client address from X-Forwarded-For",
    )
    serve.add_argument("--proxy", help="the proxy's address when it is not 127.0.0.1")
    serve.set_defaults(func=run_serve)
    user = verbs.add_parser("user", help="add, list, remove console users or change a password")
    actions = user.add_subparsers(dest="action", required=True)
    for name, text in (
        ("add", "add a user (the password is asked for, or read from standard input)"),
        ("list", "list users, their roles and sites"),
        ("remove", "remove a user (their sessions end)"),
        ("passwd", "change a user's password (their sessions end)"),
    ):
        a = actions.add_parser(name, help=text)
        a.add_argument("--db", required=True, help=DB_HELP)
        if name != "list":
            a.add_argument("name", help="user name")
        if name == "add":
            a.add_argument("--role", required=True, choices=("admin", "operator", "viewer"))
            a.add_argument(
                "--site",
                action="append",
                default=[],
                help="a site the user sees (operators: required, one or more; viewers: none means every site)",
            )
        a.set_defaults(func=run_user)
