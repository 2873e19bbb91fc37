"""WAF logging step: the log group and the web ACL's logging configuration, read back from moto."""
import boto3
import pytest

from provision import config as config_module
from provision.steps import waf, waf_logging
from tests.support import SECRETS, printed, run_once

GROUP = "aws-waf-logs-demo"


@pytest.fixture
def load(aws, write_config):
    """load(overrides=None) -> Config; neither step needs the operator's VPC or RDS."""
    return lambda overrides=None: config_module.load(write_config(overrides))


def logs():
    return boto3.client("logs", region_name="us-east-1")


def group():
    found = [g for g in logs().describe_log_groups(logGroupNamePrefix=GROUP)["logGroups"] if g["logGroupName"] == GROUP]
    return found[0] if found else None


def logging_configurations():
    """The ACL's logging configuration, if any (moto's ListLoggingConfigurations never lists scope CLOUDFRONT)."""
    waf = boto3.client("wafv2", region_name="us-east-1")
    found = []
    for acl in waf.list_web_acls(Scope="CLOUDFRONT")["WebACLs"]:
        try:
            found.append(waf.get_logging_configuration(ResourceArn=acl["ARN"])["LoggingConfiguration"])
        except waf.exceptions.WAFNonexistentItemException:
            pass
    return found


def acl_arn():
    [acl] = boto3.client("wafv2", region_name="us-east-1").list_web_acls(Scope="CLOUDFRONT")["WebACLs"]
    return acl["ARN"]


def test_ensure_logs_the_acl_to_a_tagged_group_with_the_authorization_header_redacted(load):
    ctx = run_once(load(), waf.ensure, waf_logging.ensure)
    found = group()
    assert found["retentionInDays"] == 30
    arn = found["arn"].removesuffix(":*")
    assert logs().list_tags_for_resource(resourceArn=arn)["tags"] == {"stack": "demo", "managed-by": "rds-edge-api"}
    config = boto3.client("wafv2", region_name="us-east-1").get_logging_configuration(
        ResourceArn=acl_arn())["LoggingConfiguration"]
    assert config["LogDestinationConfigs"] == [arn]
    assert {"SingleHeader": {"Name": "authorization"}} in config["RedactedFields"]
    assert ctx.state.get("waf_logging") == {"log_group": GROUP, "log_group_arn": arn}
    assert SECRETS["TEST_AUTHORIZATION"] not in printed(ctx)


def test_second_ensure_changes_nothing(load):
    cfg = load()
    run_once(cfg, waf.ensure, waf_logging.ensure)
    again = run_once(cfg, waf.ensure, waf_logging.ensure)
    assert again.clients.calls.changing == 0, again.clients.calls.changing_ops


def test_the_stacks_retention_applies_and_drift_is_put_back(load):
    run_once(load(), waf.ensure, waf_logging.ensure)
    boto3.client("wafv2", region_name="us-east-1").put_logging_configuration(LoggingConfiguration={
        "ResourceArn": acl_arn(), "LogDestinationConfigs": [group()["arn"].removesuffix(":*")]})  # unredacted
    ctx = run_once(load({"function": {"log_retention_days": 90}}), waf.ensure, waf_logging.ensure)
    assert sorted(ctx.clients.calls.changing_ops) == ["PutLoggingConfiguration", "PutRetentionPolicy"]
    assert group()["retentionInDays"] == 90
    [config] = logging_configurations()
    assert config["RedactedFields"] == [{"SingleHeader": {"Name": "authorization"}}]


def test_planning_changes_nothing(load):
    ctx = run_once(load(), waf.ensure, waf_logging.ensure, planning=True)
    assert ctx.clients.calls.changing == 0 and group() is None
    assert "would create log group aws-waf-logs-demo" in printed(ctx)


@pytest.mark.parametrize("with_state", [True, False])
def test_destroy_removes_the_logging_configuration_then_the_group(load, with_state):
    cfg = load()
    run_once(cfg, waf.ensure, waf_logging.ensure)
    if not with_state:
        (cfg.state_dir / "demo.json").unlink()
    ctx = run_once(cfg, waf_logging.destroy, waf.destroy)
    assert ctx.clients.calls.changing_ops[:2] == ["DeleteLoggingConfiguration", "DeleteLogGroup"]
    assert logging_configurations() == [] and group() is None
    twice = run_once(cfg, waf_logging.destroy)
    assert twice.clients.calls.changing == 0


def test_destroy_leaves_a_group_that_is_not_ours(load):
    logs().create_log_group(logGroupName=GROUP)
    ctx = run_once(load(), waf_logging.destroy)
    assert group() is not None and ctx.clients.calls.changing == 0
    assert "not tagged as this stack's" in printed(ctx)
