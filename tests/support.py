"""Helpers shared by the tests: config files, contexts, command and step runs, AWS errors, resource counting."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Callable, Iterator

from botocore.exceptions import ClientError
from rich.console import Console

from provision.clients import is_changing
from provision.context import Context, make_context
from provision.output import Output

EXAMPLE = "stack.example.toml"  # the README's example config, deployed by --local and the served path
SERVE_AUTHORIZATION = "Bearer serve-test-NEVER-SHOWN"  # the served path's Authorization value
ALLOWED, BLOCKED = "203.0.113.10", "198.51.100.77"  # a caller inside the example's allowed_cidrs, one outside
SECRETS = {
    "TEST_DB_PASSWORD": "db-pass-NEVER-SHOWN-7f3a",
    "TEST_AUTHORIZATION": "Bearer auth-NEVER-SHOWN-91c2",
    "TEST_SHORT_VALUE": "too-short",
}

BASE_CONFIG = {
    "stack": {"name": "demo", "region": "eu-west-1"},
    "database": {"instance_id": "orders-db", "name": "shop", "user": "api_reader",
                 "password_env": "TEST_DB_PASSWORD", "table": "orders", "key_column": "customer_id"},
    "access": {"allowed_cidrs": ["203.0.113.0/24", "2001:db8::/32"], "authorization_env": "TEST_AUTHORIZATION"},
    "domain": {"name": "api.example.com", "validation": "dns"},
}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(value)


def write_toml(path: Path, data: dict) -> Path:
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def merged(overrides: dict | None = None, drop: tuple[str, ...] = ()) -> dict:
    """BASE_CONFIG with overrides per section; drop names "section.key" or "section" to remove."""
    data = {s: dict(v) for s, v in BASE_CONFIG.items()}
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    for item in drop:
        section, _, key = item.partition(".")
        if key:
            data[section].pop(key, None)
        else:
            data.pop(section, None)
    return data


class Sleeps(list):
    """An injectable sleep that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def quiet_output(width: int = 250) -> Output:
    """Output into a buffer (``out.console.file.getvalue()``), never the terminal."""
    return Output(Console(file=io.StringIO(), width=width, force_terminal=False))


def quiet_context(config, planning: bool = False, session=None) -> Context:
    """A Context whose output goes to a buffer (ctx.out.console.file) and whose sleep never waits."""
    return make_context(config, session=session, planning=planning, sleep=Sleeps(), out=quiet_output(200))


def printed(ctx: Context) -> str:
    return ctx.out.console.file.getvalue()


def changing_ops(ctx: Context) -> list[str]:
    return list(ctx.clients.calls.changing_ops)


def aws_error(operation: str, code: str, message: str = "injected", status: int = 400,
              headers: dict | None = None) -> ClientError:
    """The ClientError botocore raises for an AWS error answer."""
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}}},
                       operation)


def inject(session, event: str, fail_times: int, code: str, message: str = "injected", status: int = 400):
    """Make the first ``fail_times`` calls matching a botocore event fail with ``code``; count attempts.

    ``event`` is like "before-call.lambda.CreateFunction". Returns the list of attempt numbers,
    so a test can check how many times the call was tried.
    """
    attempts = []

    def handler(**kwargs):
        attempts.append(len(attempts) + 1)
        if len(attempts) <= fail_times:
            raise aws_error(event.rsplit(".", 1)[-1], code, message, status)

    session.events.register(event, handler)
    return attempts


class _Body:
    """The raw body botocore reads an answer from."""

    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_):
        yield self.data


def response(status: int, body: str, headers: dict | None = None):
    """A raw HTTP answer from AWS, as botocore's before-send hook may return one."""
    from botocore.awsrequest import AWSResponse

    return AWSResponse("https://example.invalid", status, headers or {}, _Body(body.encode()))


def failing(client, operation: str, times: int, failure):
    """Fail the first ``times`` sends of the operation; return the list of attempts."""
    attempts = []

    def before_send(request, **_):
        attempts.append(request)
        if len(attempts) <= times:
            return failure()
        return None

    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register_first(f"before-send.{service}.{operation}", before_send)
    return attempts


class Run:
    """One ``rds-edge-api <command> --config <path> <args>`` in-process: its exit code, what it printed,
    the AWS calls made through ``session`` and those that change something (``clients.is_changing``).
    Unpacks as (code, text)."""

    def __init__(self, command: str, path, *args: str, session=None):
        import boto3

        from provision import cli

        self.out = quiet_output()
        self.session = session or boto3.Session()
        self.calls: list[str] = []
        self.session.events.register("before-call", lambda model, **_: self.calls.append(model.name))
        self.code = cli.main([command, "--config", str(path), *map(str, args)], session=self.session, out=self.out)
        self.text = self.out.console.file.getvalue()

    @property
    def changing(self) -> list[str]:
        return [name for name in self.calls if is_changing(name)]

    def __iter__(self) -> Iterator:
        return iter((self.code, self.text))


def run_once(config, *actions: Callable[[Context], object], planning: bool = False, state: dict | None = None,
             drop: tuple[str, ...] = ()) -> Context:
    """One command run of step actions: a fresh context (the state file as the last run saved it, minus
    ``drop``, plus ``state`` as earlier steps would leave it), the actions in order, the state saved as
    the runner would (not while planning)."""
    ctx = quiet_context(config, planning=planning)
    for step in drop:
        ctx.state.drop(step)
    for step, values in (state or {}).items():
        ctx.state.put(step, values)
    for action in actions:
        action(ctx)
    if not planning:
        ctx.state.save()
    return ctx


def run_steps(config, *modules, planning: bool = False, destroy: bool = False) -> Context:
    """One run of the given step modules in a fresh context (ensure in order, or destroy in reverse)."""
    ctx = quiet_context(config, planning=planning)
    for module in (reversed(modules) if destroy else modules):
        (module.destroy if destroy else module.ensure)(ctx)
    return ctx


def gather(tmp_path_factory, topic: str, name: str, value, expected: set[str]) -> dict | None:
    """Share JSON values across this run's test processes (pytest-xdist workers or one process): store
    ``value`` as ``name`` of ``topic``; to whichever test stores the last of ``expected``, return them all
    (name -> value), else None. So a check over every parametrized case runs once all of them ran."""
    import os

    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / f"gathered-{topic}"
    folder.mkdir(exist_ok=True)
    partial = folder / f".{name}.{os.getpid()}"
    partial.write_text(json.dumps(value), encoding="utf-8")
    partial.rename(folder / f"{name}.json")  # atomic: a reader never sees half a value
    found = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in folder.glob("*.json")}
    return found if expected <= set(found) else None


# What a DNS-validated deploy with alerts leaves, as kinds() shows it (test_resilience, test_lost_answers).
EXPECTED_DNS = sorted([
    "api key demo", "certificate api.example.com in us-east-1", "distribution", "dns A api.example.com.",
    "dns AAAA api.example.com.", "dns CNAME _<token>.api.example.com.", "eventbridge rule demo-certificate-alerts",
    "function demo-api", "ip set demo-ipv4", "ip set demo-ipv6", "log group /aws/lambda/demo-api",
    "log group aws-waf-logs-demo", "rest api demo", "role demo-fn", "rule on orders-db-db",
    "security group demo-lambda", "sns topic demo-certificate-alerts", "subscription email ops@example.com",
    "usage plan demo", "web acl demo",
])


def kinds(found: list[str]) -> list[str]:
    """Inventory without generated ids, to compare two deploys."""
    return sorted(re.sub(r"_[0-9a-f]{32}\.", "_<token>.", re.sub(r" [A-Z0-9]{10,}$", "", item)) for item in found)


def _tagged(tags) -> bool:
    from provision.tags import as_dict
    return as_dict(tags).get("managed-by") == "rds-edge-api"


def inventory(config) -> list[str]:
    """Everything of the stack's that exists, read with plain boto3 in every region the stack uses:
    resources tagged managed-by=rds-edge-api and stack=<name> (log groups include WAF's in us-east-1),
    our rule on the database's group, and the untaggable ones (SES rule sets and identities, SNS
    subscriptions, DNS records) by name."""
    from provision.tags import as_dict

    stack = config.stack.name

    def ours(tags) -> bool:
        return as_dict(tags).get("stack") == stack and _tagged(tags)

    found = []
    for region in config.regions:
        for finder in (_security_groups, _functions, _log_groups, _apis, _certificates, _mail_identities):
            found += finder(region, config, ours)
        if region == "us-east-1":
            for finder in (_alerts, _log_deliveries, _web_acls):
                found += finder(region, config, ours)
    for finder in (_roles, _distributions, _buckets, _dns_records):
        found += finder("us-east-1", config, ours)
    return sorted(found)


# inventory's finders: (region, config, ours) -> what of the stack's they find


def _security_groups(region, config, ours) -> list[str]:
    import boto3

    found = []
    for group in boto3.client("ec2", region_name=region).describe_security_groups()["SecurityGroups"]:
        if ours(group.get("Tags")):
            found.append(f"security group {group['GroupName']}")
        found += [f"rule on {group['GroupName']}" for permission in group.get("IpPermissions", [])
                  for pair in permission.get("UserIdGroupPairs", [])
                  if pair.get("Description", "").startswith(f"rds-edge-api {config.stack.name}:")]
    return found


def _functions(region, config, ours) -> list[str]:
    import boto3

    lambda_ = boto3.client("lambda", region_name=region)
    return [f"function {fn['FunctionName']}" for fn in lambda_.list_functions()["Functions"]
            if ours(lambda_.list_tags(Resource=fn["FunctionArn"])["Tags"])]


def _log_groups(region, config, ours) -> list[str]:
    import boto3

    logs = boto3.client("logs", region_name=region)
    return [f"log group {group['logGroupName']}" for group in logs.describe_log_groups()["logGroups"]
            if ours(logs.list_tags_for_resource(resourceArn=group["arn"].removesuffix(":*"))["tags"])]


def _apis(region, config, ours) -> list[str]:
    import boto3

    apigw = boto3.client("apigateway", region_name=region)
    logging_role = apigw.get_account().get("cloudwatchRoleArn") or ""
    return ([f"rest api {a['name']}" for a in apigw.get_rest_apis()["items"] if ours(a.get("tags"))]
            + ([f"api gateway account logging role in {region}"]  # account-wide: not tagged
               if "role/rds-edge-api-" in logging_role else [])
            + [f"api key {k['name']}" for k in apigw.get_api_keys()["items"] if ours(k.get("tags"))]
            + [f"usage plan {p['name']}" for p in apigw.get_usage_plans()["items"] if ours(p.get("tags"))])


def _certificates(region, config, ours) -> list[str]:
    import boto3

    acm = boto3.client("acm", region_name=region)
    certificates = acm.list_certificates()["CertificateSummaryList"]
    return [f"certificate {cert['DomainName']} in {region}" for cert in certificates
            if ours(acm.list_tags_for_certificate(CertificateArn=cert["CertificateArn"]).get("Tags"))]


def _alerts(region, config, ours) -> list[str]:
    import boto3

    stack = config.stack.name
    events, sns = boto3.client("events", region_name=region), boto3.client("sns", region_name=region)
    return ([f"eventbridge rule {rule['Name']}" for rule in events.list_rules()["Rules"]
             if ours(events.list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"])]
            + [f"sns topic {topic['TopicArn'].rsplit(':', 1)[1]}" for topic in sns.list_topics()["Topics"]
               if ours(sns.list_tags_for_resource(ResourceArn=topic["TopicArn"])["Tags"])]
            + [f"subscription {s['Protocol']} {s['Endpoint']}" for s in sns.list_subscriptions()["Subscriptions"]
               if s["TopicArn"].endswith(f":{stack}-certificate-alerts")])  # untaggable: by topic name


def _log_deliveries(region, config, ours) -> list[str]:
    import boto3

    logs, found = boto3.client("logs", region_name=region), []
    for kind, listing, key in (("delivery", "describe_deliveries", "deliveries"),
                               ("delivery source", "describe_delivery_sources", "deliverySources"),
                               ("delivery destination", "describe_delivery_destinations", "deliveryDestinations")):
        for item in getattr(logs, listing)()[key]:
            if ours(logs.list_tags_for_resource(resourceArn=item["arn"])["tags"]):
                found.append(f"{kind} {item.get('name') or item['id']}")
    return found


def _web_acls(region, config, ours) -> list[str]:
    import boto3

    waf, found = boto3.client("wafv2", region_name=region), []
    for kind, listing, key in (("web acl", waf.list_web_acls, "WebACLs"), ("ip set", waf.list_ip_sets, "IPSets")):
        for item in listing(Scope="CLOUDFRONT")[key]:
            if ours(waf.list_tags_for_resource(ResourceARN=item["ARN"])["TagInfoForResource"].get("TagList")):
                found.append(f"{kind} {item['Name']}")
    return found


def _mail_identities(region, config, ours) -> list[str]:
    import boto3

    ses = boto3.client("ses", region_name=region)
    return ([f"receipt rule set {r['Name']}" for r in ses.list_receipt_rule_sets().get("RuleSets", [])
             if r["Name"].startswith(config.stack.name)]
            + [f"ses identity {i} in {region}" for i in ses.list_identities()["Identities"]
               if i == config.domain.name])


def _roles(region, config, ours) -> list[str]:
    import boto3

    iam = boto3.client("iam")
    return [f"role {role['RoleName']}" for role in iam.list_roles()["Roles"]
            if ours(iam.list_role_tags(RoleName=role["RoleName"])["Tags"])]


def _distributions(region, config, ours) -> list[str]:
    import boto3

    cloudfront = boto3.client("cloudfront")
    return [f"distribution {dist['Id']}" for dist in (cloudfront.list_distributions()["DistributionList"].get("Items")
                                                      or [])
            if ours(cloudfront.list_tags_for_resource(Resource=dist["ARN"])["Tags"].get("Items"))]


def _buckets(region, config, ours) -> list[str]:
    import boto3

    s3 = boto3.client("s3")

    def tags(name):
        try:
            return s3.get_bucket_tagging(Bucket=name)["TagSet"]
        except ClientError:
            return []
    return [f"bucket {bucket['Name']}" for bucket in s3.list_buckets()["Buckets"] if ours(tags(bucket["Name"]))]


def _dns_records(region, config, ours) -> list[str]:
    import boto3

    route53 = boto3.client("route53")
    return [f"dns {record['Type']} {record['Name']}" for zone in route53.list_hosted_zones()["HostedZones"]
            for record in route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
            if record["Type"] not in ("NS", "SOA") and config.domain.name in record["Name"]]


def moto_evaluates_secure_transport(monkeypatch) -> None:
    """The mail bucket's TLS-only statement evaluated as AWS does for boto3's https calls
    (provision/local/moto_workarounds.py says why), for the rest of the test."""
    from moto.s3.models import FakeBucket

    from provision.local.moto_workarounds import get_permission_without_tls_deny

    monkeypatch.setattr(FakeBucket, "get_permission", get_permission_without_tls_deny(FakeBucket.get_permission))
