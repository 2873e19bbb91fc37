"""outputs: the deployed stack's URLs, ids and ARNs, read back from AWS.

How: the same read-only pass as ``deploy --plan`` (every step's ensure with the
plan guard on, so nothing can change), with the step lines kept quiet. Each
step finds its resources exactly as deploy does (state hint, tag, name) and
fills ``ctx.outputs``; no second copy of those lookups exists to drift from
them. A stack with nothing that deploy would create is deployed; anything
deploy would still create means it is not (exit 1, one line).
"""
from __future__ import annotations

import argparse
import io
import json
import re

from rich.console import Console

from .. import runner
from ..context import UNKNOWN, make_context
from ..output import Output
from ..steps import STEPS

HELP = "Show the deployed stack's URLs, ids and ARNs, read back from AWS (never a secret)."

# ctx.outputs labels (set by the steps) -> stable JSON keys for scripts; other labels get a snake_case key.
JSON_KEYS = {
    "URL": "url",
    "Distribution domain": "distribution_domain",
    "Invoke URL (API key required)": "invoke_url",
    "API key id": "api_key_id",
    "Web ACL": "web_acl_arn",
    "Certificate": "certificate_arn",
    "Function": "function_arn",
    "IAM role": "role_arn",
    "Lambda security group": "lambda_security_group",
    "Try it": "try_it",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (url, distribution_domain, invoke_url, api_key_id, web_acl_arn, "
                             "certificate_arn, function_arn, role_arn, lambda_security_group, ...) instead of a table")


class _Collecting(Output):
    """Output that keeps the step lines to itself and remembers what deploy would change."""

    def __init__(self):
        super().__init__(Console(file=io.StringIO(), width=200))
        self.planned: list[tuple[str, str]] = []

    def change(self, kind: str, description: str, planning: bool = False) -> None:
        self.planned.append((kind, description))


def json_key(label: str) -> str:
    return JSON_KEYS.get(label) or re.sub(r"\W+", "_", label.split(" (")[0].strip().lower()).strip("_")


def read(config, session) -> tuple[dict[str, str | None], list[tuple[str, str]], str]:
    """(outputs by label, what deploy would still change, account id), changing nothing."""
    quiet = _Collecting()
    ctx = make_context(config, session=session, planning=True, out=quiet)
    runner.deploy(ctx, STEPS)
    return ctx.outputs, quiet.planned, ctx.account_id


def run(args, config, session, out) -> int:
    if getattr(args, "local", False):  # the emulator starts empty: deploy first, so there is a stack to read
        out.note("deploying into the empty emulator first, so there is a stack to read back")
        runner.deploy(make_context(config, session=session, out=_Collecting()), STEPS)
    outputs, planned, account = read(config, session)
    creates = [what for kind, what in planned if kind == "create"]
    if creates:
        known = [value for value in outputs.values() if UNKNOWN not in str(value)]
        whole = "not fully deployed" if known else "not deployed"
        out.error(f"stack {config.stack.name} is {whole} in account {account}: deploy would create "
                  f"{len(creates)} resource(s), first {creates[0]}; run deploy")
        return 1
    drift = [what for _, what in planned]
    if args.json:
        body: dict[str, object] = {json_key(label): value for label, value in outputs.items()}
        body["stack"], body["account"], body["drift"] = config.stack.name, account, drift
        out.console.print(json.dumps(body, indent=2), markup=False, highlight=False, soft_wrap=True)
        return 0
    out.outputs(outputs)
    if drift:
        out.note(f"deploy would change {len(drift)} thing(s) that drifted from the config "
                 f"(see: rds-edge-api deploy --plan): {'; '.join(drift)}")
    return 0
