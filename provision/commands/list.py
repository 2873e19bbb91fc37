"""list: every rds-edge-api stack in the account, what each owns, whether it is whole, whether a run holds it.

Needs no config: an operator who lost it, or an auditor, asks the account
(``provision/account/stacks.py`` says how the stacks are found).
"""
from __future__ import annotations

import argparse
import json
import time

from rich.markup import escape
from rich.table import Table

from ..account.stacks import Stack, find
from ..lease import Holder, shown

HELP = "List every rds-edge-api stack in the account: its resources by type, whether it is complete, its lease."
LOCAL = False   # the emulator starts empty: there would be nothing to list
CONFIG = False  # works from what the account holds


def writes_document(args) -> bool:
    """--json is for scripts: the JSON alone goes to stdout, notes to stderr."""
    return bool(args.json)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", action="append", metavar="R",
                        help="look only in this region (repeatable; default: every region enabled in the account)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def as_json(stacks: dict[str, Stack], shared: set[str]) -> dict:
    return {
        "stacks": [{
            "stack": s.name, "regions": sorted(s.regions), "complete": not s.missing, "missing": s.missing,
            "lease": None if s.holder is None else {"who": s.holder.who, "where": s.holder.where,
                                                   "command": s.holder.command, "since": s.holder.since,
                                                   "expires": s.holder.expires, "problem": s.holder.problem},
            "resources": {kind: sorted(arns) for kind, arns in sorted(s.resources.items())},
        } for s in sorted(stacks.values(), key=lambda s: s.name)],
        "shared": sorted(shared),
    }


def run(args, config, session, out) -> int:
    import boto3

    stacks, shared = find(session or boto3.Session(), args.region)
    if args.json:
        out.document(json.dumps(as_json(stacks, shared), indent=2))
        return 0
    if not stacks:
        out.note("no rds-edge-api stack in this account" + (f" in {', '.join(args.region)}" if args.region else ""))
        return 0
    table = Table("stack", "regions", "complete", "lease", "resources")
    for s in sorted(stacks.values(), key=lambda s: s.name):
        complete = "yes" if not s.missing else f"no (missing {', '.join(s.missing)})"
        held = "free" if s.holder is None else escape(_held(s.holder))
        kinds = ", ".join(f"{kind} x{len(arns)}" for kind, arns in sorted(s.resources.items()))
        table.add_row(escape(s.name), ", ".join(sorted(s.regions)), complete, held, kinds)
    out.console.print(table)
    if shared:
        out.note(f"shared by the stacks (kept while any stack is left): {', '.join(sorted(shared))}")
    return 0


def _held(holder: Holder) -> str:
    """The holder as data (its fields escaped: ``lease.shown``); a bad item, with how to clear it."""
    if holder.problem:
        return f"BAD ITEM: {holder.describe(time.time())}; clear it with: rds-edge-api unlock --stack {holder.key}"
    return f"held by {shown(holder.who)} on {shown(holder.where)} ({shown(holder.command)})"
