"""Step "alerts" (``[alerts] email``): ACM's warnings about the certificate, mailed to the operator.

An email-validated certificate lapses if nobody approves its renewal; any
certificate can fail to renew. ACM says so through EventBridge, in the
certificate's region (us-east-1), so this step builds there:
- the SNS topic ``<stack>-certificate-alerts``, tagged, whose policy lets only
  EventBridge publish, and only for the rule below (``aws:SourceArn``);
- an email subscription of ``[alerts] email`` to it;
- the EventBridge rule ``<stack>-certificate-alerts``, tagged, matching source
  ``aws.acm``, the detail-types ``ACM Certificate Approaching Expiration``
  (daily from 45 days before expiry), ``ACM Certificate Renewal Action
  Required`` and ``ACM Certificate Expired``, resources = the certificate's
  ARN; its one target is the topic.

Pitfalls:
- AWS mails a confirmation link to the address first: until it is opened the
  subscription is "PendingConfirmation" and nothing is delivered.
- A pending subscription cannot be unsubscribed (it has no ARN yet); AWS drops
  it unconfirmed after a few days. A changed address therefore subscribes the
  new one and unsubscribes the old one only once it is confirmed.
- A topic policy replaces SNS's default one (which lets the owning account
  publish): ours names EventBridge only.
- The rule names the certificate: a replaced certificate updates the rule.
- Without ``[alerts]`` this step removes what an earlier config made.
- Rule and topic get their tags in the creating call: a same-named one
  without them is someone else's, and deploy stops rather than take it over.
"""
from __future__ import annotations

import json
from typing import Any

import boto3

from ..aws_errors import RESOURCE_NOT_FOUND_EXCEPTION
from ..config import Config
from ..context import EDGE_REGION, UNKNOWN, Context
from ..errors import DeployError, or_none
from ..registry import Account, Beyond, Names, OnlyWhen, Step
from ..tags import as_dict, is_ours
from ..together import together

NAME = "alerts"
TARGET_ID = "certificate-alerts-topic"
PENDING = "PendingConfirmation"
DETAIL_TYPES = ("ACM Certificate Approaching Expiration", "ACM Certificate Renewal Action Required",
                "ACM Certificate Expired")


def name(stack: str) -> str:
    return f"{stack}-certificate-alerts"


def event_pattern(certificate_arn: str) -> dict:
    return {"source": ["aws.acm"], "detail-type": list(DETAIL_TYPES), "resources": [certificate_arn]}


def topic_policy(topic_arn: str, rule_arn: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "EventBridgeRulePublishes",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
        }],
    }


# --- finding ------------------------------------------------------------------

def _find_topic(ctx: Context, destroying: bool) -> str | None:
    return find_topic(ctx, ctx.edge("sns"), name(ctx.stack), destroying)


def find_topic(ctx: Context, sns, topic_name: str, destroying: bool) -> str | None:
    """The ARN of the topic of that name, if it is this stack's.

    CreateTopic sets the tags in the same call, so a same-named topic without them is someone
    else's: ensure stops, destroy leaves it alone.
    """
    suffix = f":{topic_name}"
    arns = [t["TopicArn"] for page in sns.get_paginator("list_topics").paginate() for t in page["Topics"]
            if t["TopicArn"].endswith(suffix)]
    for arn in arns:
        if is_ours(sns.list_tags_for_resource(ResourceArn=arn)["Tags"], ctx.stack):
            return arn
        not_ours(ctx, f"SNS topic {arn}", destroying)
    return None


def not_ours(ctx: Context, what: str, destroying: bool) -> None:
    if destroying:
        ctx.out.note(f"Leaving {what}: it is not tagged as this stack's")
        return
    raise DeployError(f"{what} exists but is not tagged as stack {ctx.stack}'s; delete or rename it, "
                      "or choose another stack name")


def _find_rule(ctx: Context) -> dict | None:
    events = ctx.edge("events")
    rule = or_none(events.describe_rule, RESOURCE_NOT_FOUND_EXCEPTION, Name=name(ctx.stack))
    if rule is None:
        return None
    rule["Tags"] = as_dict(events.list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"])
    return rule


def subscriptions(sns, topic_arn: str) -> list[dict]:
    pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
    return [s for page in pages for s in page["Subscriptions"]]


# --- ensure -------------------------------------------------------------------

def ensure(ctx: Context) -> None:
    if ctx.config.alerts is None:
        destroy(ctx)
        return
    rule, topic = together(ctx, _find_rule, lambda c: _find_topic(c, destroying=False))  # both checked before any change
    if rule is not None and not is_ours(rule["Tags"], ctx.stack):
        not_ours(ctx, f"EventBridge rule {name(ctx.stack)} in us-east-1", destroying=False)  # PutRule tags in the same call
    rule_arn = _ensure_rule(ctx, rule)
    topic_arn = _ensure_topic(ctx, topic, rule_arn)
    _ensure_target(ctx, topic_arn)
    _ensure_subscription(ctx, topic_arn, ctx.config.alerts.email)
    ctx.state.put(NAME, {"rule_arn": rule_arn, "topic_arn": topic_arn, "email": ctx.config.alerts.email})


def _rule_arn(ctx: Context) -> str:
    return f"arn:aws:events:{EDGE_REGION}:{ctx.account_id}:rule/{name(ctx.stack)}"


def _ensure_rule(ctx: Context, rule: dict | None) -> str:
    events, rule_name = ctx.edge("events"), name(ctx.stack)
    certificate_arn = ctx.state.get("certificate").get("arn", UNKNOWN)
    wanted: dict[str, Any] = {"Name": rule_name, "EventPattern": json.dumps(event_pattern(certificate_arn)), "State": "ENABLED",
              "Description": f"rds-edge-api stack {ctx.stack}: ACM's warnings about the API's certificate"}
    if rule is None:
        created = ctx.change("create", f"EventBridge rule {rule_name} (ACM expiry and renewal events)",
                             events.put_rule, Tags=ctx.tag_list, **wanted)
        return created["RuleArn"] if created else _rule_arn(ctx)
    if (json.loads(rule.get("EventPattern") or "{}") != event_pattern(certificate_arn)
            or rule.get("State") != "ENABLED"):
        ctx.change("update", f"EventBridge rule {rule_name} (for certificate {certificate_arn})", events.put_rule,
                   **wanted)
    return rule["Arn"]


def _ensure_topic(ctx: Context, arn: str | None, rule_arn: str) -> str:
    sns, topic_name = ctx.edge("sns"), name(ctx.stack)
    current = None
    if arn is None:
        created = ctx.change("create", f"SNS topic {topic_name}", sns.create_topic, Name=topic_name,
                             Tags=ctx.tag_list)
        arn = created["TopicArn"] if created else UNKNOWN
    else:
        policy = sns.get_topic_attributes(TopicArn=arn)["Attributes"].get("Policy")
        current = json.loads(policy) if policy else None
    wanted = topic_policy(arn, rule_arn)
    if current != wanted:
        ctx.change("update", f"policy of SNS topic {topic_name} (only EventBridge, for rule {name(ctx.stack)})",
                   sns.set_topic_attributes, TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(wanted))
    return arn


def _ensure_target(ctx: Context, topic_arn: str) -> None:
    events, rule_name = ctx.edge("events"), name(ctx.stack)
    listed = or_none(events.list_targets_by_rule, RESOURCE_NOT_FOUND_EXCEPTION, Rule=rule_name)  # none: planned
    targets = listed["Targets"] if listed else []
    if [(t["Id"], t["Arn"]) for t in targets] == [(TARGET_ID, topic_arn)]:
        return
    stale = [t["Id"] for t in targets if t["Id"] != TARGET_ID]
    if stale:
        ctx.change("update", f"remove other targets of EventBridge rule {rule_name}", events.remove_targets,
                   Rule=rule_name, Ids=stale)
    ctx.change("update", f"target of EventBridge rule {rule_name}: SNS topic {name(ctx.stack)}", events.put_targets,
               Rule=rule_name, Targets=[{"Id": TARGET_ID, "Arn": topic_arn}])


def _ensure_subscription(ctx: Context, topic_arn: str, email: str) -> None:
    ensure_subscription(ctx, ctx.edge("sns"), topic_arn, name(ctx.stack), email, (
        "the certificate alerts", "Alerts come 45 days before the certificate expires, when a renewal needs "
        "action, and if it expires."))


def ensure_subscription(ctx: Context, sns, topic_arn: str, topic_name: str, email: str,
                        what: tuple[str, str]) -> None:
    """The one email subscription of the topic: the address subscribed, any other confirmed one removed.
    what: (what is mailed, when it is mailed), for the operator's notice."""
    found = [] if topic_arn == UNKNOWN else subscriptions(sns, topic_arn)
    mine = [s for s in found if s["Protocol"] == "email" and s["Endpoint"].lower() == email.lower()]
    if not mine:
        ctx.change("create", f"email subscription of {email} to SNS topic {topic_name}", sns.subscribe,
                   TopicArn=topic_arn, Protocol="email", Endpoint=email)
        ctx.out.notice(f"Confirm {what[0]} for {email}",
                       f"AWS mails a confirmation link to {email} (from no-reply@sns.amazonaws.com, subject "
                       "\"AWS Notification - Subscription Confirmation\"). Open it: until then no alert is "
                       f"delivered. {what[1]}")
    elif mine[0]["SubscriptionArn"] == PENDING:
        ctx.out.note(f"The alert subscription of {email} to {topic_name} waits for its confirmation: open the link "
                     "AWS mailed there")
    for other in found:
        if other in mine:
            continue
        if other["SubscriptionArn"] == PENDING:
            ctx.out.note(f"The unconfirmed subscription of {other['Endpoint']} cannot be removed; AWS drops it "
                         "within days")
            continue
        ctx.change("delete", f"subscription of {other['Endpoint']} to SNS topic {topic_name}",
                   sns.unsubscribe, SubscriptionArn=other["SubscriptionArn"])


def remove_topic(ctx: Context, sns, topic_arn: str, topic_name: str) -> None:
    """The topic's confirmed subscriptions (a pending one has no ARN to remove), then the topic."""
    for subscription in subscriptions(sns, topic_arn):
        if subscription["SubscriptionArn"] != PENDING:
            ctx.change("delete", f"subscription of {subscription['Endpoint']} to SNS topic {topic_name}",
                       sns.unsubscribe, SubscriptionArn=subscription["SubscriptionArn"])
    ctx.change("delete", f"SNS topic {topic_name}", sns.delete_topic, TopicArn=topic_arn)


# --- destroy ------------------------------------------------------------------

def destroy(ctx: Context) -> None:
    """Rule (targets first), then the topic's confirmed subscriptions and the topic: each only if ours."""
    events, sns, rule_name = ctx.edge("events"), ctx.edge("sns"), name(ctx.stack)
    rule, topic_arn = together(ctx, _find_rule, lambda c: _find_topic(c, destroying=True))  # both looked for at once
    if rule is not None and not is_ours(rule["Tags"], ctx.stack):
        not_ours(ctx, f"EventBridge rule {rule_name} in us-east-1", destroying=True)
    elif rule is not None:
        targets = [t["Id"] for t in events.list_targets_by_rule(Rule=rule_name)["Targets"]]
        if targets:
            ctx.change("update", f"remove targets of EventBridge rule {rule_name}", events.remove_targets,
                       Rule=rule_name, Ids=targets)
        ctx.change("delete", f"EventBridge rule {rule_name}", events.delete_rule, Name=rule_name)
    if topic_arn is not None:
        remove_topic(ctx, sns, topic_arn, name(ctx.stack))


# --- the step, declared (provision/registry.py) ---------------------------------



def inventory(config: Config) -> list[str]:
    """The stack's EventBridge rule and SNS topic (by tag) and the topic's subscriptions (untaggable: by the
    topic's name), read back with plain boto3 in us-east-1, where ACM's events for CloudFront's certificate are."""
    stack = config.stack.name
    events, sns = boto3.client("events", region_name=EDGE_REGION), boto3.client("sns", region_name=EDGE_REGION)
    return ([f"eventbridge rule {rule['Name']}" for rule in events.list_rules()["Rules"]
             if is_ours(events.list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"], stack)]
            + [f"sns topic {topic['TopicArn'].rsplit(':', 1)[1]}" for topic in sns.list_topics()["Topics"]
               if is_ours(sns.list_tags_for_resource(ResourceArn=topic["TopicArn"])["Tags"], stack)]
            + [f"subscription {s['Protocol']} {s['Endpoint']}" for s in sns.list_subscriptions()["Subscriptions"]
               if s["TopicArn"].endswith(f":{name(stack)}")])


def _topic_arns(names: Names, action: str) -> list[str]:  # the one topic, exactly
    return [names.arn("sns", EDGE_REGION, name(names.config.stack.name))]


def _rule_arns(names: Names, action: str) -> list[str]:
    return [names.arn("events", EDGE_REGION, f"rule/{name(names.config.stack.name)}")]


TOPIC_TAGGED = Beyond("sns", "CreateTopic", ("sns:TagResource",),
                      "SNS API reference, CreateTopic: 'To be able to tag a topic on creation, you must have the "
                      "sns:CreateTopic and sns:TagResource permissions'")
BEYOND = (
    TOPIC_TAGGED,
    Beyond("events", "PutRule", ("events:TagResource",),
           "EventBridge API reference, PutRule (Tags): 'If you are using ... Tags, you must have the "
           "events:TagResource permission' (EventBridge user guide, tag-on-create)"),
)
ALERT_CREATES = ("the alerts step creates and updates its rule, topic and subscription only with [alerts]; "
                 "without it, it only finds and deletes them")
ONLY_WITH_ALERTS = {call: OnlyWhen(lambda cfg: cfg.alerts is not None, ALERT_CREATES)
                    for call in (("sns", "CreateTopic"), ("sns", "SetTopicAttributes"), ("sns", "Subscribe"),
                                 ("events", "PutRule"), ("events", "PutTargets"))}


def leaves(config: Config, account: Account) -> list[str]:
    """With [alerts]: the rule on ACM's events, its topic and the address's subscription."""
    if config.alerts is None:
        return []
    return [f"eventbridge rule {name(config.stack.name)}", f"sns topic {name(config.stack.name)}",
            f"subscription email {config.alerts.email}"]


STEP = Step(NAME, "Certificate alerts", ensure, destroy, needs=("certificate",),
            inventory=(inventory,), leaves=leaves, arns={"sns": _topic_arns, "events": _rule_arns},
            creates=("PutRule", "CreateTopic", "SetTopicAttributes", "PutTargets", "Subscribe"),
            removes=("RemoveTargets", "DeleteRule", "Unsubscribe", "DeleteTopic"), beyond=BEYOND, only_when=ONLY_WITH_ALERTS)
