"""policy: derived from recorded calls, narrowed to the stack, enough to deploy and tear down, lint-clean."""
import fnmatch
import json

import boto3
import moto.settings
import pytest
from moto.core.authorization import ActionAuthenticatorMixin
from parliament import analyze_policy_string, enhance_finding

from maintainer import recording
from provision import config as config_module
from provision.iam import policy
from provision.iam.caller_check import stack_network
from tests.aws_rules import function_tags_need_list_tags
from tests.support import Run, gather, inventory, quiet_context

ACCOUNT = "123456789012"  # moto's
NETWORK = policy.Network("vpc-0123456789abcdef0", "sg-0123456789abcdef0")
ZONE = "Z0123456789ABC"
VARIANTS = {policy.variant(validation, ZONE if zone else None): {"validation": validation,
                                                                  **({"hosted_zone_id": ZONE} if zone else {})}
            for validation, zone in policy.VARIANTS}  # every recorded variant, from the config's choices


def statements(doc):
    for statement in doc["Statement"]:
        resources = statement["Resource"]
        yield statement["Action"], resources if isinstance(resources, list) else [resources]


def allows(doc, action, arn) -> bool:
    """IAM's matching: the action listed, and a resource pattern (* and ? wildcards) matching the ARN."""
    return any(action in actions and any(fnmatch.fnmatchcase(arn, pattern) for pattern in resources)
               for actions, resources in statements(doc))


@pytest.fixture
def config_for(write_config):
    def load(name):
        return config_module.load(write_config({"domain": VARIANTS[name]}, name=f"{name.replace('+', '-')}.toml"))
    return load


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_no_action_is_a_wildcard_and_resources_are_narrowed_where_aws_allows(config_for, name):
    doc = policy.document(config_for(name), ACCOUNT, NETWORK)
    assert doc["Statement"]
    for actions, resources in statements(doc):
        for action in actions:
            service, _, verb = action.partition(":")
            assert service and verb and "*" not in action, action
            if resources == ["*"]:
                assert policy.STAR.match(action), f"{action} gets '*' but supports resource-level permissions"
            else:
                assert all(f":{ACCOUNT}:" in r or r.startswith(("arn:aws:s3:::", "arn:aws:route53:::",
                                                                  "arn:aws:apigateway:")) for r in resources)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_policy_passes_parliament_with_nothing_above_low(config_for, name):
    findings = analyze_policy_string(json.dumps(policy.document(config_for(name), ACCOUNT, NETWORK))).findings
    serious = [(f.issue, f.detail) for f in map(enhance_finding, findings) if f.severity not in ("LOW", "INFO")]
    assert serious == []


def test_only_the_variant_s_calls_are_granted(config_for):
    dns = policy.document(config_for("dns"), ACCOUNT, NETWORK)
    email = policy.document(config_for("email+zone"), ACCOUNT, NETWORK)
    flat = lambda doc: {a for actions, _ in statements(doc) for a in actions}  # noqa: E731
    assert "ses:CreateReceiptRuleSet" not in flat(dns) and "route53:ChangeResourceRecordSets" not in flat(dns)
    assert {"ses:CreateReceiptRuleSet", "route53:ChangeResourceRecordSets", "s3:GetObject"} <= flat(email)
    assert "iam:PassRole" in flat(dns) and "logs:FilterLogEvents" in flat(dns)


def test_command_prints_the_policy_as_json(load_seeded, write_config):
    cfg = load_seeded({"domain": VARIANTS["dns"]})
    path = write_config({"domain": VARIANTS["dns"]})
    code, text = Run("policy", path)
    assert code == 0
    doc = json.loads(text)
    assert doc["Version"] == "2012-10-17"
    [db] = boto3.client("rds", region_name=cfg.stack.region).describe_db_instances()["DBInstances"]
    group = db["VpcSecurityGroups"][0]["VpcSecurityGroupId"]  # looked up: the inbound rule names it
    assert allows(doc, "ec2:AuthorizeSecurityGroupIngress", f"arn:aws:ec2:eu-west-1:{ACCOUNT}:security-group/{group}")
    code, text = Run("policy", path, "--account", "12345")
    assert code == 2 and "12-digit" in text


def test_command_builds_the_policy_without_aws_when_told_everything(write_config, aws):
    path = write_config({"domain": VARIANTS["dns"]})
    run = Run("policy", path, "--account", ACCOUNT, "--vpc-id", "vpc-1", "--database-group", "sg-1")
    assert run.code == 0 and run.calls == [], (run.text, run.calls)
    database_group = f"arn:aws:ec2:eu-west-1:{ACCOUNT}:security-group/sg-1"
    assert allows(json.loads(run.text), "ec2:RevokeSecurityGroupIngress", database_group)


def _inventory_listers() -> set[tuple]:
    """(file, function) of the steps' inventory listers and drifts (provision/registry.py): the tests' read-back
    of what a stack made and the recorder's changes behind its back, which no command calls, so not the
    operator's calls."""
    import sys
    from pathlib import Path

    from provision.registry import drifts, listers
    from provision.steps import STEPS

    return {(Path(sys.modules[named.__module__].__file__).resolve(), named.__name__)
            for named in [*listers(STEPS), *drifts(STEPS)]}


# Attributes that share a client method's name but are not AWS calls: urllib's SplitResult.query
# (approval.py) is not DynamoDB's Query.
NOT_CLIENT_ATTRIBUTES = {"query"}


def _source_calls() -> dict[str, set[str]]:
    """Every boto3 client method (or paginator) the toolkit's code names -> the files naming it."""
    import ast
    import re
    from pathlib import Path

    import botocore.session
    from botocore import xform_name

    root = Path(policy.__file__).parent
    files = [f for f in root.rglob("*.py") if "local" not in f.relative_to(root).parts]
    services = {m for f in files for m in re.findall(r'\.(?:client|edge|mail)\("([a-z0-9-]+)"', f.read_text())}
    methods = {xform_name(op) for s in services for op in botocore.session.get_session().get_service_model(s)
               .operation_names}
    named: dict[str, set[str]] = {}
    for f in files:
        tree = ast.parse(f.read_text())
        skipped = {id(node) for top in tree.body if (f.resolve(), getattr(top, "name", None)) in _inventory_listers()
                   for node in ast.walk(top)}
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Attribute) and node.attr in methods and node.attr not in NOT_CLIENT_ATTRIBUTES:
                named.setdefault(node.attr, set()).add(f.name)
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get_paginator" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                named.setdefault(node.args[0].value, set()).add(f.name)
    return named


def test_every_aws_call_named_in_the_source_is_in_the_catalog():
    """Fast, and catches calls on paths the recording does not reach (drift repairs, rare errors)."""
    from botocore import xform_name

    catalogued = {xform_name(c.operation) for c in policy.load_catalog()}
    missing = {method: sorted(files) for method, files in _source_calls().items() if method not in catalogued}
    assert not missing, (f"AWS calls in the code but not in the catalog, so not in the policy: {missing}. "
                         f"Re-record ({policy.RECORD_COMMAND}); if no recorded run reaches the call, add a run or "
                         "drift that does to maintainer/recording.py (or, failing that, an UNREACHED entry)")


RECORDED_VARIANTS = {policy.variant(validation, "zone" if zone else None): (validation, zone)
                     for validation, zone in recording.VARIANTS}


@pytest.mark.iam
@pytest.mark.parametrize("name", sorted(RECORDED_VARIANTS))
def test_catalog_matches_the_calls_the_code_makes_now(name, tmp_path, tmp_path_factory):
    """Each variant recorded in its own test (workers share them); once all are, the whole catalog is compared."""
    recorded = recording.record_variant(*RECORDED_VARIANTS[name], tmp_path)
    committed = json.loads(policy.CATALOG.read_text())["calls"]
    mine = recording.catalog({name: recorded})["calls"]
    calls = {(c["service"], c["operation"]): c for c in committed if name in c["variants"]}
    missing = [c for c in mine if (c["service"], c["operation"]) not in calls
               or not set(c["commands"]) <= set(calls[c["service"], c["operation"]]["commands"])]
    stale = sorted(set(calls) - {(c["service"], c["operation"]) for c in mine})
    assert not missing and not stale, (
        f"the AWS calls the commands make in variant {name} changed (new or changed: {missing}; no longer made: "
        f"{stale}). Re-record them, then commit provision/iam/aws_calls.json: {policy.RECORD_COMMAND}")
    every = gather(tmp_path_factory, "catalog", name, {command: sorted(calls) for command, calls in recorded.items()},
                   set(RECORDED_VARIANTS))
    if every is not None:  # the last variant in: the whole catalog, commands and variants, as committed
        whole = recording.catalog({variant: {command: {tuple(call) for call in calls}
                                             for command, calls in by_command.items()}
                                   for variant, by_command in every.items()})["calls"]
        missing = [c for c in whole if c not in committed]
        stale = [c for c in committed if c not in whole]
        assert not missing and not stale, (
            f"the AWS calls the commands make changed (new or changed: {missing}; no longer made: {stale}). "
            f"Re-record them, then commit provision/iam/aws_calls.json: {policy.RECORD_COMMAND}")


@pytest.mark.iam
@pytest.mark.parametrize("name", ["dns+zone", "email"])
def test_resource_patterns_match_what_a_deploy_created(load_seeded, hosted_zone, write_config, name):
    domain = dict(VARIANTS[name], **({"hosted_zone_id": hosted_zone} if "zone" in name else {}))
    cfg = load_seeded({"domain": domain})
    path = write_config({"domain": domain})
    assert Run("deploy", path).code == 0
    doc = policy.document(cfg, ACCOUNT, stack_network(quiet_context(cfg)))
    east, west = "us-east-1", "eu-west-1"
    waf = boto3.client("wafv2", region_name=east)
    [acl] = waf.list_web_acls(Scope="CLOUDFRONT")["WebACLs"]
    [cert] = boto3.client("acm", region_name=east).list_certificates()["CertificateSummaryList"]
    [dist] = boto3.client("cloudfront", region_name=east).list_distributions()["DistributionList"]["Items"]
    fn = boto3.client("lambda", region_name=west).get_function(FunctionName="demo-api")["Configuration"]
    [group] = boto3.client("logs", region_name=west).describe_log_groups(logGroupNamePrefix="/aws/lambda/demo-api")[
        "logGroups"]
    [sg] = boto3.client("ec2", region_name=west).describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["demo-lambda"]}])["SecurityGroups"]
    [db] = boto3.client("rds", region_name=west).describe_db_instances()["DBInstances"]
    created = {
        "wafv2:UpdateWebACL": [acl["ARN"]],
        "wafv2:UpdateIPSet": [s["ARN"] for s in waf.list_ip_sets(Scope="CLOUDFRONT")["IPSets"]],
        "acm:DeleteCertificate": [cert["CertificateArn"]],
        "cloudfront:UpdateDistribution": [dist["ARN"]],
        "lambda:UpdateFunctionConfiguration": [fn["FunctionArn"]],
        "iam:PassRole": [fn["Role"]],
        "iam:DeleteRole": [boto3.client("iam").get_role(RoleName="demo-fn")["Role"]["Arn"]],
        "logs:PutRetentionPolicy": [group["arn"]],
        "logs:FilterLogEvents": [group["arn"]],
        "ec2:DeleteSecurityGroup": [f"arn:aws:ec2:{west}:{ACCOUNT}:security-group/{sg['GroupId']}"],
        "ec2:AuthorizeSecurityGroupIngress": [
            f"arn:aws:ec2:{west}:{ACCOUNT}:security-group/{db['VpcSecurityGroups'][0]['VpcSecurityGroupId']}"],
        "lambda:ListTags": [fn["FunctionArn"]],
        "rds:DescribeDBInstances": [db["DBInstanceArn"]],
    }
    apigw = boto3.client("apigateway", region_name=west)
    [api] = apigw.get_rest_apis()["items"]
    [plan] = apigw.get_usage_plans()["items"]
    created["apigateway:DELETE"] = [f"arn:aws:apigateway:{west}::/restapis/{api['id']}",
                                    f"arn:aws:apigateway:{west}::/usageplans/{plan['id']}"]
    created["apigateway:POST"] = [f"arn:aws:apigateway:{west}::/apikeys"]
    if "zone" in name:
        created["route53:ChangeResourceRecordSets"] = [f"arn:aws:route53:::hostedzone/{hosted_zone}"]
    if name.startswith("email"):
        bucket = f"demo-mail-{ACCOUNT}"
        assert f"bucket {bucket}" in inventory(cfg)
        created["s3:PutBucketPolicy"] = [f"arn:aws:s3:::{bucket}"]
        created["s3:GetObject"] = [f"arn:aws:s3:::{bucket}/incoming/some-mail"]
    for action, arns in created.items():
        for arn in arns:
            assert allows(doc, action, arn), (action, arn)
    # and the narrowing is real: another stack's things are not granted
    assert not allows(doc, "lambda:UpdateFunctionConfiguration", fn["FunctionArn"].replace("demo-api", "other-api"))
    assert not allows(doc, "wafv2:UpdateWebACL", acl["ARN"].replace("/demo/", "/other/"))
    assert not allows(doc, "iam:PassRole", fn["Role"].replace("demo-fn", "admin"))


# moto names some IAM actions after the API operation where AWS uses other names (API Gateway authorizes
# by HTTP method, CloudFront's CreateDistributionWithTags by CreateDistribution + TagResource, S3's
# HeadBucket by s3:ListBucket; CloudWatch's calls as monitoring:*). In this test only, such calls are
# also granted under moto's name, derived from the same catalog: still no "*" action.
def _moto_action_names(cfg) -> set[str]:
    wanted = policy.variant(cfg.domain.validation, cfg.domain.hosted_zone_id)
    # apigatewayv2 shares API Gateway's endpoint, and moto's names; moto takes the prefix from the request's
    # signing name, which is "monitoring" for CloudWatch (IAM's prefix: cloudwatch)
    moto_prefix = {"apigatewayv2": "apigateway", "cloudwatch": "monitoring"}
    return {f"{moto_prefix.get(c.service, c.service)}:{c.operation}" for c in policy.load_catalog()
            if wanted in c.variants and (c.service == "cloudwatch" or (
                policy.actions(c.service, c.operation)[0] != f"{c.service}:{c.operation}"
                and (c.service in ("apigateway", "apigatewayv2", "cloudfront")
                     or (c.service, c.operation) == ("s3", "HeadBucket"))))}


def as_moto_evaluates(doc: dict, cfg) -> dict:
    """The generated policy as moto 5.2.5 can evaluate it. Kept as generated: every action, every condition
    (moto evaluates StringEquals against the request values it knows, none of ours, and passes them), and the
    resources of S3 (moto authorizes S3 against the bucket's and the object's ARN). Widened to "*": the
    resources of every other service, because moto authorizes them against the resource "*" (IAM against the
    role's ARN once it exists, "*" before, so CreateRole would be refused under the exact ARN). What moto
    cannot check therefore stays with tests/test_policy_reference.py and the resource-pattern test above."""
    statements = [{**s, "Resource": s["Resource"] if s["Action"][0].startswith("s3:") else "*"}
                  for s in doc["Statement"]]
    moto_named = sorted(_moto_action_names(cfg))
    return {"Version": "2012-10-17", "Statement": [*statements, {"Effect": "Allow", "Action": moto_named,
                                                                  "Resource": "*"}]}


def operator_holding(doc: dict, monkeypatch):
    """A factory of sessions (one per command, as each run of the console script has) of an IAM user holding
    only ``doc``; from then on moto checks every call."""
    iam = boto3.client("iam")
    iam.create_user(UserName="operator")
    iam.put_user_policy(UserName="operator", PolicyName="rds-edge-api", PolicyDocument=json.dumps(doc))
    key = iam.create_access_key(UserName="operator")["AccessKey"]
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
    return lambda: boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])


@pytest.mark.iam
@pytest.mark.parametrize("name", ["dns+zone", "email"])
def test_a_user_holding_only_the_policy_deploys_rotates_and_tears_down(load_seeded, hosted_zone, write_config,
                                                                       monkeypatch, aws_rules, name):
    # Under IAM enforcement moto 5.2.5 answers GET requests (Lambda, Route 53, ...) with SignatureDoesNotMatch
    # whatever the credentials: its signature check is switched off; its action check, the point here, stays.
    from moto.iam.access_control import IAMRequestBase
    monkeypatch.setattr(IAMRequestBase, "check_signature", lambda self: None)
    aws_rules(function_tags_need_list_tags())  # as AWS: the function's tags only with lambda:ListTags
    domain = dict(VARIANTS[name], **({"hosted_zone_id": hosted_zone} if "zone" in name else {}))
    cfg = load_seeded({"domain": domain})
    path = write_config({"domain": domain})
    doc = as_moto_evaluates(policy.document(cfg, ACCOUNT, stack_network(quiet_context(cfg))), cfg)
    # S3 kept exact: the mail bucket and its mail, for either mode (a dns stack removes an email one's leftovers)
    assert [s["Resource"] for s in doc["Statement"] if s["Action"][0].startswith("s3:")] == [
        f"arn:aws:s3:::demo-mail-{ACCOUNT}", f"arn:aws:s3:::demo-mail-{ACCOUNT}/*"]
    operator = operator_holding(doc, monkeypatch)
    denied_probe = operator().client("iam").list_users
    with pytest.raises(Exception, match="AccessDenied|not authorized"):
        denied_probe()  # enforcement is on: an action outside the policy is refused

    for argv in (["deploy"], ["outputs"], ["rotate", "api-key"], ["rotate", "api-key", "--finish"],
                 "new authorization", ["rotate", "authorization"], ["rotate", "authorization", "--finish"],
                 ["teardown", "--yes"]):
        if argv == "new authorization":
            monkeypatch.setenv(cfg.access.authorization.env, "Bearer rotated-value-for-the-policy-test")
            continue
        code, text = Run(argv[0], path, *argv[1:], session=operator())
        assert code == 0, (argv, text)
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    assert [f for f in inventory(cfg) if not f.startswith("dns NS")] == []


@pytest.mark.iam
def test_without_lambda_list_tags_teardown_takes_the_function_for_someone_else_s(load_seeded, write_config,
                                                                                monkeypatch, aws_rules):
    """Why lambda:ListTags is in the policy: GetFunction then returns no tags (AWS's rule), and teardown leaves
    the function alone as not this stack's."""
    from moto.iam.access_control import IAMRequestBase
    monkeypatch.setattr(IAMRequestBase, "check_signature", lambda self: None)
    rule = function_tags_need_list_tags()
    aws_rules(rule)
    cfg, path = load_seeded({"domain": VARIANTS["dns"]}), write_config({"domain": VARIANTS["dns"]})
    assert Run("deploy", path).code == 0  # as the suite's default caller
    doc = as_moto_evaluates(policy.document(cfg, ACCOUNT, stack_network(quiet_context(cfg))), cfg)
    for statement in doc["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != "lambda:ListTags"]
    code, text = Run("teardown", path, "--yes", session=operator_holding(doc, monkeypatch)())
    assert rule.seen and "Leaving Lambda function" in text, text
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    assert boto3.client("lambda", region_name="eu-west-1").get_function(FunctionName="demo-api")


def test_the_role_may_be_passed_to_lambda_only(config_for):
    doc = policy.document(config_for("dns"), ACCOUNT, NETWORK)
    [passing] = [s for s in doc["Statement"] if "iam:PassRole" in s["Action"]
                 and s["Resource"] == f"arn:aws:iam::{ACCOUNT}:role/demo-fn"]
    assert passing["Action"] == ["iam:PassRole"]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    # the other role passed: the region's API Gateway logging role, to API Gateway only (UpdateAccount)
    others = [s for s in doc["Statement"] if "iam:PassRole" in s["Action"] and s is not passing]
    assert all(s["Resource"] == f"arn:aws:iam::{ACCOUNT}:role/rds-edge-api-apigateway-logs-eu-west-1" and
               s["Condition"] == {"StringEquals": {"iam:PassedToService": "apigateway.amazonaws.com"}} for s in others)
