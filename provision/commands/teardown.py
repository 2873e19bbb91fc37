"""teardown: remove every resource of the stack, from the config alone, with or without a state file."""
from __future__ import annotations

import argparse
import sys

from .. import lease, runner
from ..context import make_context
from ..lock import stack_lock
from ..steps import STEPS

HELP = "Remove every resource of the stack."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    lease.add_wait_argument(parser)


def run(args, config, session, out) -> int:
    ctx = make_context(config, session=session, out=out)
    regions = ", ".join(config.regions)
    if not args.yes and not args.local:
        if not sys.stdin.isatty():
            out.error("teardown asks for confirmation: run it with --yes when there is no terminal")
            return 2
        if not _confirmed(config.stack.name, ctx.account_id, regions):
            out.error("teardown cancelled; nothing was changed")
            return 2
    with stack_lock(config.state_dir / f"{config.stack.name}.lock", "teardown", out.note), \
            lease.held(ctx, "teardown", wait=args.wait):
        if args.local:
            # The emulator starts empty: deploy first, so teardown has something to remove.
            out.console.print(f"[bold]Deploying stack {config.stack.name}[/] into the empty emulator first, "
                              f"so there is something to tear down")
            runner.deploy(ctx, STEPS)
        out.console.print(f"[bold]Tearing down stack {config.stack.name}[/] in account {ctx.account_id} ({regions})")
        runner.teardown(ctx, STEPS)
    out.calls(ctx.clients.calls.total, ctx.clients.calls.changing)
    return 0


def _confirmed(stack: str, account: str, regions: str) -> bool:
    answer = input(f"Remove every resource of stack '{stack}' in account {account} ({regions})?\n"
                   f"Type the stack name to confirm: ")
    return answer.strip() == stack
