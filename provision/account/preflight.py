"""Preflight: read-only checks of the account's facts, before deploy changes anything.

Each check finds what would otherwise fail halfway, after some resources exist:
- the database: engine, and IAM database authentication for auth = "iam"
  (``database.lookup`` and ``database.preflight``);
- Lambda's concurrency: the reservation ([function] max_concurrency) must leave
  the account its unreserved minimum, or PutFunctionConcurrency fails after the
  function exists, on every run;
- the function's subnets: those of the database in zones Lambda runs in, at
  most 16 (``function.subnets`` chooses; the table says which);
- CloudWatch Logs resource policies in us-east-1: WAF adds the stack's log
  group to ``AWSWAF-LOGS``, which needs a free place (at most 10 policies per
  region) or room in that policy (at most 5,120 characters); CloudFront's
  logging (v2) adds its group to the log-delivery policy
  ``AWSLogDeliveryWrite20150319`` under the same two limits;
- SES receiving: someone else's active receipt rule set (``mail``);
- with [database] proxy, the instance's engine and version RDS Proxy supports
  (``auth = "password"`` is refused earlier, by the config check);
- the domain's name in the hosted zone: an A, AAAA or CNAME record there that
  is not the stack's would be overwritten (or refuse the alias).
``deploy --plan`` prints them as a table; a failed check stops deploy with
exit 1 before the first change, the table naming the fix.
"""
from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import Callable

from botocore.exceptions import ClientError
from rich.markup import escape
from rich.table import Table

from ..aws import database, dns
from ..aws.arns import partition
from ..aws_errors import HTTP_404
from ..errors import DeployError, describe, error_code
from ..steps import cloudfront_logging, domain_record, function, mail, waf_logging
from ..together import together

UNRESERVED_MINIMUM = 100  # "You can reserve up to the Unreserved account concurrency ... minus 100" (Lambda guide)
CONCURRENCY_QUOTA = "L-B99A9384"  # Service Quotas: AWS Lambda, Concurrent executions
WAF_LOG_POLICY = "AWSWAF-LOGS"
MAX_RESOURCE_POLICIES = 10  # per account and region (CloudWatch Logs API reference, PutResourcePolicy)
MAX_POLICY_CHARACTERS = 5120  # per resource policy (CloudWatch Logs user guide, logging from AWS services)
# The policy CloudWatch Logs creates, or appends the log group to, for a v2 log delivery to a group (CloudWatch Logs
# user guide, "Logs sent to CloudWatch Logs", log group resource policy)
DELIVERY_LOG_POLICY = "AWSLogDeliveryWrite20150319"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: could not be checked here, and why is said
    detail: str


def run(ctx) -> list[Check]:
    """Every check (their reads at once); the table under --plan or when one fails; DeployError (exit 1)
    naming what failed."""
    return report(ctx, checks(ctx))


def checks(ctx) -> list[Check]:
    """Every check, each in a thread of its own: their reads need nothing from each other, so the
    preflight costs the longest check's round trips, not the sum of all."""
    proxy = (_reading("RDS Proxy", _proxy),) if ctx.config.database.proxy else ()  # auth = "password": config's
    return together(ctx, *CHECKS, *proxy)


def report(ctx, found: list[Check]) -> list[Check]:
    """The table under --plan or when a check failed; DeployError (exit 1) naming what failed."""
    failed = [c for c in found if c.ok is False]
    if ctx.planning or failed:
        show(found, ctx.out)
    for c in failed:  # unwrapped, so that a command in it copies in one piece
        ctx.out.notice(f"preflight: {c.name}", c.detail)
    else:
        ctx.out.note(f"preflight: {sum(c.ok is True for c in found)} of {len(found)} checks passed"
                     + (f", {sum(c.ok is None for c in found)} not checked" if any(c.ok is None for c in found)
                        else "") + " (deploy --plan shows them)")
    if failed:
        raise DeployError(f"preflight: {', '.join(c.name for c in failed)} would fail; nothing was changed "
                          "(what to fix is said above)")
    return found


def show(checks: list[Check], out) -> None:
    table = Table(title="preflight (read-only)", title_justify="left")
    for column in ("", "check", "finding"):
        table.add_column(column, overflow="fold")
    marks = {True: "[green]ok[/]", False: "[red]FAIL[/]", None: "[yellow]skip[/]"}
    for c in checks:
        table.add_row(marks[c.ok], escape(c.name), "what to fix: below" if c.ok is False else escape(c.detail))
    out.console.print(table)


def _reading(name: str, check: Callable) -> Callable:
    """A check whose read is refused (AccessDenied, say) fails with the error rather than stopping the table."""
    def guarded(ctx) -> Check:
        try:
            return check(ctx)
        except DeployError as exc:
            return Check(name, False, str(exc))
        except ClientError as exc:
            return Check(name, False, f"{describe(exc)}; allow that read (rds-edge-api policy) and run again")
    return guarded


def _database(ctx) -> Check:
    db = database.lookup(ctx)
    database.preflight(ctx)
    auth = ctx.config.database.auth
    return Check("database", True, f"RDS instance {ctx.config.database.instance_id}, MySQL at {db.endpoint}; "
                 f"auth = {auth}" + (" with IAM database authentication enabled" if auth == "iam" else ""))


# The MySQL-family engines and major versions RDS Proxy supports (RDS user guide, "Supported Regions and DB engines
# for Amazon RDS Proxy": RDS for MySQL 5.7, 8.0, 8.4; RDS for MariaDB 10.5 to 11.8; Aurora MySQL, every version).
PROXY_VERSIONS = {"mysql": ("5.7", "8.0", "8.4"), "mariadb": ("10.5", "10.6", "10.11", "11.4", "11.8")}


def _proxy(ctx) -> Check:
    """With [database] proxy: whether RDS Proxy supports the instance's engine and version."""
    name = "RDS Proxy"
    db = database.lookup(ctx)
    if db.engine.startswith("aurora-mysql") or db.cluster_id:
        return Check(name, True, f"{db.engine} {db.engine_version}: RDS Proxy supports every Aurora MySQL version")
    versions = PROXY_VERSIONS.get(db.engine)
    major = ".".join(db.engine_version.split(".")[:2])
    if versions is None or major not in versions:
        supported = "; ".join(f"{engine} {', '.join(v)}" for engine, v in PROXY_VERSIONS.items())
        return Check(name, False, f"database.proxy: RDS Proxy does not support {db.engine} {db.engine_version} "
                                  f"(it supports {supported}, and Aurora MySQL); upgrade the instance or set "
                                  "proxy = false")
    return Check(name, True, f"{db.engine} {db.engine_version}: supported by RDS Proxy (IAM auth end to end)")


def _concurrency(ctx) -> Check:
    name, wanted = "Lambda concurrency", ctx.config.function.max_concurrency
    if wanted == 0:
        return Check(name, True, "max_concurrency = 0: no reservation (connections are bounded only by the "
                                 "account's unreserved concurrency)")
    try:
        settings, ours = together(ctx, lambda c: c.client("lambda").get_account_settings(),
                                  lambda c: function.reserved_concurrency(c) or 0)  # counted in the limit only
    except ClientError as exc:
        if error_code(exc) != HTTP_404:  # moto answers 404 "Not yet implemented"; AWS always implements it
            raise
        return Check(name, None, "this endpoint does not implement GetAccountSettings (an emulator)")
    limits = settings["AccountLimit"]
    limit, unreserved = limits["ConcurrentExecutions"], limits["UnreservedConcurrentExecutions"]
    minimum = min(UNRESERVED_MINIMUM, limit)  # a limit of 10 (new accounts) keeps all 10 unreserved
    room = unreserved + ours - minimum
    if wanted <= room:
        return Check(name, True, f"max_concurrency = {wanted} reserved of {unreserved + ours} unreserved "
                                 f"(account limit {limit}; {minimum} stay unreserved)")
    choices = [f"function.max_concurrency = {room} (the most that fits now)"] if room >= 1 else []
    choices += ["function.max_concurrency = 0 (no reservation; the function may then hold up to the account's "
                "unreserved concurrency in database connections)",
                f"a higher Lambda 'Concurrent executions' quota (Service Quotas, {CONCURRENCY_QUOTA}), then run again"]
    return Check(name, False, f"max_concurrency = {wanted} would leave fewer than {minimum} of the account's "
                              f"{limit} concurrent executions unreserved ({unreserved + ours} unreserved now), and "
                              f"Lambda refuses that. Choose one: " + "; or ".join(choices))


def _subnets(ctx) -> Check:
    chosen = function.subnets(ctx)
    if not chosen.used:
        return Check("function subnets", False, f"{chosen.text()}; add to the database's DB subnet group a subnet "
                                                "in a zone Lambda runs in, or use a database with one")
    return Check("function subnets", True, chosen.text())


def _resource_policies(ctx) -> list[dict]:
    """The account's CloudWatch Logs resource policies in us-east-1, every page."""
    logs, policies, token = ctx.edge("logs"), [], None
    while True:
        page = logs.describe_resource_policies(**({"nextToken": token} if token else {}))
        policies += page.get("resourcePolicies", [])
        token = page.get("nextToken")
        if not token:
            return policies


def _waf_log_policies(ctx) -> Check:
    name = "CloudWatch Logs resource policies (us-east-1)"
    policies = _resource_policies(ctx)
    group = waf_logging.log_group_name(ctx.stack)
    entry = f"arn:{partition('us-east-1')}:logs:us-east-1:{ctx.account_id}:log-group:{group}:log-stream:*"
    current = next((p for p in policies if p["policyName"] == WAF_LOG_POLICY), None)
    if current is None:
        if len(policies) >= MAX_RESOURCE_POLICIES:
            others = ", ".join(p["policyName"] for p in policies)
            return Check(name, False, f"{len(policies)} of {MAX_RESOURCE_POLICIES} already ({others}) and WAF must "
                                      f"add {WAF_LOG_POLICY} for the log of web ACL {ctx.stack}: delete one no "
                                      "longer used (aws logs delete-resource-policy --region us-east-1 "
                                      "--policy-name NAME), then run again")
        return Check(name, True, f"{len(policies)} of {MAX_RESOURCE_POLICIES}; WAF adds {WAF_LOG_POLICY} for {group}")
    return _room(name, current, entry, group, "WAF",
                 "replace its log-group entries with one for arn:...:log-group:aws-waf-logs-*:* (aws logs "
                 "put-resource-policy --region us-east-1), or remove those of deleted ACLs")


def _delivery_log_policy(ctx) -> Check:
    """CloudFront's logging (v2): the first delivery to the group adds it to ``AWSLogDeliveryWrite20150319``,
    made if missing (a place of the 10, counting the one WAF may need too) or appended to (5,120 characters);
    CreateDelivery fails after the distribution exists otherwise."""
    name = "CloudWatch Logs log-delivery policy (us-east-1)"
    if not ctx.config.logs.cloudfront:
        return Check(name, True, "not needed (logs.cloudfront = false)")
    policies = _resource_policies(ctx)
    group = cloudfront_logging.log_group_name(ctx.stack)
    entry = f"arn:{partition('us-east-1')}:logs:us-east-1:{ctx.account_id}:log-group:{group}:log-stream:*"
    names = {p["policyName"] for p in policies}
    current = next((p for p in policies if p["policyName"] == DELIVERY_LOG_POLICY), None)
    if current is None:
        wanted = 1 + (WAF_LOG_POLICY not in names)
        if len(policies) + wanted > MAX_RESOURCE_POLICIES:
            return Check(name, False, f"{len(policies)} of {MAX_RESOURCE_POLICIES} resource policies already "
                                      f"({', '.join(sorted(names))}) and CloudFront's log delivery must add "
                                      f"{DELIVERY_LOG_POLICY} for {group}"
                                      + (f" (and WAF {WAF_LOG_POLICY})" if wanted == 2 else "")
                                      + ": delete one no longer used (aws logs delete-resource-policy --region "
                                        "us-east-1 --policy-name NAME), or set logs.cloudfront = false, then run again")
        return Check(name, True, f"{len(policies)} of {MAX_RESOURCE_POLICIES}; CloudWatch Logs adds "
                                 f"{DELIVERY_LOG_POLICY} for {group}")
    return _room(name, current, entry, group, "the log delivery",
                 "remove the entries of log groups that no longer exist (aws logs put-resource-policy --region "
                 f"us-east-1 --policy-name {DELIVERY_LOG_POLICY}), or set logs.cloudfront = false, then run again")


def _room(name: str, policy: dict, entry: str, group: str, writer: str, fix: str) -> Check:
    """Whether an existing resource policy lets ``writer`` write to the group, or has room for its entry
    (5,120 characters at most: CloudWatch Logs user guide, 'Enabling logging from AWS services')."""
    policy_name, document = policy["policyName"], policy["policyDocument"]
    if _covers(document, entry):
        return Check(name, True, f"{policy_name} already lets {writer} write to {group}")
    after = len(document) + len(json.dumps(entry)) + 1
    if after > MAX_POLICY_CHARACTERS:
        return Check(name, False, f"{policy_name} holds {len(document):,} characters and would pass "
                                  f"{MAX_POLICY_CHARACTERS:,} with {group} added (about {after:,}): {fix}")
    return Check(name, True, f"{policy_name}: {len(document):,} characters, about {after:,} of "
                             f"{MAX_POLICY_CHARACTERS:,} once {writer} adds {group}")


def _covers(document: str, entry: str) -> bool:
    try:
        statements = json.loads(document).get("Statement", [])
    except ValueError:
        return False
    patterns = [r for s in (statements if isinstance(statements, list) else [statements])
                for r in ([s.get("Resource")] if isinstance(s.get("Resource"), str) else s.get("Resource") or [])]
    return any(fnmatch.fnmatchcase(entry, p) for p in patterns)


def _mail(ctx) -> Check:
    name = "SES receipt rule set"
    if not ctx.config.domain.receives_mail:
        return Check(name, True, "not needed (no mail to receive for this validation)")
    active = mail.check_active_rule_set(ctx)
    return Check(name, True, f"{ctx.config.domain.mail_region}: " + (
        f"the active rule set ({active}) takes the stack's rule" if active
        else f"no active rule set; the shared {mail.SHARED_RULE_SET} becomes it"))


def _domain_record(ctx) -> Check:
    name, domain, zone = "domain record", ctx.config.domain.name, ctx.config.domain.hosted_zone_id
    if zone is None:
        return Check(name, None, f"no hosted zone: the record for {domain} is yours to create (printed at the end)")
    types = ("A", "AAAA", "CNAME")
    records = together(ctx, *(lambda c, rtype=rtype: dns.current(c, zone, domain, rtype) for rtype in types))
    found = {rtype: record for rtype, record in zip(types, records) if record is not None}
    if not found:
        return Check(name, True, f"no A, AAAA or CNAME record at {domain} yet")
    foreign = _foreign(found, domain_record.stack_target(ctx))
    if foreign:  # the state may name a distribution another machine has since replaced: ask CloudFront
        foreign = _foreign(found, domain_record.stack_target(ctx, fresh=True))
    if foreign:
        return Check(name, False, f"{domain} already has {', '.join(foreign)}, not this stack's distribution: deploy "
                                  "would replace it (an AAAA it does not write would still send IPv6 callers "
                                  "elsewhere). Remove it if it is unused, or choose another domain.name")
    return Check(name, True, f"{', '.join(found)} at {domain} alias the stack's distribution")


def _foreign(found: dict[str, dict], target: str | None) -> list[str]:
    return [f"{rtype} {_value(record)}" for rtype, record in found.items()
            if rtype == "CNAME" or not _aliases(record, target)]


def _aliases(record: dict, target: str | None) -> bool:
    alias = (record.get("AliasTarget") or {}).get("DNSName", "").rstrip(".").lower()
    return target is not None and alias == target.rstrip(".").lower()


def _value(record: dict) -> str:
    if record.get("AliasTarget"):
        return f"alias {record['AliasTarget']['DNSName'].rstrip('.')}"
    return " ".join(r["Value"] for r in record.get("ResourceRecords", []))


CHECKS: tuple[Callable, ...] = (
    _reading("database", _database),
    _reading("Lambda concurrency", _concurrency),
    _reading("function subnets", _subnets),
    _reading("CloudWatch Logs resource policies (us-east-1)", _waf_log_policies),
    _reading("CloudWatch Logs log-delivery policy (us-east-1)", _delivery_log_policy),
    _reading("SES receipt rule set", _mail),
    _reading("domain record", _domain_record),
)
