"""The preflight: read-only checks of the account before deploy changes anything. Each failing fact is
set up as AWS would have it (with a rule of tests/aws_rules.py where moto does not model it); the run
must stop with exit 1 before the first change, naming the fix, and converge once the fact is fixed."""
import json

import boto3
import pytest

from provision import config as config_module
from provision.account import preflight
from provision.clients import is_changing
from provision.errors import DeployError
from provision.steps import function, iam_role, security_groups, waf, waf_logging
from tests.aws_rules import (
    DELIVERY_LOG_POLICY,
    WAF_LOG_POLICY,
    account_concurrency,
    log_delivery_resource_policy,
    waf_log_resource_policy,
)
from tests.support import Run, changing_ops, inventory, printed, quiet_context, run_steps


def deploy(path, *args):
    """deploy through the CLI; (run, the changing AWS calls it made)."""
    session, calls = boto3.Session(), []
    session.events.register("before-call", lambda model, **_: calls.append(model.name))
    run = Run("deploy", path, *args, session=session)
    return run, [c for c in calls if is_changing(c)]


def checks(cfg):
    """The preflight's rows for cfg, by name, and the printed text; raises what run() raises."""
    ctx = quiet_context(cfg)
    try:
        found = preflight.run(ctx)
    except DeployError as exc:
        return None, printed(ctx), str(exc)
    return {c.name: c for c in found}, printed(ctx), None


def test_plan_shows_every_check_as_a_table(load_seeded, hosted_zone, write_config):
    overrides = {"domain": {"hosted_zone_id": hosted_zone}}
    load_seeded(overrides)
    plan = Run("deploy", write_config(overrides), "--plan")
    assert plan.code == 0, plan.text
    table = plan.text[plan.text.index("preflight (read-only)"):]
    for name in ("database", "Lambda concurrency", "function subnets", "CloudWatch Logs resource policies (us-east-1)",
                 "SES receipt rule set", "domain record"):
        assert name in table
    assert "this endpoint does not implement GetAccountSettings" in table  # moto: shown as skipped
    assert plan.text.rstrip().endswith("(0 changing)")


# --- Lambda concurrency ------------------------------------------------------------------------------

@pytest.mark.iam
def test_a_reservation_past_the_accounts_headroom_stops_before_any_change(aws_rules, load_seeded, hosted_zone,
                                                                         write_config):
    """A new account: 10 concurrent executions in all, all 10 to stay unreserved; the default 10 cannot be
    reserved. Before: PutFunctionConcurrency failed after the function existed, on every run."""
    aws_rules(account_concurrency(limit=10, minimum=10))
    overrides = {"domain": {"hosted_zone_id": hosted_zone}}
    cfg = load_seeded(overrides)
    run, changing = deploy(write_config(overrides))
    assert run.code == 1
    assert inventory(cfg) == [] and changing == []
    assert "max_concurrency = 10 would leave fewer than 10 of the account's 10 concurrent executions" in run.text
    assert "function.max_concurrency = 0 (no reservation" in run.text
    assert "Concurrent executions' quota (Service Quotas, L-B99A9384)" in run.text
    assert "error: preflight: Lambda concurrency would fail; nothing was changed" in run.text


@pytest.mark.iam
def test_max_concurrency_0_passes_and_reserves_nothing(aws_rules, load_seeded, write_config):
    rule = aws_rules(account_concurrency(limit=10, minimum=10))
    cfg = load_seeded({"function": {"max_concurrency": 0}})
    found, _, error = checks(cfg)
    assert error is None and found["Lambda concurrency"].ok
    run_steps(cfg, iam_role, security_groups, function)
    assert "PutFunctionConcurrency" not in [c.operation for c in rule.seen]
    concurrency = boto3.client("lambda", region_name="eu-west-1").get_function_concurrency(FunctionName="demo-api")
    assert "ReservedConcurrentExecutions" not in concurrency


@pytest.mark.iam
def test_the_most_that_fits_is_offered_and_then_converges(aws_rules, load_seeded, write_config):
    """1,000 in all, 895 reserved by other functions, 100 to stay unreserved: 5 fit."""
    aws_rules(account_concurrency(limit=1000, minimum=100, reserved_elsewhere=895))
    cfg = load_seeded()
    found, text, error = checks(cfg)
    assert found is None and "function.max_concurrency = 5 (the most that fits now)" in text
    fits = config_module.load(write_config({"function": {"max_concurrency": 5}}))
    found, _, error = checks(fits)
    assert error is None and found["Lambda concurrency"].ok
    run_steps(fits, iam_role, security_groups, function)  # the rule's PutFunctionConcurrency accepts it
    concurrency = boto3.client("lambda", region_name="eu-west-1").get_function_concurrency(FunctionName="demo-api")
    assert concurrency["ReservedConcurrentExecutions"] == 5
    again, _, error = checks(fits)  # its own reservation counts as room on the next run
    assert error is None and again["Lambda concurrency"].ok


# --- CloudWatch Logs resource policies for WAF's log ---------------------------------------------------

def edge_logs():
    return boto3.client("logs", region_name="us-east-1")


def test_ten_resource_policies_stop_before_any_change(load_seeded):
    cfg = load_seeded()
    for i in range(10):
        edge_logs().put_resource_policy(policyName=f"other-{i}", policyDocument=json.dumps({"Statement": []}))
    found, text, error = checks(cfg)
    assert found is None
    assert "10 of 10 already" in text and "aws logs delete-resource-policy" in text


def nearly_full(policy_name: str, log_groups: list[str]) -> None:
    """A CloudWatch Logs resource policy in us-east-1 granting these groups, within 120 characters of its
    5,120 limit (CloudWatch Logs API reference, PutResourcePolicy)."""
    resources = [f"arn:aws:logs:us-east-1:123456789012:log-group:{group}:log-stream:*" for group in log_groups]
    document = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": resources}]})
    assert 5000 < len(document) <= 5120
    edge_logs().put_resource_policy(policyName=policy_name, policyDocument=document)


def test_an_awswaf_logs_policy_near_its_size_limit_stops_before_any_change(load_seeded):
    cfg = load_seeded()
    nearly_full(WAF_LOG_POLICY, [f"aws-waf-logs-old-{i:03d}" for i in range(60)])
    found, text, error = checks(cfg)
    assert found is None
    assert "AWSWAF-LOGS holds" in text and "aws-waf-logs-*" in text


def test_waf_logging_converges_when_the_policy_has_room(aws_rules, load_seeded):
    """With the rule, WAF writes AWSWAF-LOGS as AWS does; a second run finds the group in it already."""
    aws_rules(waf_log_resource_policy())
    cfg = load_seeded()
    found, _, error = checks(cfg)
    assert error is None and found["CloudWatch Logs resource policies (us-east-1)"].ok
    run_steps(cfg, waf, waf_logging)
    [policy] = edge_logs().describe_resource_policies()["resourcePolicies"]
    assert policy["policyName"] == WAF_LOG_POLICY and ":log-group:aws-waf-logs-demo:" in policy["policyDocument"]
    again, _, _ = checks(cfg)
    assert "already lets WAF write to aws-waf-logs-demo" in again["CloudWatch Logs resource policies (us-east-1)"].detail


def test_without_room_the_rule_refuses_as_aws_does(aws_rules, load_seeded):
    """The failure the check prevents: WAFLogDestinationPermissionIssueException after the ACL exists."""
    aws_rules(waf_log_resource_policy())
    cfg = load_seeded()
    for i in range(10):
        edge_logs().put_resource_policy(policyName=f"other-{i}", policyDocument=json.dumps({"Statement": []}))
    with pytest.raises(Exception, match="WAFLogDestinationPermissionIssueException"):
        run_steps(cfg, waf, waf_logging)


# --- the log-delivery policy CloudFront's logging (v2) needs ---------------------------------------------

DELIVERY = "CloudWatch Logs log-delivery policy (us-east-1)"


def other_policies(count):
    for i in range(count):
        edge_logs().put_resource_policy(policyName=f"other-{i}", policyDocument=json.dumps({"Statement": []}))


def test_nine_policies_leave_no_place_for_both_waf_and_the_log_delivery(load_seeded):
    """Each check alone would find one free place of the 10; WAF and the log delivery need one each."""
    cfg = load_seeded()
    other_policies(9)
    found, text, error = checks(cfg)
    assert found is None and "CloudWatch Logs log-delivery policy" in error
    assert f"must add {DELIVERY_LOG_POLICY} for /aws/cloudfront/demo/access (and WAF {WAF_LOG_POLICY})" in text


def test_with_awswaf_logs_in_place_the_last_free_place_is_the_deliverys(load_seeded):
    cfg = load_seeded()
    other_policies(8)
    edge_logs().put_resource_policy(policyName=WAF_LOG_POLICY, policyDocument=json.dumps({"Statement": []}))
    found, _, error = checks(cfg)
    assert error is None and found[DELIVERY].ok
    assert found[DELIVERY].detail == f"9 of 10; CloudWatch Logs adds {DELIVERY_LOG_POLICY} for /aws/cloudfront/demo/access"


def test_a_full_log_delivery_policy_stops_before_any_change(load_seeded):
    cfg = load_seeded()
    nearly_full(DELIVERY_LOG_POLICY, [f"/aws/vendedlogs/x{i:02d}" for i in range(61)])
    found, text, error = checks(cfg)
    assert found is None and f"{DELIVERY_LOG_POLICY} holds" in text


def test_without_cloudfront_logging_the_check_is_not_needed(load_seeded):
    cfg = load_seeded({"logs": {"cloudfront": False}})
    other_policies(9)  # WAF's one free place is all this config needs
    found, _, error = checks(cfg)
    assert error is None and found[DELIVERY].detail == "not needed (logs.cloudfront = false)"


def _deliver_to_a_group():
    """CreateDelivery of a CloudFront source to a log group, as the cloudfront_logging step makes it."""
    logs = edge_logs()
    logs.create_log_group(logGroupName="/aws/cloudfront/demo/access")
    group = logs.describe_log_groups(logGroupNamePrefix="/aws/cloudfront/demo/access")["logGroups"][0]["arn"]
    logs.put_delivery_source(name="demo-cloudfront", logType="ACCESS_LOGS",
                             resourceArn="arn:aws:cloudfront::123456789012:distribution/E2EXAMPLE")
    destination = logs.put_delivery_destination(
        name="demo-cloudfront-logs", deliveryDestinationConfiguration={"destinationResourceArn": group})
    return logs.create_delivery(deliverySourceName="demo-cloudfront",
                                deliveryDestinationArn=destination["deliveryDestination"]["arn"])


def test_the_delivery_adds_the_group_and_the_check_then_finds_it(aws_rules, load_seeded):
    aws_rules(log_delivery_resource_policy())
    cfg = load_seeded()
    _deliver_to_a_group()
    [written] = edge_logs().describe_resource_policies()["resourcePolicies"]
    assert written["policyName"] == DELIVERY_LOG_POLICY
    found, _, error = checks(cfg)
    assert error is None
    assert found[DELIVERY].detail == f"{DELIVERY_LOG_POLICY} already lets the log delivery write to /aws/cloudfront/demo/access"


def test_without_a_place_the_delivery_is_refused_as_aws_does(aws_rules, load_seeded):
    """The failure the check prevents: CreateDelivery refused after the distribution exists."""
    aws_rules(log_delivery_resource_policy())
    load_seeded()
    other_policies(10)
    with pytest.raises(Exception, match="LimitExceededException"):
        _deliver_to_a_group()


# --- SES and the domain's record ------------------------------------------------------------------------

def test_someone_elses_active_receipt_rule_set_stops_before_any_change(load_seeded, hosted_zone, write_config):
    overrides = {"domain": {"hosted_zone_id": hosted_zone, "validation": "email"}}
    cfg = load_seeded(overrides)
    ses = boto3.client("ses", region_name=cfg.domain.mail_region)
    ses.create_receipt_rule_set(RuleSetName="theirs")
    ses.set_active_receipt_rule_set(RuleSetName="theirs")
    run, changing = deploy(write_config(overrides))
    assert run.code == 1
    assert "already has an active receipt rule set, 'theirs'" in run.text
    assert inventory(cfg) == [] and changing == []


def record(zone, rtype, value):
    boto3.client("route53").change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{
        "Action": "UPSERT", "ResourceRecordSet": {"Name": "api.example.com.", "Type": rtype, "TTL": 300,
                                                  "ResourceRecords": [{"Value": value}]}}]})


@pytest.mark.parametrize("rtype, value", [("A", "192.0.2.10"), ("CNAME", "elsewhere.example.net")])
def test_a_record_at_the_domain_that_is_not_the_stacks_stops_before_any_change(load_seeded, hosted_zone,
                                                                                write_config, rtype, value):
    overrides = {"domain": {"hosted_zone_id": hosted_zone}}
    load_seeded(overrides)
    record(hosted_zone, rtype, value)
    run, changing = deploy(write_config(overrides))
    assert run.code == 1 and changing == []
    assert f"api.example.com already has {rtype} {value}, not this stack's distribution" in run.text
    assert "choose another domain.name" in run.text
    rrsets = boto3.client("route53").list_resource_record_sets(HostedZoneId=hosted_zone)["ResourceRecordSets"]
    assert [r["ResourceRecords"][0]["Value"] for r in rrsets if r["Type"] == rtype] == [value]  # untouched


def test_the_stacks_own_alias_passes(load_seeded, hosted_zone, write_config):
    overrides = {"domain": {"hosted_zone_id": hosted_zone}}
    cfg = load_seeded(overrides)
    ctx = quiet_context(cfg)
    ctx.state.put("cloudfront", {"domain_name": "d111111abcdef8.cloudfront.net"})
    ctx.state.save()
    from provision.aws import dns
    dns.ensure(ctx, hosted_zone, dns.Record("api.example.com", "A", alias_target="d111111abcdef8.cloudfront.net"))
    found, _, error = checks(cfg)
    assert error is None
    assert found["domain record"].ok and "alias the stack's distribution" in found["domain record"].detail
    assert changing_ops(quiet_context(cfg)) == []
