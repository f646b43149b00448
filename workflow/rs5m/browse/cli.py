"""Browse: the `rs5m browse` command, which serves the web app over a run folder.

Reads the run folder given on the command line; writes its index and ratings inside that folder.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from rs5m.browse.web import LOOPBACK_HOSTS, BrowseApp

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
# Seconds a connection may take to send its request (a slow or silent client holds one thread).
REQUEST_TIMEOUT = 30
# Connections the kernel queues while every thread is busy (socketserver's default is 5).
LISTEN_BACKLOG = 128
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    # A page loads a grid of images at once; one thread each keeps it from queueing behind one.
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG


class ThreadingWSGIServer6(ThreadingWSGIServer):
    address_family = socket.AF_INET6


class QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT

    def log_message(self, format, *args):  # noqa: A002 - the base class names it so
        if self.server.verbose:
            super().log_message(format, *args)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir",
        nargs="?",
        default=".",
        help="the run folder (where snakemake ran; holds results/); default: the current folder",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (0: any free port; default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to bind (default 127.0.0.1); anything but loopback exposes the ratings to the network",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a further Host name the app answers to (repeatable); the bound address, "
        "localhost and this machine's hostname are always allowed",
    )
    parser.add_argument("--reindex", action="store_true", help="rebuild the shard index from scratch")
    parser.add_argument("--verbose", action="store_true", help="log every request")


def add_browse_parser(subparsers) -> argparse.ArgumentParser:
    """Register `browse` on the `rs5m` command's subparsers."""
    parser = subparsers.add_parser(
        "browse",
        help="browse and rate a finished run in a web browser",
        description="Serve a web app to browse, inspect drops of, and rate a finished run.",
    )
    add_arguments(parser)
    parser.set_defaults(func=main_browse)
    return parser


def make_browse_server(args: argparse.Namespace, log=sys.stderr):
    if not 0 <= args.port <= 65535:
        raise SystemExit(f"rs5m browse: port {args.port} is outside 0-65535")
    loopback = is_loopback(args.host)
    if not loopback:
        print(f"rs5m browse: warning: binding {args.host} makes the app reachable from other machines", file=log)
    try:
        app = BrowseApp(
            args.run_dir,
            allowed_hosts=allowed_hosts(args.host, getattr(args, "allowed_host", None)),
            reindex=args.reindex,
            log=log,
        )
    except FileNotFoundError as error:
        raise SystemExit(f"rs5m browse: {error}") from None
    for rel, error in app.refresh.failed:
        print(f"rs5m browse: warning: {rel} could not be read and is left out ({error})", file=log)
    server_class = ThreadingWSGIServer6 if ":" in args.host else ThreadingWSGIServer
    server = make_server(args.host, args.port, app, server_class=server_class, handler_class=QuietHandler)
    server.verbose = args.verbose
    app.port = server.server_address[1]
    return app, server


def allowed_hosts(host: str, extra: list[str] | None = None) -> frozenset[str]:
    """The Host names the app answers to: loopback names, the bound address (unless a wildcard),
    this machine's hostname, and any given with --allowed-host. Never None: the Host and Origin
    checks stay on whatever address is bound."""
    names = set(LOOPBACK_HOSTS)
    if host.strip("[]").lower() not in WILDCARD_HOSTS:
        names.add(host.strip("[]").lower())
    if not is_loopback(host):
        hostname = socket.gethostname().lower()  # no DNS: the name this machine gives itself
        names |= {hostname, hostname.split(".")[0]}
    names |= {name.strip().strip("[]").lower() for name in extra or [] if name.strip()}
    return frozenset(names)


def main_browse(args: argparse.Namespace) -> int:
    app, server = make_browse_server(args)
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    report = app.refresh
    print(f"rs5m browse: {app.run_dir} (index: {len(report.indexed)} files read, {report.unchanged} unchanged)")
    print(f"rs5m browse: serving on http://{shown}:{port}/  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rs5m.browse",
        description="Serve a web app to browse, inspect drops of, and rate a finished run.",
    )
    add_arguments(parser)
    return main_browse(parser.parse_args(argv))
