"""What deploy.py and teardown.py share: arguments, exit codes, the lock, the final report.

Exit codes: 0 done, 1 an AWS or runtime failure (one readable line naming the
step; the traceback only with --debug), 2 a bad config or usage, 130 Ctrl-C.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import traceback
from contextlib import ExitStack
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from . import runner
from .steps import STEPS
from .config import Config, load
from .context import make_context
from .errors import ConfigError, DeployError, describe
from .lock import stack_lock
from .output import Output


def parse(command: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"{command}.py", description={
        "deploy": "Create or update the stack so that it matches the config.",
        "teardown": "Remove every resource of the stack.",
    }[command])
    parser.add_argument("--config", default="stack.toml", metavar="PATH", help="the stack's config (default: stack.toml)")
    if command == "deploy":
        parser.add_argument("--plan", action="store_true", help="say what would change, change nothing")
    else:
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--local", action="store_true",
                        help="run against an embedded AWS emulator (moto), seeded with a stand-in database")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def main(command: str, argv: list[str] | None = None, *, session: boto3.Session | None = None,
         out: Output | None = None) -> int:
    """Run deploy or teardown; ``session`` lets tests bring a session with their own event hooks."""
    args = parse(command, argv)
    out = out or Output()
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        try:
            if args.local:
                config, session = _start_emulator(stack, config, out)
            return _run(command, args, config, session, out)
        except runner.Interrupted as exc:
            out.error(f"interrupted during '{exc.step}'. What was done so far is recorded; "
                      f"run the same command again to continue.")
            return 130
        except KeyboardInterrupt:
            out.error("interrupted; run the same command again to continue.")
            return 130
        except (DeployError, ClientError, BotoCoreError) as exc:
            if args.debug:
                traceback.print_exc()
            out.error(describe(exc))
            return 1


def _start_emulator(stack: ExitStack, config: Config, out: Output) -> tuple[Config, boto3.Session]:
    from .local import emulator, seed

    endpoint = stack.enter_context(emulator())
    session = boto3.Session(region_name=config.stack.region)
    config = seed(session, config)
    state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rds-edge-local-")))
    out.note(f"AWS emulator (moto) at {endpoint}, seeded with VPC, subnets and RDS instance "
             f"{config.database.instance_id}; nothing leaves this machine")
    return dataclasses.replace(config, state_dir=state_dir), session


def _run(command: str, args, config: Config, session, out: Output) -> int:
    planning = command == "deploy" and args.plan
    ctx = make_context(config, session=session, planning=planning, out=out)
    regions = ", ".join(config.regions)
    if command == "teardown" and not args.yes and not args.local:
        if not sys.stdin.isatty():
            out.error("teardown asks for confirmation: run it with --yes when there is no terminal")
            return 2
        if not _confirmed(config, ctx.account_id, regions):
            out.error("teardown cancelled; nothing was changed")
            return 2
    verb = {"deploy": "Planning" if planning else "Deploying", "teardown": "Tearing down"}[command]
    out.console.print(f"[bold]{verb} stack {config.stack.name}[/] in account {ctx.account_id} ({regions})")
    with ExitStack() as stack:
        if not planning:
            stack.enter_context(stack_lock(config.state_dir / f"{config.stack.name}.lock", command, out.note))
        if command == "deploy":
            runner.deploy(ctx, STEPS)
        elif args.local:
            runner.deploy(ctx, STEPS)  # the emulator starts empty: deploy, so teardown has something to remove
            out.console.print("[bold]Tearing down[/] what was just deployed")
            runner.teardown(ctx, STEPS)
        else:
            runner.teardown(ctx, STEPS)
    if command == "deploy" and not planning:
        out.outputs(ctx.outputs)
    out.calls(ctx.clients.calls.total, ctx.clients.calls.changing)
    return 0


def _confirmed(config: Config, account: str, regions: str) -> bool:
    answer = input(f"Remove every resource of stack '{config.stack.name}' in account {account} ({regions})?\n"
                   f"Type the stack name to confirm: ")
    return answer.strip() == config.stack.name
