"""Step "alarms" (``[alerts] email``, ``health`` on by default): CloudWatch alarms on the API's health.

Callers should not be the first to notice that the API fails, throttles or
slows down. In the stack's region (an alarm's actions must be in its own
region: CloudWatch user guide, "Using Amazon CloudWatch alarms"), tagged:
- the SNS topic ``<stack>-health-alerts``, whose policy lets only CloudWatch
  publish, and only for this stack's alarms (``aws:SourceArn``), with an email
  subscription of ``[alerts] email`` (confirmed by the link AWS mails);
- the metric filter ``<stack>-internal-errors`` on the function's log group:
  the handler's log line with ``"outcome": "internal"`` counts one in
  ``rds-edge-api/<stack>`` ``InternalErrors``. Lambda's own ``Errors`` also
  counts every 404 and 400, which the handler raises for API Gateway to map;
- the alarms, each sending to the topic when it goes into ALARM:
  ``<stack>-api-5xx-rate`` (the stage's ``5XXError`` average over 5 minutes
  above 5 %), ``<stack>-function-errors`` (any internal error in 5 minutes),
  ``<stack>-function-throttles`` (any throttled invocation: reserved
  concurrency reached), ``<stack>-function-p99-duration`` (the p99 duration
  over 5 minutes above 80 % of the function's timeout), and
  ``<stack>-database-connections`` (the instance's ``DatabaseConnections``,
  or with ``[database] proxy`` the proxy's, dimension ``ProxyName``: its
  connections to the instance, RDS user guide "Monitoring RDS Proxy metrics"), above 80 % of what its class allows:
  ``capacity.max_connections``; none for a class not in that table).
Missing data is not breaching: an idle API is a healthy one.

Pitfalls: PutMetricAlarm creates or replaces an alarm, and ignores ``Tags``
when the alarm exists, so an alarm of one of these names without the stack's
tags is someone else's (deploy stops, teardown leaves it). The execution log
metric filter and the alarms are removed at teardown or when ``[alerts]``
or ``health`` is switched off.
"""
from __future__ import annotations

import json
from typing import Any

import boto3

from .. import capacity
from ..aws import database
from ..aws_errors import RESOURCE_NOT_FOUND_EXCEPTION
from ..config import Config
from ..context import UNKNOWN, Context
from ..errors import or_none
from ..registry import Account, Beyond, Names, Step
from ..tags import as_dict, is_ours
from ..together import together
from . import alerts
from .api import api_name
from .function import function_name, log_group_name
from .proxy import proxy_name

NAME = "alarms"
PERIOD = 300
NAMESPACE = "rds-edge-api"
INTERNAL_PATTERN = '{ $.outcome = "internal" }'
KINDS = ("api-5xx-rate", "function-errors", "function-throttles", "function-p99-duration", "database-connections")


def topic_name(stack: str) -> str:
    return f"{stack}-health-alerts"


def filter_name(stack: str) -> str:
    return f"{stack}-internal-errors"


def alarm_name(stack: str, kind: str) -> str:
    return f"{stack}-{kind}"


def enabled(config: Config) -> bool:
    return config.alerts is not None and config.alerts.health


def topic_policy(topic_arn: str, alarms_arn: str, account: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "StackAlarmsPublish", "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": "sns:Publish", "Resource": topic_arn,
        "Condition": {"ArnLike": {"aws:SourceArn": alarms_arn}, "StringEquals": {"aws:SourceAccount": account}}}]}


def _metric(namespace: str, metric: str, dimensions: dict[str, str], statistic: str) -> dict:
    stat = {"ExtendedStatistic": statistic} if statistic.startswith("p") else {"Statistic": statistic}
    return {"Namespace": namespace, "MetricName": metric, **stat,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()]}


def wanted_alarms(ctx: Context, instance_class: str) -> dict[str, dict]:
    """Alarm name -> what PutMetricAlarm is given (without the actions and tags)."""
    stack, fn = ctx.stack, function_name(ctx.stack)
    timeout_ms = ctx.config.function.timeout_s * 1000
    found: dict[str, tuple[dict, float, str]] = {
        "api-5xx-rate": (_metric("AWS/ApiGateway", "5XXError", {"ApiName": api_name(stack),
                                                                 "Stage": ctx.config.api.stage}, "Average"),
                         0.05, "more than 5 % of the API's answers were 5xx over 5 minutes"),
        "function-errors": (_metric(f"{NAMESPACE}/{stack}", "InternalErrors", {}, "Sum"), 0,
                            "the function failed a request (database unreachable, misconfigured, crashed)"),
        "function-throttles": (_metric("AWS/Lambda", "Throttles", {"FunctionName": fn}, "Sum"), 0,
                               "Lambda throttled the function: its reserved concurrency is used up"),
        "function-p99-duration": (_metric("AWS/Lambda", "Duration", {"FunctionName": fn}, "p99"), 0.8 * timeout_ms,
                                  f"the slowest 1 % took over 80 % of the function's {timeout_ms} ms timeout"),
    }
    limit = capacity.max_connections(instance_class)
    if limit is not None:  # with a proxy, its connections to the instance (AWS/RDS DatabaseConnections, ProxyName)
        holder = ({"ProxyName": proxy_name(stack)} if ctx.config.database.proxy
                  else {"DBInstanceIdentifier": ctx.config.database.instance_id})
        found["database-connections"] = (
            _metric("AWS/RDS", "DatabaseConnections", holder, "Maximum"), round(0.8 * limit),
            f"database connections{' (through RDS Proxy)' if ctx.config.database.proxy else ''} above 80 % of "
            f"the {limit} a {instance_class} allows")
    return {alarm_name(stack, kind): {
        **metric, "Threshold": float(threshold), "ComparisonOperator": "GreaterThanThreshold", "Period": PERIOD,
        "EvaluationPeriods": 1, "TreatMissingData": "notBreaching",
        "AlarmDescription": f"rds-edge-api stack {stack}: {why}"} for kind, (metric, threshold, why) in found.items()}


# --- finding ------------------------------------------------------------------

def _alarms(ctx: Context) -> dict[str, dict]:
    """The alarms of this step's names, with their tags (None: not ours to judge yet)."""
    cloudwatch = ctx.client("cloudwatch")
    names = [alarm_name(ctx.stack, kind) for kind in KINDS]
    listed = cloudwatch.describe_alarms(AlarmNames=names, AlarmTypes=["MetricAlarm"])["MetricAlarms"]
    tags = together(ctx, *(lambda c, arn=a["AlarmArn"]: c.client("cloudwatch").list_tags_for_resource(
        ResourceARN=arn)["Tags"] for a in listed))
    return {alarm["AlarmName"]: {**alarm, "Tags": found} for alarm, found in zip(listed, tags)}


def _filter(ctx: Context) -> dict | None:
    got = or_none(ctx.client("logs").describe_metric_filters, RESOURCE_NOT_FOUND_EXCEPTION,
                  logGroupName=log_group_name(ctx.stack), filterNamePrefix=filter_name(ctx.stack))
    return next((f for f in (got or {}).get("metricFilters", []) if f["filterName"] == filter_name(ctx.stack)), None)


# --- ensure -------------------------------------------------------------------

def ensure(ctx: Context) -> None:
    if not enabled(ctx.config):
        destroy(ctx)
        return
    sns, name = ctx.client("sns"), topic_name(ctx.stack)
    db, alarms, topic, metric_filter = together(
        ctx, database.lookup, _alarms, lambda c: alerts.find_topic(c, c.client("sns"), name, destroying=False),
        _filter)
    for alarm in alarms.values():
        if not is_ours(alarm["Tags"], ctx.stack):
            alerts.not_ours(ctx, f"CloudWatch alarm {alarm['AlarmName']} in {ctx.region}", destroying=False)
    if topic is None:
        created = ctx.change("create", f"SNS topic {name} ({ctx.region})", sns.create_topic, Name=name,
                             Tags=ctx.tag_list)
        topic = created["TopicArn"] if created else UNKNOWN
        policy = None
    else:
        text = sns.get_topic_attributes(TopicArn=topic)["Attributes"].get("Policy")
        policy = json.loads(text) if text else None
    alarms_arn = f"arn:aws:cloudwatch:{ctx.region}:{ctx.account_id}:alarm:{ctx.stack}-*"
    wanted_policy = topic_policy(topic, alarms_arn, ctx.account_id)
    if policy != wanted_policy:
        ctx.change("update", f"policy of SNS topic {name} (only CloudWatch, for the stack's alarms)",
                   sns.set_topic_attributes, TopicArn=topic, AttributeName="Policy",
                   AttributeValue=json.dumps(wanted_policy))
    alerts.ensure_subscription(ctx, sns, topic, name, ctx.config.alerts.email, (  # type: ignore[union-attr]
        "the API's health alarms", "An alarm mails when the API answers 5xx, the function fails or is "
        "throttled, answers slowly, or the database nears its connection limit."))
    _ensure_filter(ctx, metric_filter)
    wanted = wanted_alarms(ctx, db.instance_class)
    together(ctx, *(lambda c, n=n, w=w: _ensure_alarm(c, n, w, alarms.get(n), topic) for n, w in wanted.items()))
    for stale in sorted(alarms.keys() - wanted.keys()):
        ctx.change("delete", f"CloudWatch alarm {stale} (no longer wanted)", ctx.client("cloudwatch").delete_alarms,
                   AlarmNames=[stale])
    ctx.state.put(NAME, {"topic_arn": topic, "alarms": sorted(wanted)})
    ctx.outputs["Alarms"] = ", ".join(sorted(wanted))


def _ensure_filter(ctx: Context, current: dict | None) -> None:
    transformation = {"metricName": "InternalErrors", "metricNamespace": f"{NAMESPACE}/{ctx.stack}",
                      "metricValue": "1"}
    if current and current.get("filterPattern") == INTERNAL_PATTERN and [
            {k: t.get(k) for k in transformation} for t in current.get("metricTransformations", [])] == [
            transformation]:
        return
    ctx.change("update" if current else "create", f"metric filter {filter_name(ctx.stack)} on "
               f"{log_group_name(ctx.stack)} (internal errors)", ctx.client("logs").put_metric_filter,
               logGroupName=log_group_name(ctx.stack), filterName=filter_name(ctx.stack),
               filterPattern=INTERNAL_PATTERN, metricTransformations=[transformation])


def _owned(alarm: dict) -> dict:
    keys = ("Namespace", "MetricName", "Statistic", "ExtendedStatistic", "Threshold", "ComparisonOperator",
            "Period", "EvaluationPeriods", "TreatMissingData", "AlarmDescription", "AlarmActions")
    owned = {k: alarm.get(k) for k in keys if alarm.get(k) not in (None, [])}
    owned["Threshold"] = float(owned.get("Threshold") or 0)
    owned["Dimensions"] = sorted((d["Name"], d["Value"]) for d in alarm.get("Dimensions") or [])
    return owned


def _ensure_alarm(ctx: Context, name: str, wanted: dict, current: dict | None, topic: str) -> None:
    wanted = {**wanted, "AlarmActions": [topic]}
    if current is not None and _owned(current) == _owned(wanted):
        return
    extra: dict[str, Any] = {} if current is not None else {"Tags": ctx.tag_list}  # ignored on an update
    ctx.change("update" if current else "create", f"CloudWatch alarm {name}",
               ctx.client("cloudwatch").put_metric_alarm, AlarmName=name, ActionsEnabled=True, **wanted, **extra)


# --- destroy ------------------------------------------------------------------

def destroy(ctx: Context) -> None:
    """The alarms, the metric filter and the topic (subscriptions first), each only if ours, at once."""
    alarms, topic, metric_filter = together(
        ctx, _alarms, lambda c: alerts.find_topic(c, c.client("sns"), topic_name(c.stack), destroying=True), _filter)
    mine = sorted(n for n, a in alarms.items() if is_ours(a["Tags"], ctx.stack))
    for other in sorted(alarms.keys() - set(mine)):
        alerts.not_ours(ctx, f"CloudWatch alarm {other} ({as_dict(alarms[other]['Tags'])})", destroying=True)
    parts = []
    if mine:
        parts.append(lambda c: c.change("delete", f"CloudWatch alarms {', '.join(mine)}",
                                        c.client("cloudwatch").delete_alarms, AlarmNames=mine))
    if metric_filter is not None:
        parts.append(lambda c: c.change("delete", f"metric filter {filter_name(c.stack)}",
                                        c.client("logs").delete_metric_filter, logGroupName=log_group_name(c.stack),
                                        filterName=filter_name(c.stack)))
    if topic is not None:
        parts.append(lambda c: alerts.remove_topic(c, c.client("sns"), topic, topic_name(c.stack)))
    together(ctx, *parts)
    ctx.state.drop(NAME)


def in_alarm(ctx: Context) -> tuple[list[str], list[str]]:
    """(the stack's alarms, those in ALARM now), read from CloudWatch, for verify."""
    alarms = _alarms(ctx)
    mine = sorted(n for n, a in alarms.items() if is_ours(a["Tags"], ctx.stack))
    return mine, [n for n in mine if alarms[n].get("StateValue") == "ALARM"]


# --- the step, declared (provision/registry.py) ---------------------------------

def inventory(config: Config) -> list[str]:
    """The stack's alarms and health topic (by tag) and the topic's subscriptions and the metric filter (by
    name), read back with plain boto3 in the stack's region."""
    stack, region = config.stack.name, config.stack.region
    cloudwatch, sns = boto3.client("cloudwatch", region_name=region), boto3.client("sns", region_name=region)
    logs = boto3.client("logs", region_name=region)
    found = [f"alarm {a['AlarmName']}" for a in cloudwatch.describe_alarms()["MetricAlarms"]
             if is_ours(cloudwatch.list_tags_for_resource(ResourceARN=a["AlarmArn"])["Tags"], stack)]
    found += [f"sns topic {t['TopicArn'].rsplit(':', 1)[1]}" for t in sns.list_topics()["Topics"]
              if t["TopicArn"].endswith(f":{topic_name(stack)}")
              and is_ours(sns.list_tags_for_resource(ResourceArn=t["TopicArn"])["Tags"], stack)]
    found += [f"subscription {s['Protocol']} {s['Endpoint']} to {topic_name(stack)}"
              for s in sns.list_subscriptions()["Subscriptions"]
              if s["TopicArn"].endswith(f":{topic_name(stack)}")]
    found += [f"metric filter {f['filterName']}" for f in logs.describe_metric_filters()["metricFilters"]
              if f["filterName"] == filter_name(stack)]
    return found


def _alarm_arns(names: Names, action: str) -> list[str]:
    return [names.arn("cloudwatch", names.config.stack.region, f"alarm:{names.config.stack.name}-*")]


def _topic_arns(names: Names, action: str) -> list[str]:
    return [names.arn("sns", names.config.stack.region, topic_name(names.config.stack.name))]


BEYOND = (
    alerts.TOPIC_TAGGED,
    Beyond("cloudwatch", "PutMetricAlarm", ("cloudwatch:TagResource",),
           "CloudWatch API reference, PutMetricAlarm (Tags): 'To be able to associate tags with the alarm when you "
           "create the alarm, you must have the cloudwatch:TagResource permission'"),
)


def leaves(config: Config, account: Account) -> list[str]:
    """With [alerts] health: the alarms (the connections one where the instance class's limit is known), the
    metric filter they watch, their topic and its subscription."""
    if config.alerts is None or not config.alerts.health:
        return []
    stack, known = config.stack.name, capacity.max_connections(account.instance_class) is not None
    return [*(f"alarm {alarm_name(stack, kind)}" for kind in KINDS if kind != "database-connections" or known),
            f"metric filter {filter_name(stack)}", f"sns topic {topic_name(stack)}",
            f"subscription email {config.alerts.email} to {topic_name(stack)}"]


STEP = Step(NAME, "Health alarms", ensure, destroy, needs=("function", "api"), loose=("api",),
            inventory=(inventory,), leaves=leaves, arns={"cloudwatch": _alarm_arns, "sns": _topic_arns},
            creates=("CreateTopic", "SetTopicAttributes", "Subscribe", "PutMetricFilter", "PutMetricAlarm"),
            removes=("DeleteAlarms", "DeleteMetricFilter", "Unsubscribe", "DeleteTopic"), beyond=BEYOND)
