"""teardown: remove every resource of the stack, from the config alone, with or without a state file.

With ``--stack NAME`` and no config file, the config is read back from what
the account holds, in the region the stack's regional half is in
(``provision/account/discovered.py``); ``--region`` names it, and is refused (exit 2,
before any change) where the stack has none. The confirmation comes first:
nothing is locked, leased or made while the prompt waits; the lease table is
never made by a teardown.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import confirm, runner
from ..account import discovered
from ..config import STACK_NAME
from ..context import locked, make_context
from ..errors import WrongRegion
from ..steps import STEPS

HELP = "Remove every resource of the stack."
LOCKS = True  # --wait: wait for another run of the stack instead of stopping


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--stack", metavar="NAME",
                        help="without a config file: the stack's name, as 'rds-edge-api list' shows it")
    parser.add_argument("--region", metavar="R",
                        help="with --stack: the stack's region (its function's); default: found from its tags")


def run(args, config, session, out) -> int:
    asks = not args.yes and not args.local
    if asks and not sys.stdin.isatty():
        out.error("teardown asks for confirmation: run it with --yes when there is no terminal")
        return 2
    if args.stack:
        import boto3

        session = session or boto3.Session()
        try:
            config, how = discovered.for_teardown(session, args.stack, args.region, Path.cwd() / ".state")
        except WrongRegion as exc:
            out.error(str(exc))
            return 2
        out.note(f"stack {args.stack} {how}: domain {config.domain.name} ({config.domain.validation} validation), "
                 f"database {config.database.instance_id}")
    regions = ", ".join(config.regions)
    if asks:
        account = make_context(config, session=session, out=out, read_state=False).account_id
        if not _confirmed(config.stack.name, account, regions):
            out.error("teardown cancelled; nothing was changed")
            return 2
    with locked(config, "teardown", session=session, out=out, wait=args.wait, make_table=False) as ctx:
        if args.local:
            # The emulator starts empty: deploy first, so teardown has something to remove.
            out.console.print(f"[bold]Deploying stack {config.stack.name}[/] into the empty emulator first, "
                              f"so there is something to tear down")
            runner.deploy(ctx, STEPS)
        out.console.print(f"[bold]Tearing down stack {config.stack.name}[/] in account {ctx.account_id} ({regions})")
        runner.teardown(ctx, STEPS)
    if args.stack:
        discovered.done(config.state_dir, config.stack.name)
    out.calls(ctx.clients.calls.total, ctx.clients.calls.changing)
    return 0


def usage_error(args) -> str | None:
    """What is wrong with --stack/--region, or None; found before any config is read."""
    if not (args.stack or args.region):
        return None
    if getattr(args, "local", False):
        return "--stack reads a stack from the account: not with --local"
    if not args.stack:
        return "--region goes with --stack NAME (the stack read from the account)"
    if not STACK_NAME.fullmatch(args.stack):
        return f"--stack {args.stack!r} is not a stack name (letters, digits and '-', starting with a letter)"
    return None


def _confirmed(stack: str, account: str, regions: str) -> bool:
    return confirm.typed(f"Remove every resource of stack '{stack}' in account {account} ({regions})?\n"
                         f"Type the stack name to confirm: ", stack)
