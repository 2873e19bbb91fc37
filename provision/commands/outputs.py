"""outputs: the deployed stack's URLs, ids and ARNs, read back from AWS.

How: the same read-only pass as ``deploy --plan`` (every step's ensure with the
plan guard on, so nothing can change), with the step lines kept quiet. Each
step finds its resources exactly as deploy does (state hint, tag, name) and
fills ``ctx.outputs``; no second copy of those lookups exists to drift from
them. A stack with nothing that deploy would create is deployed; anything
deploy would still create means it is not (exit 1, one line).

With ``--stack NAME`` and no config file, the outputs come from what the
account holds instead: the stack's resources as ``list`` finds them (by tag),
with the distribution's domain and alias, the stage and the path read from
CloudFront and API Gateway. Drift cannot be told without the config.
"""
from __future__ import annotations

import argparse
import io
import json
import re

from rich.console import Console

from .. import runner
from ..account import stacks
from ..config import STACK_NAME
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


FROM_CONFIG = {"Capacity"}  # labels the config alone fills: they say nothing of what is deployed


def writes_document(args) -> bool:
    """--json is for scripts: the JSON alone goes to stdout, notes to stderr."""
    return bool(args.json)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (url, distribution_domain, invoke_url, api_key_id, web_acl_arn, "
                             "certificate_arn, function_arn, role_arn, lambda_security_group, ...) instead of a table")
    parser.add_argument("--stack", metavar="NAME",
                        help="without a config file: read the stack's outputs from the account by its name")
    parser.add_argument("--region", metavar="R", action="append",
                        help="with --stack: look only in this region and us-east-1 (default: every enabled region)")


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


def from_account(session, stack: stacks.Stack) -> dict[str, str]:
    """The outputs (by label, as the steps set them) of a stack found by its tags."""
    first = {kind: sorted(arns)[0] for kind, arns in stack.resources.items()}
    outputs: dict[str, str] = {}
    if "cloudfront:distribution" in first:
        dist_id = first["cloudfront:distribution"].rsplit("/", 1)[1]
        dist = session.client("cloudfront").get_distribution(Id=dist_id)["Distribution"]
        aliases = dist["DistributionConfig"].get("Aliases", {}).get("Items") or []
        outputs["URL"] = f"https://{aliases[0]}/" if aliases else ""
        outputs["Distribution domain"] = dist["DomainName"]
    if "apigateway:restapis" in first:
        arn = first["apigateway:restapis"]
        region, api_id = arn.split(":")[3], arn.rsplit("/", 1)[1]
        apigw = session.client("apigateway", region_name=region)
        stages = [s["stageName"] for s in apigw.get_stages(restApiId=api_id)["item"]]
        paths = [r["path"] for page in apigw.get_paginator("get_resources").paginate(restApiId=api_id)
                 for r in page["items"] if r["path"] != "/"]
        path = paths[0].lstrip("/") if paths else ""
        if outputs.get("URL"):
            outputs["URL"] += path
        if stages:
            outputs["Invoke URL (API key required)"] = (f"https://{api_id}.execute-api.{region}.amazonaws.com/"
                                                        f"{stages[0]}/{path}")
    if "apigateway:apikeys" in stack.resources:
        outputs["API key id"] = ", ".join(sorted(a.rsplit("/", 1)[1] for a in stack.resources["apigateway:apikeys"]))
    for label, kind in (("Web ACL", "wafv2:webacl"), ("Certificate", "acm:certificate"),
                        ("Function", "lambda:function"), ("IAM role", "iam:role")):
        if kind in first:
            outputs[label] = first[kind]
    if "ec2:security-group" in first:
        outputs["Lambda security group"] = first["ec2:security-group"].rsplit("/", 1)[1]
    return {label: value for label, value in outputs.items() if value}


def run_from_account(args, session, out) -> int:
    import boto3

    session = session or boto3.Session()
    regions = sorted({*args.region, stacks.DEFAULT_REGION}) if args.region else None
    held, _ = stacks.find(session, regions)
    found = held.get(args.stack)
    if found is None:
        out.error(f"no stack {args.stack} in this account" + (f" ({', '.join(regions)})" if regions else "")
                  + "; see: rds-edge-api list")
        return 1
    outputs = from_account(session, found)
    if found.missing:
        out.note(f"stack {args.stack} is not complete: it has no {', '.join(found.missing)}")
    if args.json:
        body: dict[str, object] = {json_key(label): value for label, value in outputs.items()}
        body["stack"], body["complete"] = args.stack, not found.missing
        out.document(json.dumps(body, indent=2))
    else:
        out.outputs(outputs)
    return 0


def usage_error(args) -> str | None:
    """--region goes with --stack, which reads the account: found before any config is read."""
    if args.region and not args.stack:
        return "--region goes with --stack NAME (the stack read from the account)"
    if args.stack and getattr(args, "local", False):
        return "--stack reads a stack from the account: not with --local"
    if args.stack and not STACK_NAME.fullmatch(args.stack):
        return f"--stack {args.stack!r} is not a stack name (letters, digits and '-', starting with a letter)"
    return None


def run(args, config, session, out) -> int:
    if args.stack:
        return run_from_account(args, session, out)
    if getattr(args, "local", False):  # the emulator starts empty: deploy first, so there is a stack to read
        out.note("deploying into the empty emulator first, so there is a stack to read back")
        runner.deploy(make_context(config, session=session, out=_Collecting()), STEPS)
    outputs, planned, account = read(config, session)
    creates = [what for kind, what in planned if kind == "create"]
    if creates:
        known = [value for label, value in outputs.items() if UNKNOWN not in str(value) and label not in FROM_CONFIG]
        whole = "not fully deployed" if known else "not deployed"
        out.error(f"stack {config.stack.name} is {whole} in account {account}: deploy would create "
                  f"{len(creates)} resource(s), first {creates[0]}; run deploy")
        return 1
    drift = [what for _, what in planned]
    if args.json:
        body: dict[str, object] = {json_key(label): value for label, value in outputs.items()}
        body["stack"], body["account"], body["drift"] = config.stack.name, account, drift
        out.document(json.dumps(body, indent=2))
        return 0
    out.outputs(outputs)
    if drift:
        out.note(f"deploy would change {len(drift)} thing(s) that drifted from the config "
                 f"(see: rds-edge-api deploy --plan): {'; '.join(drift)}")
    return 0
