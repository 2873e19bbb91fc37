"""policy: the least-privilege IAM policy an operator needs to run every command on this config.

Built from the catalog of calls the commands were recorded making
(``provision/iam/aws_calls.json``, written by ``scripts/record-aws-calls``),
narrowed to this stack's names, regions and account: see provision/iam/policy.py.
``verify`` makes no AWS call of its own beyond what ``outputs`` reads.

``--check`` asks IAM instead whether the caller holds that policy
(provision/iam/caller_check.py, which deploy also runs first with
``[stack] check_permissions = true``): it prints what is denied and why and
exits 1, or 0 when all is allowed.
"""
from __future__ import annotations

import argparse
import json
import re

from ..context import make_context
from ..iam.caller_check import check_caller, stack_network
from ..iam.policy import Network, document

HELP = ("Print the least-privilege IAM policy (JSON) an operator needs to run deploy, teardown, outputs, verify, "
        "logs, rotate, list, unlock and cost on this config; --check: whether the caller holds it.")
LOCAL = False  # the policy is for a real account; --local would only name the emulator's
ACCOUNT = re.compile(r"^\d{12}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--account", metavar="ID",
                        help="the 12-digit AWS account the policy is for (default: the caller's, from STS, "
                             "which needs no permission)")
    parser.add_argument("--vpc-id", metavar="ID", help="the database's VPC (default: looked up in RDS)")
    parser.add_argument("--database-group", metavar="SG_ID",
                        help="the database's security group, which gets the inbound rule (default: looked up in RDS)")
    parser.add_argument("--check", action="store_true",
                        help="simulate the caller's permissions (iam:SimulatePrincipalPolicy) against the policy and "
                             "print what is denied and why: exit 0 when all is allowed, 1 otherwise")


def writes_document(args) -> bool:
    """The policy is redirected into a file (docs/operating.md): it alone goes to stdout."""
    return not args.check


def usage_error(args) -> str | None:
    if args.account and not ACCOUNT.match(args.account):
        return f"--account {args.account!r} is not a 12-digit AWS account id"
    return None


def run(args, config, session, out) -> int:
    if args.check:
        return 0 if check_caller(make_context(config, session=session, out=out)) else 1
    account, network = args.account, None
    if args.vpc_id and args.database_group:
        network = Network(args.vpc_id, args.database_group)
    if not account or network is None:
        ctx = make_context(config, session=session, out=out)
        account, network = account or ctx.account_id, network or stack_network(ctx)
    out.document(json.dumps(document(config, account, network), indent=2))
    return 0
