"""Health alarms: read back from moto's CloudWatch, SNS and CloudWatch Logs in the stack's region."""
import json

import boto3
import pytest

from provision import capacity
from provision.commands import verify
from provision.errors import DeployError
from provision.steps import alarms, api, function, iam_role, security_groups
from tests.support import changing_ops, quiet_context, run_once, run_steps

pytestmark = pytest.mark.iam  # the function step attaches an AWS managed policy

REGION = "eu-west-1"
OPS = "ops@example.com"
KINDS = ["api-5xx-rate", "database-connections", "function-errors", "function-p99-duration", "function-throttles"]


@pytest.fixture
def deployed(load_seeded):
    """load(alerts) -> Config with the function and API made (what the alarms name)."""
    def load(alerts=None):
        cfg = load_seeded({"alerts": alerts} if alerts else None)
        run_steps(cfg, iam_role, security_groups, function, api)
        return cfg
    return load


def cloudwatch():
    return boto3.client("cloudwatch", region_name=REGION)


def sns():
    return boto3.client("sns", region_name=REGION)


def the_alarms():
    return {a["AlarmName"]: a for a in cloudwatch().describe_alarms()["MetricAlarms"]}


def topic():
    [arn] = [t["TopicArn"] for t in sns().list_topics()["Topics"] if t["TopicArn"].endswith(":demo-health-alerts")]
    return arn


def metric_filters():
    return boto3.client("logs", region_name=REGION).describe_metric_filters(
        logGroupName=function.log_group_name("demo"))["metricFilters"]


def test_alarms_watch_the_api_function_and_database_and_mail_the_stack_regions_topic(deployed):
    ctx = run_once(deployed({"email": OPS}), alarms.ensure)
    found = the_alarms()
    assert sorted(found) == [f"demo-{kind}" for kind in KINDS]
    arn = topic()
    assert arn.split(":")[3] == REGION  # an alarm's action must be in the alarm's region
    for alarm in found.values():
        assert alarm["AlarmActions"] == [arn] and alarm["TreatMissingData"] == "notBreaching"
        tags = cloudwatch().list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
        assert {t["Key"]: t["Value"] for t in tags} == {"stack": "demo", "managed-by": "rds-edge-api"}
    five = found["demo-api-5xx-rate"]
    assert (five["Namespace"], five["MetricName"], five["Statistic"], five["Threshold"]) == \
        ("AWS/ApiGateway", "5XXError", "Average", 0.05)
    assert {d["Name"]: d["Value"] for d in five["Dimensions"]} == {"ApiName": "demo", "Stage": "v1"}
    p99 = found["demo-function-p99-duration"]
    assert (p99["MetricName"], p99["ExtendedStatistic"], p99["Threshold"]) == ("Duration", "p99", 8000.0)
    assert found["demo-function-throttles"]["Dimensions"] == [{"Name": "FunctionName", "Value": "demo-api"}]
    db = found["demo-database-connections"]
    assert db["Dimensions"] == [{"Name": "DBInstanceIdentifier", "Value": "orders-db"}]
    assert db["Threshold"] == round(0.8 * capacity.max_connections("db.t4g.micro"))
    errors = found["demo-function-errors"]
    [metric_filter] = metric_filters()
    assert metric_filter["filterPattern"] == '{ $.outcome = "internal" }'
    [transformation] = metric_filter["metricTransformations"]
    assert (transformation["metricNamespace"], transformation["metricName"]) == \
        (errors["Namespace"], errors["MetricName"])
    policy = json.loads(sns().get_topic_attributes(TopicArn=arn)["Attributes"]["Policy"])
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:demo-*"
    assert [(s["Protocol"], s["Endpoint"]) for s in sns().list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]] \
        == [("email", OPS)]
    assert ctx.outputs["Alarms"] == ", ".join(f"demo-{kind}" for kind in KINDS)


def test_a_second_deploy_changes_nothing_and_a_new_timeout_updates_one_alarm(deployed, write_config):
    cfg = deployed({"email": OPS})
    run_once(cfg, alarms.ensure)
    assert changing_ops(run_once(cfg, alarms.ensure)) == []
    from provision import config as config_module
    slower = config_module.load(write_config({"alerts": {"email": OPS}, "function": {"timeout_s": 20}}))
    assert changing_ops(run_once(slower, alarms.ensure)) == ["PutMetricAlarm"]
    assert the_alarms()["demo-function-p99-duration"]["Threshold"] == 16000.0


@pytest.mark.parametrize("alerts", [None, {"email": OPS, "health": False}])
def test_switching_alarms_off_removes_them_all(deployed, write_config, alerts):
    run_once(deployed({"email": OPS}), alarms.ensure)
    from provision import config as config_module
    off = config_module.load(write_config({"alerts": alerts} if alerts else None))
    ctx = run_once(off, alarms.ensure)
    assert sorted(changing_ops(ctx)) == ["DeleteAlarms", "DeleteMetricFilter", "DeleteTopic", "Unsubscribe"]
    assert the_alarms() == {} and metric_filters() == []
    assert not [t for t in sns().list_topics()["Topics"] if t["TopicArn"].endswith(":demo-health-alerts")]
    assert changing_ops(run_once(off, alarms.destroy)) == []


def test_an_alarm_of_the_name_that_is_not_ours_stops_the_deploy_and_is_left_at_teardown(deployed):
    cfg = deployed({"email": OPS})
    cloudwatch().put_metric_alarm(AlarmName="demo-function-throttles", Namespace="AWS/Lambda", MetricName="Throttles",
                                  Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                                  ComparisonOperator="GreaterThanThreshold")
    with pytest.raises(DeployError, match="CloudWatch alarm demo-function-throttles .* not tagged"):
        run_once(cfg, alarms.ensure)
    run_once(cfg, alarms.destroy)
    assert list(the_alarms()) == ["demo-function-throttles"]


def test_a_class_outside_the_table_gets_no_connection_alarm():
    assert capacity.max_connections("db.x2g.large") is None
    assert capacity.max_connections("db.t4g.micro") == 64  # about 60 on AWS (issue 26's figure)


def test_verify_names_the_alarms_in_alarm(deployed):
    cfg = deployed({"email": OPS})
    run_once(cfg, alarms.ensure)
    cloudwatch().set_alarm_state(AlarmName="demo-function-throttles", StateValue="ALARM", StateReason="test")
    ctx = quiet_context(cfg)
    assert verify.alarm_note(ctx) == "Alarms: 1 of 5 in ALARM: demo-function-throttles"
    cloudwatch().set_alarm_state(AlarmName="demo-function-throttles", StateValue="OK", StateReason="test")
    assert verify.alarm_note(ctx) == "Alarms: none of 5 in ALARM"


def test_alarms_switched_off_and_on_between_deploys_leave_nothing_after_teardown(load_seeded, hosted_zone,
                                                                               write_config):
    """Whatever was switched since the first deploy, teardown leaves nothing (read back by tag and name)."""
    from tests.support import Run, inventory

    on = {"domain": {"hosted_zone_id": hosted_zone}, "alerts": {"email": OPS}}
    off = {"domain": {"hosted_zone_id": hosted_zone}, "alerts": {"email": OPS, "health": False}}
    cfg = load_seeded(on)
    first = Run("deploy", write_config(on))
    assert first.code == 0, first.text
    assert len(the_alarms()) == 5
    switched = Run("deploy", write_config(off))
    assert switched.code == 0 and the_alarms() == {}, switched.text
    assert not [f for f in inventory(cfg) if "health-alerts" in f or f.startswith(("alarm ", "metric filter"))]
    again = Run("deploy", write_config(on))
    assert again.code == 0 and len(the_alarms()) == 5, again.text
    still = Run("deploy", write_config(on))
    assert still.code == 0 and still.text.rstrip().endswith("(0 changing)"), still.text
    down = Run("teardown", write_config(off), "--yes")  # the config no longer asks for alarms: they go anyway
    assert down.code == 0, down.text
    assert [f for f in inventory(cfg) if not f.startswith("dns NS")] == []
