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
"""
from __future__ import annotations

from .waf import SCOPE, acl_name
from .waf import STEP as WAF_STEP
from ..context import UNKNOWN
from ..errors import or_none
from ..tags import is_ours

STEP = "waf_logging"
REDACTED = [{"SingleHeader": {"Name": "authorization"}}]


def log_group_name(stack: str) -> str:
    return f"aws-waf-logs-{stack}"


def _group_arn(group: dict) -> str:
    return group["arn"].removesuffix(":*")


def _find_group(ctx) -> dict | None:
    name = log_group_name(ctx.stack)
    groups = ctx.edge("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return next((g for g in groups if g["logGroupName"] == name), None)


def _ensure_group(ctx) -> str:
    """The log group, created or brought to our tags and retention; its ARN (UNKNOWN if planned)."""
    logs, name = ctx.edge("logs"), log_group_name(ctx.stack)
    days = ctx.config.function.log_retention_days
    group = _find_group(ctx)
    if group is None:
        ctx.change("create", f"log group {name} in us-east-1 ({days} days)", logs.create_log_group,
                   logGroupName=name, tags=ctx.tags)
        group = _find_group(ctx) if not ctx.planning else None
    elif not is_ours(logs.list_tags_for_resource(resourceArn=_group_arn(group))["tags"], ctx.stack):
        ctx.change("update", f"tags of log group {name}", logs.tag_resource, resourceArn=_group_arn(group),
                   tags=ctx.tags)
    if group is None or group.get("retentionInDays") != days:
        ctx.change("update", f"retention of {name}: {days} days", logs.put_retention_policy,
                   logGroupName=name, retentionInDays=days)
    return _group_arn(group) if group else UNKNOWN


def _comparable(config: dict | None) -> dict | None:
    if config is None:
        return None
    return {"ResourceArn": config.get("ResourceArn"), "LogDestinationConfigs": config.get("LogDestinationConfigs"),
            "RedactedFields": config.get("RedactedFields") or [], "LogType": config.get("LogType", "WAF_LOGS"),
            "LogScope": config.get("LogScope", "CUSTOMER"), "LoggingFilter": config.get("LoggingFilter")}


def ensure(ctx) -> None:
    waf = ctx.edge("wafv2")
    group_arn = _ensure_group(ctx)
    acl_arn = _acl_arn(ctx) or UNKNOWN  # UNKNOWN: the ACL is only planned
    wanted = {"ResourceArn": acl_arn, "LogDestinationConfigs": [group_arn], "RedactedFields": REDACTED}
    current = None
    if acl_arn != UNKNOWN:
        found = or_none(waf.get_logging_configuration, "WAFNonexistentItemException", ResourceArn=acl_arn)
        current = found and found["LoggingConfiguration"]
    if _comparable(current) != _comparable(wanted):
        ctx.change("update" if current else "create",
                   f"logging of web ACL {ctx.stack} to {log_group_name(ctx.stack)} (authorization header redacted)",
                   waf.put_logging_configuration, LoggingConfiguration=wanted)
    ctx.state.put(STEP, {"log_group": log_group_name(ctx.stack), "log_group_arn": group_arn})
    ctx.outputs["WAF log group"] = f"{log_group_name(ctx.stack)} (us-east-1)"


def _acl_arn(ctx) -> str | None:
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


def _sends_to_our_group(ctx, config: dict) -> bool:
    """Judged by the destination's name, so a group deleted by an interrupted teardown still counts."""
    suffix = f":log-group:{log_group_name(ctx.stack)}"
    return any(d.removesuffix(":*").endswith(suffix) for d in config.get("LogDestinationConfigs", []))


def destroy(ctx) -> None:
    """The logging configuration first (it names the group), then the group, if it is ours."""
    waf, logs = ctx.edge("wafv2"), ctx.edge("logs")
    acl_arn = _acl_arn(ctx)
    found = acl_arn and or_none(waf.get_logging_configuration, "WAFNonexistentItemException", ResourceArn=acl_arn)
    if found and _sends_to_our_group(ctx, found["LoggingConfiguration"]):
        ctx.change("delete", f"logging of web ACL {acl_name(ctx.stack)}", waf.delete_logging_configuration,
                   ResourceArn=acl_arn)
    group = _find_group(ctx)
    if group is None:
        return
    if not is_ours(logs.list_tags_for_resource(resourceArn=_group_arn(group))["tags"], ctx.stack):
        ctx.out.note(f"Leaving log group {group['logGroupName']}: it is not tagged as this stack's")
        return
    ctx.change("delete", f"log group {group['logGroupName']}", logs.delete_log_group,
               logGroupName=group["logGroupName"])
