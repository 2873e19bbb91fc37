"""deploy: create or update the stack so that it matches the config (``--plan`` changes nothing)."""
from __future__ import annotations

import argparse
from contextlib import ExitStack

from .. import runner
from ..context import make_context
from ..lock import stack_lock
from ..steps import STEPS, database

HELP = "Create or update the stack so that it matches the config."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", action="store_true", help="say what would change, change nothing")


def run(args, config, session, out) -> int:
    ctx = make_context(config, session=session, planning=args.plan, out=out)
    verb = "Planning" if args.plan else "Deploying"
    out.console.print(f"[bold]{verb} stack {config.stack.name}[/] in account {ctx.account_id} "
                      f"({', '.join(config.regions)})")
    with ExitStack() as stack:
        if not args.plan:
            stack.enter_context(stack_lock(config.state_dir / f"{config.stack.name}.lock", "deploy", out.note))
        database.preflight(ctx)  # before any changing call: what auth = "iam" needs, where a password goes
        runner.deploy(ctx, STEPS)
    if not args.plan:
        out.outputs(ctx.outputs)
    out.calls(ctx.clients.calls.total, ctx.clients.calls.changing)
    return 0
