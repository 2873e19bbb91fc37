"""Three stacks in one account (issue 20): two email-validated in one SES region, one dns, one named as the
prefix of another; torn down in a mixed order, the others read back whole after each teardown, and `list`
reporting each state."""
import io
import json

import boto3
import pytest
from rich.console import Console

from provision import cli, config as config_module
from provision.output import Output
from tests import aws_rules as rules
from tests.support import inventory, merged, moto_evaluates_secure_transport, write_toml

pytestmark = pytest.mark.iam

SHARED = "rds-edge-api-shared-acm"
SHARED_WHILE_USED = ("api gateway account logging role in eu-west-1", "role rds-edge-api-apigateway-logs-eu-west-1")
STACKS = {  # name -> [domain]
    "orders": {"name": "orders.example.com", "validation": "email"},
    "orders-eu": {"name": "eu.example.com", "validation": "email"},
    "reports": {"name": "reports.example.com", "validation": "dns"},
}


def run(*argv):
    out = Output(Console(file=io.StringIO(), width=250, force_terminal=False))
    code = cli.main(list(argv), session=boto3.Session(), out=out)
    return code, out.console.file.getvalue()


def listed():
    code, text = run("list", "--json", "--region", "eu-west-1", "--region", "us-east-1")
    assert code == 0, text
    return json.loads(text)


def is_whole(cfg):
    """The stack's rule in the active shared set, its alias record, its log groups, its function."""
    stack, domain = cfg.stack.name, cfg.domain.name
    if cfg.domain.receives_mail:
        ses = boto3.client("ses", region_name="us-east-1")
        assert ses.describe_active_receipt_rule_set()["Metadata"]["Name"] == SHARED
        rule = ses.describe_receipt_rule(RuleSetName=SHARED, RuleName=f"{stack}-acm-approval")["Rule"]
        assert rule["Recipients"] == [domain]
    zone = cfg.domain.hosted_zone_id
    records = boto3.client("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    assert any(r["Name"] == f"{domain}." and r["Type"] == "A" for r in records), stack
    groups = {g["logGroupName"] for g in boto3.client("logs", region_name="eu-west-1").describe_log_groups(
        logGroupNamePrefix=f"/aws/lambda/{stack}-api")["logGroups"]}
    assert groups == {f"/aws/lambda/{stack}-api"}
    boto3.client("lambda", region_name="eu-west-1").get_function(FunctionName=f"{stack}-api")
    role = boto3.client("apigateway", region_name="eu-west-1").get_account().get("cloudwatchRoleArn", "")
    assert role.endswith(":role/rds-edge-api-apigateway-logs-eu-west-1"), role  # its access log still writes


@pytest.fixture(autouse=True)
def tls_requests(monkeypatch):
    moto_evaluates_secure_transport(monkeypatch)


def test_three_stacks_in_one_account_torn_down_in_a_mixed_order(load_seeded, hosted_zone, tmp_path, aws_rules,
                                                                monkeypatch):
    aws_rules(rules.tagging_api_covers_more_services())
    load_seeded()  # the operator's VPC and database, shared by the three stacks
    configs, paths = {}, {}
    for name, domain in STACKS.items():
        data = merged({"stack": {"name": name}, "domain": {**domain, "hosted_zone_id": hosted_zone}})
        paths[name] = write_toml(tmp_path / f"{name}.toml", data)
        configs[name] = config_module.load(paths[name])
        code, text = run("deploy", "--config", str(paths[name]))
        assert code == 0, text
    stacks = {s["stack"]: s for s in listed()["stacks"]}
    assert sorted(stacks) == ["orders", "orders-eu", "reports"]
    assert all(s["complete"] and s["lease"] is None for s in stacks.values()), stacks
    assert "s3:bucket" in stacks["orders"]["resources"] and "s3:bucket" not in stacks["reports"]["resources"]
    assert all(f":function:{name}-api" in stacks[name]["resources"]["lambda:function"][0] for name in stacks)
    assert any(":table/rds-edge-api-leases" in arn for arn in listed()["shared"])

    elsewhere = tmp_path / "no-config-here"  # an operator who lost the config and the state
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, text = run("outputs", "--config", str(paths["orders-eu"]), "--json")
    assert code == 0, text
    with_config = json.loads(text)
    code, text = run("outputs", "--stack", "orders-eu", "--json")
    assert code == 0, text
    from_account = json.loads(text)
    for key in ("url", "distribution_domain", "invoke_url", "api_key_id", "web_acl_arn", "certificate_arn",
                "function_arn", "role_arn", "lambda_security_group"):
        assert from_account[key] == with_config[key], key
    assert run("outputs", "--stack", "orders-e")[0] == 1  # a prefix is no stack

    left = dict(configs)
    for name in ("orders", "reports", "orders-eu"):  # the prefix first, then the dns one, then the last mail one
        by_config = ("--config", str(paths[name])) if name == "orders" else ("--stack", name, "--region", "eu-west-1")
        code, text = run("teardown", *by_config, "--yes")
        assert code == 0, text
        del left[name]
        # The region's API Gateway logging role serves the stacks still there (issue 16): kept until the last.
        behind = [f for f in inventory(configs[name]) if not (left and f.startswith(SHARED_WHILE_USED))]
        assert behind == [], name
        for other in left.values():
            is_whole(other)
        assert sorted(s["stack"] for s in listed()["stacks"]) == sorted(left)
    ses = boto3.client("ses", region_name="us-east-1")
    assert ses.list_receipt_rule_sets().get("RuleSets", []) == []  # the last mail stack removed the set
    assert "Metadata" not in ses.describe_active_receipt_rule_set()
