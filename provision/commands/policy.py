"""policy: the least-privilege IAM policy an operator needs to run every command on this config.

Built from the catalog of calls the commands were recorded making
(``provision/aws_calls.json``, written by ``scripts/record-aws-calls``),
narrowed to this stack's names, regions and account: see provision/policy.py.
``verify`` makes no AWS call of its own beyond what ``outputs`` reads.
"""
from __future__ import annotations

import argparse
import json

from ..policy import document

HELP = ("Print the least-privilege IAM policy (JSON) an operator needs to run deploy, teardown, outputs, verify, "
        "logs and rotate on this config.")
LOCAL = False  # the policy is for a real account; --local would only name the emulator's


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--account", metavar="ID",
                        help="the 12-digit AWS account the policy is for (default: the caller's, from STS, "
                             "which needs no permission)")


def usage_error(args) -> str | None:
    if args.account and not (args.account.isdigit() and len(args.account) == 12):
        return f"--account {args.account!r} is not a 12-digit AWS account id"
    return None


def run(args, config, session, out) -> int:
    account = args.account
    if not account:
        from ..context import make_context
        account = make_context(config, session=session, out=out).account_id
    out.console.print(json.dumps(document(config, account), indent=2), markup=False, highlight=False,
                      soft_wrap=True)
    return 0
