"""Alerts step: EventBridge rule on ACM's events -> SNS topic -> email subscription, read back from moto."""
import json

import boto3
import pytest
from botocore.exceptions import ClientError

from provision import config as config_module
from provision.errors import DeployError
from provision.steps import alerts
from tests.support import printed, quiet_context, run_once

ACCOUNT = "123456789012"  # moto's account
NAME = "demo-certificate-alerts"
OPS = "ops@example.com"


@pytest.fixture
def load(aws, write_config):
    """load(email=OPS) -> Config with [alerts] (none when email is None)."""
    return lambda email=OPS: config_module.load(write_config({"alerts": {"email": email}} if email else None))


@pytest.fixture
def certificate_arn(aws):
    return boto3.client("acm", region_name="us-east-1").request_certificate(
        DomainName="api.example.com", ValidationMethod="DNS")["CertificateArn"]


def run(cfg, action, certificate, planning=False):
    """One command run knowing the certificate (as the certificate step leaves it)."""
    return run_once(cfg, action, planning=planning, state={"certificate": {"arn": certificate}})


def events():
    return boto3.client("events", region_name="us-east-1")


def sns():
    return boto3.client("sns", region_name="us-east-1")


def topic_arn():
    arns = [t["TopicArn"] for t in sns().list_topics()["Topics"] if t["TopicArn"].endswith(":" + NAME)]
    return arns[0] if arns else None


def subscriptions():
    return [(s["Protocol"], s["Endpoint"]) for s in sns().list_subscriptions()["Subscriptions"]]


def rule():
    try:
        return events().describe_rule(Name=NAME)
    except ClientError:
        return None


def test_ensure_builds_rule_topic_policy_and_subscription(load, certificate_arn):
    ctx = run(load(), alerts.ensure, certificate_arn)

    found = rule()
    assert found["State"] == "ENABLED"
    assert json.loads(found["EventPattern"]) == {
        "source": ["aws.acm"],
        "detail-type": ["ACM Certificate Approaching Expiration", "ACM Certificate Renewal Action Required",
                        "ACM Certificate Expired"],
        "resources": [certificate_arn]}
    tags = {t["Key"]: t["Value"] for t in events().list_tags_for_resource(ResourceARN=found["Arn"])["Tags"]}
    assert tags == {"stack": "demo", "managed-by": "rds-edge-api"}
    topic = topic_arn()
    assert [(t["Id"], t["Arn"]) for t in events().list_targets_by_rule(Rule=NAME)["Targets"]] == [
        ("certificate-alerts-topic", topic)]

    policy = json.loads(sns().get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    assert policy["Statement"] == [{
        "Sid": "EventBridgeRulePublishes", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sns:Publish", "Resource": topic, "Condition": {"ArnEquals": {"aws:SourceArn": found["Arn"]}}}]
    tags = {t["Key"]: t["Value"] for t in sns().list_tags_for_resource(ResourceArn=topic)["Tags"]}
    assert tags == {"stack": "demo", "managed-by": "rds-edge-api"}
    assert subscriptions() == [("email", OPS)]
    assert "AWS mails a confirmation link to ops@example.com" in printed(ctx)
    assert ctx.state.get("alerts") == {"rule_arn": found["Arn"], "topic_arn": topic, "email": OPS}


def test_second_ensure_changes_nothing(load, certificate_arn):
    cfg = load()
    run(cfg, alerts.ensure, certificate_arn)
    again = run(cfg, alerts.ensure, certificate_arn)
    assert again.clients.calls.changing == 0, again.clients.calls.changing_ops
    assert "confirmation link" not in printed(again)


def test_a_changed_address_replaces_the_subscription(load, certificate_arn):
    run(load(), alerts.ensure, certificate_arn)
    ctx = run(load("oncall@example.com"), alerts.ensure, certificate_arn)
    assert subscriptions() == [("email", "oncall@example.com")]
    assert sorted(ctx.clients.calls.changing_ops) == ["Subscribe", "Unsubscribe"]


def test_an_unconfirmed_old_subscription_cannot_be_removed_and_is_said_so(load, certificate_arn):
    run(load(), alerts.ensure, certificate_arn)
    ctx = quiet_context(load("oncall@example.com"))
    ctx.state.put("certificate", {"arn": certificate_arn})

    def pending(parsed, **_):  # moto confirms at once; AWS lists an unconfirmed one without an ARN
        for subscription in parsed.get("Subscriptions", []):
            if subscription["Endpoint"] == OPS:
                subscription["SubscriptionArn"] = "PendingConfirmation"

    ctx.edge("sns").meta.events.register("after-call.sns.ListSubscriptionsByTopic", pending)
    alerts.ensure(ctx)
    assert ctx.clients.calls.changing_ops == ["Subscribe"]
    assert "unconfirmed subscription of ops@example.com cannot be removed" in printed(ctx)


def test_a_replaced_certificate_updates_the_rule(load, certificate_arn):
    cfg = load()
    run(cfg, alerts.ensure, certificate_arn)
    new = boto3.client("acm", region_name="us-east-1").request_certificate(
        DomainName="api.example.com", ValidationMethod="DNS", IdempotencyToken="other")["CertificateArn"]
    ctx = run(cfg, alerts.ensure, new)
    assert ctx.clients.calls.changing_ops == ["PutRule"]
    assert json.loads(rule()["EventPattern"])["resources"] == [new]


def test_planning_announces_and_changes_nothing(load, certificate_arn):
    ctx = run(load(), alerts.ensure, certificate_arn, planning=True)
    assert ctx.clients.calls.changing == 0 and rule() is None and topic_arn() is None
    assert [kind for kind, _ in ctx.report.changes] == ["create", "create", "update", "update", "create"]


@pytest.mark.parametrize("with_state", [True, False])
def test_destroy_removes_rule_topic_and_subscription_and_is_safe_twice(load, certificate_arn, with_state):
    cfg = load()
    run(cfg, alerts.ensure, certificate_arn)
    if not with_state:
        (cfg.state_dir / "demo.json").unlink()
    ctx = quiet_context(cfg)
    alerts.destroy(ctx)
    assert rule() is None and topic_arn() is None and subscriptions() == []
    twice = quiet_context(cfg)
    alerts.destroy(twice)
    assert twice.clients.calls.changing == 0


def test_without_alerts_in_the_config_ensure_removes_what_an_earlier_config_made(load, certificate_arn):
    run(load(), alerts.ensure, certificate_arn)
    run(load(None), alerts.ensure, certificate_arn)
    assert rule() is None and topic_arn() is None and subscriptions() == []
    again = run(load(None), alerts.ensure, certificate_arn)
    assert again.clients.calls.changing == 0


def test_a_same_named_topic_and_rule_of_someone_else_are_left_alone(load):
    sns().create_topic(Name=NAME)
    events().put_rule(Name=NAME, EventPattern=json.dumps({"source": ["aws.acm"]}))
    ctx = quiet_context(load())
    alerts.destroy(ctx)
    assert ctx.clients.calls.changing == 0 and rule() is not None and topic_arn() is not None
    assert printed(ctx).count("not tagged as this stack's") == 2


@pytest.mark.parametrize("foreign", ["topic", "rule"])
def test_deploy_stops_at_a_same_named_topic_or_rule_of_someone_else(load, certificate_arn, foreign):
    if foreign == "topic":
        sns().create_topic(Name=NAME)
    else:
        events().put_rule(Name=NAME, EventPattern=json.dumps({"source": ["aws.acm"]}))
    ctx = quiet_context(load())
    ctx.state.put("certificate", {"arn": certificate_arn})
    with pytest.raises(DeployError, match="not tagged as stack demo's"):
        alerts.ensure(ctx)
    assert ctx.clients.calls.changing == 0
