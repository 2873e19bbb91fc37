"""unlock: remove a stack's lease in the account, as ``terraform force-unlock`` removes a state lock.

For a lease no run will give back: its machine gone for good, or an item that is
not a lease (written by hand or by another tool), which never lapses. It shows
what the item says (escaped: it is data), asks for the stack's name (or
``--yes``) and deletes the item only if it is still the one shown (its token),
so a lease another run took meanwhile is kept. A run that still held it stops
before its next change (its lease is lost: ``provision/lease.py``).
"""
from __future__ import annotations

import argparse
import re
import sys
import time

from botocore.exceptions import ClientError

from .. import confirm, lease
from ..account import stacks
from ..config import STACK_NAME
from ..errors import is_code

HELP = ("Remove a stack's lease in the account when no run will give it back (shows the holder, asks first), "
        "as terraform force-unlock does.")
LOCAL = False   # the emulator starts empty: there is no lease to remove
CONFIG = False  # works from what the account holds
ACCOUNT_LEASE = re.compile(r"account:[A-Za-z0-9._:-]{1,100}")  # lease.account_held's items


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", metavar="NAME", required=True,
                        help="the stack whose lease to remove (or account:NAME, an account lease, with --region)")
    parser.add_argument("--region", metavar="R",
                        help="the region of the lease table (the stack's region; default: found from its tags)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def usage_error(args) -> str | None:
    if ACCOUNT_LEASE.fullmatch(args.stack):
        return None if args.region else "--stack account:NAME (an account lease) needs --region"
    if not STACK_NAME.fullmatch(args.stack):
        return f"--stack {args.stack!r} is not a stack name (letters, digits and '-', starting with a letter)"
    return None


def run(args, config, session, out) -> int:
    import boto3

    session = session or boto3.Session()
    region = args.region or _home(session, args.stack)
    if region is None:
        out.error(f"found no function, API or security group of stack {args.stack} in any region, so not where its "
                  "lease is: name the region with --region")
        return 1
    dynamodb = session.client("dynamodb", region_name=region)
    found = lease.read(dynamodb, args.stack)
    if found is None:
        out.note(f"stack {args.stack} holds no lease in {region}: nothing to remove")
        return 0
    now = time.time()
    state = "lapsed, " if found.lapsed(now) else ""
    out.note(f"{args.stack}'s lease in table {lease.TABLE} ({region}): {state}held by {found.describe(now)}")
    if not args.yes:
        if not sys.stdin.isatty():
            out.error("unlock asks for confirmation: run it with --yes when there is no terminal")
            return 2
        if not confirm.typed("Remove this lease? A run that still holds it stops before its next change.\n"
                             "Type the stack name to confirm: ", args.stack):
            out.error("unlock cancelled; nothing was changed")
            return 2
    try:
        dynamodb.delete_item(TableName=lease.TABLE, Key={"stack": {"S": args.stack}}, **_still(found))
    except ClientError as exc:
        if not is_code(exc, lease.TAKEN):
            raise
        out.error(f"{args.stack}'s lease changed since it was shown (another run holds it now): nothing was "
                  "removed; run unlock again to see it")
        return 1
    out.note(f"removed {args.stack}'s lease in {region}")
    return 0


def _still(found: lease.Holder) -> dict:
    """The condition that the item is still the one shown: its token, or, for an item with no token string,
    still none."""
    if found.token:
        return {"ConditionExpression": "#t = :shown", "ExpressionAttributeNames": {"#t": "token"},
                "ExpressionAttributeValues": {":shown": {"S": found.token}}}
    return {"ConditionExpression": "attribute_exists(#s) AND (attribute_not_exists(#t) OR NOT attribute_type(#t, :s))",
            "ExpressionAttributeNames": {"#s": "stack", "#t": "token"}, "ExpressionAttributeValues": {":s": {"S": "S"}}}


def _home(session, stack: str) -> str | None:
    found = stacks.homes(session, stack)
    return found[0] if found else None
