"""cost: what the stack would cost a month at the traffic ``[cost]`` states, from AWS's price list.

Needs no AWS permission beyond ``pricing:GetProducts`` (and, only with
``[database] proxy``, ``rds:DescribeDBInstances`` for the instance class,
unless ``--instance-class`` names it). ``deploy --plan`` ends with the same
table. Prices: provision/cost/prices.py; lines: estimate.py; the table: report.py.
"""
from __future__ import annotations

import argparse
import re

from ..context import make_context
from ..cost import report

HELP = ("Estimate what the stack costs a month at the traffic [cost] states, from AWS's price list "
        "(needs pricing:GetProducts, and with [database] proxy rds:DescribeDBInstances).")
LOCAL = False  # the emulator has no price list: deploy --plan --local shows the project's table
INSTANCE_CLASS = re.compile(r"^db\.[a-z0-9-]+\.[a-z0-9]+$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instance-class", metavar="CLASS",
                        help="with [database] proxy: the instance's class (db.t4g.micro), instead of asking RDS")


def usage_error(args) -> str | None:
    if args.instance_class and not INSTANCE_CLASS.match(args.instance_class):
        return f"--instance-class {args.instance_class!r} is not a DB instance class such as db.t4g.micro"
    return None


def run(args, config, session, out) -> int:
    report.show(make_context(config, session=session, planning=True, out=out), instance_class=args.instance_class)
    return 0


