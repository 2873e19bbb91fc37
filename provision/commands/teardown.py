"""teardown: remove every resource of the stack, from the config alone, with or without a state file."""
from __future__ import annotations

import argparse
import sys

from .. import runner
from ..context import locked
from ..steps import STEPS

HELP = "Remove every resource of the stack."
LOCKS = True  # --wait: wait for another run of the stack instead of stopping


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def run(args, config, session, out) -> int:
    regions = ", ".join(config.regions)
    if not args.yes and not args.local and not sys.stdin.isatty():
        out.error("teardown asks for confirmation: run it with --yes when there is no terminal")
        return 2
    with locked(config, "teardown", session=session, out=out, wait=args.wait) as ctx:
        if not args.yes and not args.local and not _confirmed(config.stack.name, ctx.account_id, regions):
            out.error("teardown cancelled; nothing was changed")
            return 2
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
