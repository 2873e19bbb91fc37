"""deploy: create or update the stack so that it matches the config (``--plan`` changes nothing).

With ``--local --serve``, the deployed path is then served on loopback
(provision/local/serving.py) until Ctrl-C, or, with ``--once``, checked by
``verify --local``'s rows and left.
"""
from __future__ import annotations

import argparse
from contextlib import ExitStack
from dataclasses import replace

from .. import lease, runner
from ..account import preflight
from ..context import locked, make_context
from ..cost import report as cost_report
from ..errors import CallerLacksPermissions
from ..iam.caller_check import check_caller
from ..steps import STEPS
from ..together import together

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
               else stack.enter_context(locked(config, "deploy", session=session, out=out, wait=args.wait,
                                               lease=False)))
        try:
            runner.deploy(ctx, STEPS, before=lambda: _before_steps(ctx, args, stack))
        except CallerLacksPermissions:  # what it lacks is printed
            return 1
    if not args.plan:
        out.outputs(ctx.outputs)
    else:
        if "Capacity" in ctx.outputs:  # what the planned stack admits, and where it stops first
            out.outputs({"Capacity": ctx.outputs["Capacity"]})
        # what it would cost (provision/cost/): the emulator has no price list
        cost_report.show(ctx, offline="--local: the emulator has no price list" if args.local else None)
    out.calls(ctx.clients.calls.total, ctx.clients.calls.changing)
    if args.serve:
        from ..local import serving

        return serving.serve(config, session, out, port=args.port, once=args.once,
                             throwaway_secrets=args.throwaway_secrets)
    return 0


def _before_steps(ctx, args, stack: ExitStack) -> bool:
    """What the run checks and holds before its first change, while the steps' early looks go out
    (runner.deploy's ``before``): the account (asked of STS once for the run), the caller's permissions
    ([stack] check_permissions) and the preflight's checks, all at once, since they only read; then the
    lease in the account, once they passed, so that a run they stop writes nothing. False when taking the
    lease waited (another run held it, or a call was retried): the early looks may no longer hold."""
    config, out = ctx.config, ctx.out
    checking = config.stack.check_permissions and not args.local  # before the first change: a denied call
    # would stop the deploy halfway
    pieces = (lambda c: c.account_id, preflight.checks, *((check_caller,) if checking else ()))
    account, checks, *caller = together(ctx, *pieces)
    verb = "Planning" if args.plan else "Deploying"
    out.console.print(f"[bold]{verb} stack {config.stack.name}[/] in account {account} ({', '.join(config.regions)})")
    if config.stack.check_permissions and args.local:
        out.note("check_permissions: skipped with --local (the emulator cannot simulate IAM permissions)")
    if caller and not caller[0]:
        raise CallerLacksPermissions()
    preflight.report(ctx, checks)  # DeployError (exit 1) when one failed, naming the fix
    if args.plan:
        return True
    waited = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        ctx.sleep(seconds)

    stack.enter_context(lease.held(replace(ctx, sleep=sleep), "deploy", wait=args.wait))
    return not waited
