"""teardown: remove every resource of the stack, from the config alone, with or without a state file.

With ``--stack NAME --region R`` and no config file, the config is read back
from what the account holds (``provision/discovered.py``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import discovered, runner
from ..config import REGION, STACK_NAME
from ..context import locked
from ..steps import STEPS

HELP = "Remove every resource of the stack."
LOCKS = True  # --wait: wait for another run of the stack instead of stopping


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--stack", metavar="NAME",
                        help="without a config file: the stack's name, as 'rds-edge-api list' shows it (with --region)")
    parser.add_argument("--region", metavar="R", help="with --stack: the stack's region (its function's)")


def run(args, config, session, out) -> int:
    if args.stack:
        import boto3

        session = session or boto3.Session()
        config = discovered.config_for(session, args.stack, args.region, Path.cwd() / ".state")
        out.note(f"stack {args.stack} read from the account: domain {config.domain.name} "
                 f"({config.domain.validation} validation), database {config.database.instance_id}")
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


def usage_error(args) -> str | None:
    """What is wrong with --stack/--region, or None; found before any config is read."""
    if not (args.stack or args.region):
        return None
    if getattr(args, "local", False):
        return "--stack reads a stack from the account: not with --local"
    if not args.stack or not args.region:
        return "--stack NAME and --region R go together"
    if not STACK_NAME.fullmatch(args.stack):
        return f"--stack {args.stack!r} is not a stack name (letters, digits and '-', starting with a letter)"
    if not REGION.fullmatch(args.region):
        return f"--region {args.region!r} is not an AWS region such as eu-west-1"
    return None


def _confirmed(stack: str, account: str, regions: str) -> bool:
    answer = input(f"Remove every resource of stack '{stack}' in account {account} ({regions})?\n"
                   f"Type the stack name to confirm: ")
    return answer.strip() == stack
