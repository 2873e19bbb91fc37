"""deploy: create or update the stack so that it matches the config (``--plan`` changes nothing).

With ``--local --serve``, the deployed path is then served on loopback
(provision/local/serve.py) until Ctrl-C, or, with ``--once``, checked by
``verify --local``'s rows and left.
"""
from __future__ import annotations

import argparse
import signal
import threading
from contextlib import ExitStack

from .. import preflight, runner
from ..context import locked, make_context
from ..steps import STEPS
from .policy import check_caller

HELP = "Create or update the stack so that it matches the config."
LOCKS = True  # --wait: wait for another run of the stack instead of stopping
DEFAULT_PORT = 8080


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", action="store_true", help="say what would change, change nothing")
    parser.add_argument("--serve", action="store_true",
                        help="with --local: then serve the deployed path on loopback (edge on --port, the API "
                             "stand-in on the next port) with a throwaway MariaDB, until Ctrl-C")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="N",
                        help=f"with --serve: the edge's port (default {DEFAULT_PORT}); the API stand-in takes N+1")
    parser.add_argument("--once", action="store_true",
                        help="with --serve: run verify --local's checks against the served path, print the "
                             "table and exit with their result (for CI, or a run with no terminal)")


def usage_error(args) -> str | None:
    """A bad combination of flags, found before the config is read or the emulator starts."""
    if args.serve and (args.plan or not args.local):
        return "--serve needs --local and no --plan: it serves what was deployed into the emulator"
    if (args.once or args.port != DEFAULT_PORT) and not args.serve:
        return "--once and --port go with --serve"
    if not 0 < args.port < 65535:
        return f"--port {args.port}: choose a port between 1 and 65534 (the API stand-in takes the next one)"
    return None


def run(args, config, session, out) -> int:
    with ExitStack() as stack:
        # A plan changes nothing: it reads the state without the lock; a deploy reads it once the lock is held.
        ctx = (make_context(config, session=session, planning=True, out=out) if args.plan
               else stack.enter_context(locked(config, "deploy", session=session, out=out, wait=args.wait)))
        verb = "Planning" if args.plan else "Deploying"
        out.console.print(f"[bold]{verb} stack {config.stack.name}[/] in account {ctx.account_id} "
                          f"({', '.join(config.regions)})")
        if config.stack.check_permissions:  # before the first change: a denied call would stop the deploy halfway
            if args.local:
                out.note("check_permissions: skipped with --local (the emulator cannot simulate IAM permissions)")
            elif not check_caller(ctx):
                return 1
        preflight.run(ctx)  # read-only, before any changing call: the account's facts a deploy needs
        runner.deploy(ctx, STEPS)
    if not args.plan:
        out.outputs(ctx.outputs)
    out.calls(ctx.clients.calls.total, ctx.clients.calls.changing)
    if args.serve:
        return serve(args, config, session, out)
    return 0


def serve(args, config, session, out) -> int:
    from ..local.serve import LocalPath
    from . import verify

    out.console.print("[bold]Serving the deployed path locally[/] (starting a throwaway MariaDB with sample rows)")
    with LocalPath(config, session, port=args.port, log=None if args.once else _printer(out)) as path:
        allowed, blocked = verify.local_addresses(config.access.allowed_cidrs)
        header = _authorization_header(config, args.throwaway_secrets, path)
        assert path.database is not None  # LocalPath started its MariaDB on entering
        lines = [
            *_aligned({"edge (CloudFront + WAF)": path.edge_url,
                       f"API stand-in (stage {config.api.stage})": f"{path.invoke_url}  (API key required)",
                       f"MariaDB (table {config.database.table})":
                           f"127.0.0.1:{path.database.port}  (keys 42 and 7 have rows; TLS from a throwaway CA)"}),
            *(["The function signs in to MariaDB with a throwaway password: IAM database authentication "
                "is RDS's own."] if path.iam_stood_in else []),
            "Every caller here is 127.0.0.1, so, locally only, the edge takes the caller's address",
            "from the first X-Forwarded-For entry. Try an allowed and a blocked caller:",
            f"  curl -i {header} -H 'X-Forwarded-For: {allowed}' '{path.edge_url}?key=42'",
            f"  curl -i {header} -H 'X-Forwarded-For: {blocked}' '{path.edge_url}?key=42'",
        ]
        if header.startswith("-H @"):
            lines.append("(that file holds this run's throwaway Authorization value; it is removed when serving stops)")
        out.notice("The deployed path, served locally", "\n".join(lines))
        if args.once:
            return 0 if verify.show(verify.check(verify.local_target(path, config, session)), out) else 1
        out.console.print("Serving until Ctrl-C; each request is logged below.")
        _until_stopped()
        out.console.print("Stopping the servers and MariaDB, removing their files.")
    return 0


def _until_stopped() -> None:
    """Wait for Ctrl-C or SIGTERM, even where a shell started us with SIGINT ignored (`cmd &`)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _authorization_header(config, throwaway: list[str], path) -> str:
    """curl's header argument: the variable's name for the operator's own secret; for a throwaway one, a
    header file (mode 0600, removed when serving stops), since the operator's shell does not have it."""
    env = config.access.authorization.env
    if env not in throwaway:
        return f'-H "Authorization: ${env}"'
    file = path.private_file("authorization.header", f"Authorization: {config.access.authorization.value}\n")
    return f"-H @{file}"


def _printer(out):
    return lambda line: out.console.print(line, markup=False, highlight=False)


def _aligned(rows: dict[str, str]) -> list[str]:
    width = max(map(len, rows)) + 2
    return [f"{(label + ':').ljust(width)}{value}" for label, value in rows.items()]
