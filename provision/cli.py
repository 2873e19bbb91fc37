"""The console script ``rds-edge-api``: one subcommand per module in ``provision/commands/``.

Every command shares what is here: ``--config``, ``--local``, ``--debug``, the
config check before any AWS call, the embedded emulator, and the exit codes:
0 done, 1 an AWS or runtime failure (one readable line naming the step; the
traceback only with --debug), 2 a bad config or usage, 130 Ctrl-C.

A new command is one module in ``provision/commands/`` with ``HELP``,
``add_arguments(parser)`` and ``run(args, config, session, out) -> int`` (and,
if its flags can clash, ``usage_error(args) -> str | None``), and one entry in
``COMMANDS`` below. A module with ``CONFIG = False`` (``list``) works from what
the account holds: it gets no ``--config`` and ``config`` None; so does a
command run with ``--stack NAME`` (outputs, teardown), which reads the stack
from the account itself.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from contextlib import ExitStack, contextmanager
from typing import Iterator

import boto3
import botocore
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from .commands import cost, deploy, list as list_command, logs, outputs, policy, rotate, teardown, unlock, verify
from .config import known_regions, load
from .errors import ConfigError, DeployError, Interrupted, describe
from .lock import LOCK_WAIT_TIMEOUT
from .output import Output

COMMANDS = {"deploy": deploy, "teardown": teardown, "outputs": outputs, "verify": verify, "logs": logs,
            "rotate": rotate, "policy": policy, "list": list_command, "unlock": unlock, "cost": cost}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rds-edge-api",
        description="Stand up, operate and remove a guarded read-only JSON API over a MySQL table in RDS.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        sub = commands.add_parser(name, help=module.HELP, description=module.HELP)
        if getattr(module, "CONFIG", True):
            sub.add_argument("--config", default="stack.toml", metavar="PATH",
                             help="the stack's config (default: stack.toml)")
        if getattr(module, "LOCAL", True):
            sub.add_argument("--local", action="store_true",
                             help="run against an embedded AWS emulator (moto), seeded with a stand-in database")
        sub.add_argument("--debug", action="store_true", help="show tracebacks")
        if getattr(module, "LOCKS", False):
            sub.add_argument("--wait", action="store_true",
                             help="if another run of this stack holds its lock (or its lease in the account), "
                                  "wait for it to finish "
                                  f"(at most {LOCK_WAIT_TIMEOUT // 3600} h) instead of stopping with exit 1")
        module.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None, *, session: boto3.Session | None = None,
         out: Output | None = None) -> int:
    """Run one command; ``session`` lets tests bring a session with their own event hooks."""
    args = build_parser().parse_args(argv)
    module = COMMANDS[args.command]
    out = out or _output(module, args)
    problem = getattr(module, "usage_error", lambda _: None)(args) or region_error(args)
    if problem:  # before the config is read and the emulator starts: a usage error answers at once
        out.error(problem)
        return 2
    with ExitStack() as stack:
        stack.enter_context(terminate_as_interrupt())
        args.throwaway_secrets = []
        if getattr(args, "local", False):
            from .local.emulator import throwaway_secrets

            args.throwaway_secrets = stack.enter_context(throwaway_secrets(args.config))
        try:
            config = load(args.config) if getattr(module, "CONFIG", True) and not getattr(args, "stack", None) \
                else None
        except ConfigError as exc:
            print(f"config error: {one_line(str(exc))}", file=sys.stderr)
            return 2
        for warning in config.warnings if config is not None else ():
            out.note(f"config warning: {warning}")
        if args.throwaway_secrets:
            out.note(f"{', '.join(args.throwaway_secrets)} not set: throwaway values made for this run only "
                     f"(--local needs none of your secrets)")
        return _run(stack, module, args, config, session, out)


def _run(stack: ExitStack, module, args, config, session: boto3.Session | None, out: Output) -> int:
    """The command's exit code, the emulator started first with --local; a failure's code, its one line said."""
    try:
        if getattr(args, "local", False) and config is not None:  # usage_error keeps --local from --stack
            from .local.emulator import start

            config, session = start(stack, config, out)
        return module.run(args, config, session, out)
    except Interrupted as exc:
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


def _output(module, args) -> Output:
    """The terminal; for a command whose output is a document to redirect (``--json``, ``policy``), the
    document alone on stdout and every note, warning and error on stderr."""
    if not getattr(module, "writes_document", lambda _: False)(args):
        return Output()
    out = Output(Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200))
    out.documents = sys.stdout
    return out


def region_error(args) -> str | None:
    """A --region that no partition of the installed botocore has (AWS would answer with an HTML page or an
    unreachable endpoint), or None."""
    given = getattr(args, "region", None)
    for region in given if isinstance(given, list) else [given] if given is not None else []:
        if region not in known_regions():
            hint = f"; regions are lower case: {region.lower()}" if region.lower() in known_regions() else ""
            return (f"--region {region!r} is not an AWS region (none of the {len(known_regions())} regions "
                    f"botocore {botocore.__version__} knows, such as eu-west-1){hint}")
    return None


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (kill, systemd, CI cancelling a job) ends the run as Ctrl-C does: the steps stop at their next
    call, what was done is saved, the lease and the lock are given back, exit 130."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def one_line(text: str) -> str:
    """The text with anything that would break the line or reach the terminal raw shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def run_script(command: str) -> None:
    """deploy.py and teardown.py: the same as ``rds-edge-api <command> ...``."""
    sys.exit(main([command, *sys.argv[1:]]))
