"""Step "waf_logging": the web ACL's request log, in CloudWatch Logs in us-east-1.

WAF's metrics and sampled requests say how many were blocked; the log says
who (source IP, country, headers, the rule that decided) for every request.
- the log group ``aws-waf-logs-<stack>``, tagged, with the stack's log
  retention (``function.log_retention_days``);
- the web ACL's logging configuration, sending to that group, with the
  ``authorization`` header redacted.

Pitfalls:
- WAF delivers to CloudWatch Logs only into groups named ``aws-waf-logs-*``,
  in the ACL's region (us-east-1 for scope CLOUDFRONT); it adds the account's
  log-delivery resource policy itself on the first PutLoggingConfiguration.
- The Authorization header is the secret that lets callers through: without
  ``RedactedFields`` every allowed request would write it into the log.
- The destination is the group ARN without the ``:*`` that DescribeLogGroups
  appends.
- Teardown runs this step's destroy before the waf step's (reverse order),
  so the ACL is still there to be found by name when the state is gone; its
  logging configuration is removed only if it sends to this stack's group.
- The ACL is the waf step's: an early ``observe`` reads the logging of the
  ACL the last run recorded (a hint, beside the group's lookups), and ensure
  reads it again if the waf step now names another. The group and the logging
  configuration are this step's alone (``sees_needs=False``): a change the waf
  step makes to the ACL in place leaves them as observe saw them.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..aws import log_groups
from ..aws_errors import WAF_NONEXISTENT_ITEM_EXCEPTION
from ..config import Config
from ..context import EDGE_REGION, UNKNOWN, Context
from ..errors import or_none
from ..registry import Account, Beyond, Names, Step
from ..together import together
from .waf import NAME as WAF_STEP, SCOPE, acl_name

NAME = "waf_logging"
REDACTED = [{"SingleHeader": {"Name": "authorization"}}]


def log_group_name(stack: str) -> str:
    return f"aws-waf-logs-{stack}"


def _comparable(config: dict | None) -> dict | None:
    if config is None:
        return None
    return {"ResourceArn": config.get("ResourceArn"), "LogDestinationConfigs": config.get("LogDestinationConfigs"),
            "RedactedFields": config.get("RedactedFields") or [], "LogType": config.get("LogType", "WAF_LOGS"),
            "LogScope": config.get("LogScope", "CUSTOMER"), "LoggingFilter": config.get("LoggingFilter")}


@dataclass
class Seen:
    """What observe read: the group, and the logging configuration of the ACL named by acl_arn."""
    group: log_groups.Seen
    acl_arn: str | None
    logging: dict | None


def observe(ctx: Context) -> Seen:
    """The group and its tags, and the logging of the ACL the last run recorded (a hint), at once."""
    return _observe(ctx, ctx.state.earlier(WAF_STEP).get("web_acl_arn"))


def _observe(ctx: Context, acl_arn: str | None) -> Seen:
    group, logging = together(
        ctx, lambda c: log_groups.observe(c, c.edge("logs"), log_group_name(c.stack)),
        lambda c: _logging(c, acl_arn))
    return Seen(group, acl_arn, logging)


def _logging(ctx: Context, acl_arn: str | None) -> dict | None:
    if acl_arn in (None, UNKNOWN):  # UNKNOWN: the ACL is only planned
        return None
    found = or_none(ctx.edge("wafv2").get_logging_configuration, WAF_NONEXISTENT_ITEM_EXCEPTION, ResourceArn=acl_arn)
    return found and found["LoggingConfiguration"]


def ensure(ctx: Context, seen: Seen | None = None) -> None:
    waf = ctx.edge("wafv2")
    acl_arn = _acl_arn(ctx) or UNKNOWN  # UNKNOWN: the ACL is only planned
    if seen is None:
        seen = _observe(ctx, acl_arn)
    elif seen.acl_arn != acl_arn:  # the hint was another ACL's
        seen = Seen(seen.group, acl_arn, _logging(ctx, acl_arn))
    logs, name = ctx.edge("logs"), log_group_name(ctx.stack)
    group = log_groups.made(ctx, logs, name, " in us-east-1", seen.group)
    group_arn = log_groups.group_arn(group) if group else UNKNOWN
    wanted = {"ResourceArn": acl_arn, "LogDestinationConfigs": [group_arn], "RedactedFields": REDACTED}
    current = seen.logging

    def logging(c: Context) -> None:  # after the group is made: the configuration names it
        if _comparable(current) != _comparable(wanted):
            c.change("update" if current else "create",
                     f"logging of web ACL {c.stack} to {name} (authorization header redacted)",
                     waf.put_logging_configuration, LoggingConfiguration=wanted)

    together(ctx, lambda c: log_groups.kept(c, logs, name, group, seen.group), logging)
    ctx.state.put(NAME, {"log_group": log_group_name(ctx.stack), "log_group_arn": group_arn})
    ctx.outputs["WAF log group"] = f"{log_group_name(ctx.stack)} (us-east-1)" if group else UNKNOWN


def _acl_arn(ctx: Context) -> str | None:
    """The stack's web ACL: from the waf step's state, else by its name (unique per scope)."""
    known = ctx.state.get(WAF_STEP).get("web_acl_arn")
    if known:
        return known
    waf, name, marker = ctx.edge("wafv2"), acl_name(ctx.stack), None
    while True:
        page = waf.list_web_acls(Scope=SCOPE, Limit=100, **({"NextMarker": marker} if marker else {}))
        found = next((a["ARN"] for a in page.get("WebACLs", []) if a["Name"] == name), None)
        marker = page.get("NextMarker")
        if found or not marker or not page.get("WebACLs"):
            return found


def _sends_to_our_group(ctx: Context, config: dict) -> bool:
    """Judged by the destination's name, so a group deleted by an interrupted teardown still counts."""
    suffix = f":log-group:{log_group_name(ctx.stack)}"
    return any(d.removesuffix(":*").endswith(suffix) for d in config.get("LogDestinationConfigs", []))


def destroy(ctx: Context) -> None:
    """The logging configuration first (it names the group), then the group, if it is ours."""
    waf, logs = ctx.edge("wafv2"), ctx.edge("logs")
    acl_arn = _acl_arn(ctx)
    seen = _observe(ctx, acl_arn)
    if seen.logging and _sends_to_our_group(ctx, seen.logging):
        ctx.change("delete", f"logging of web ACL {acl_name(ctx.stack)}", waf.delete_logging_configuration,
                   ResourceArn=acl_arn)
    log_groups.destroy(ctx, logs, log_group_name(ctx.stack), seen=seen.group)


# --- the step, declared (provision/registry.py) ---------------------------------



def _log_group_arns(names: Names, action: str) -> list[str]:
    return log_groups.arns(names, action, EDGE_REGION, log_group_name(names.config.stack.name))


BEYOND = (
    Beyond("wafv2", "PutLoggingConfiguration", ("logs:CreateLogDelivery", "logs:PutResourcePolicy",
                                                "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"),
           "AWS WAF developer guide, 'Sending web ACL traffic logs to an Amazon CloudWatch Logs log group': "
           "permissions required to enable logging"),
    Beyond("wafv2", "DeleteLoggingConfiguration", ("logs:DeleteLogDelivery",),
           "AWS WAF developer guide, logging permissions: disabling CloudWatch Logs delivery"),
    log_groups.LOG_GROUP_TAGGED,
)


def leaves(config: Config, account: Account) -> list[str]:
    return [f"log group {log_group_name(config.stack.name)}"]


STEP = Step(NAME, "WAF logging", ensure, destroy, needs=("waf",), observe=observe, sees_needs=False,
            inventory=(log_groups.inventory,), leaves=leaves, arns={"logs": _log_group_arns},
            creates=("CreateLogGroup", "PutLoggingConfiguration"),
            removes=("DeleteLoggingConfiguration",), beyond=BEYOND)
