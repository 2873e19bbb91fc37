"""A CloudWatch Logs group of the stack's: the function's (stack region) and WAF's (us-east-1).

Found by its exact name (a prefix search also returns longer names), created
with the stack's tags, held to [function] log_retention_days (a group Lambda or
WAF made itself would never expire), and removed only when tagged as ours.
"""
from __future__ import annotations

from dataclasses import dataclass

import boto3

from ..aws_errors import RESOURCE_NOT_FOUND_EXCEPTION
from ..config import Config
from ..context import Context
from ..errors import or_none
from ..registry import Beyond, Names
from ..tags import is_ours
from ..together import together
from .arns import partition


def group_arn(group: dict) -> str:
    """The group's ARN as the tagging calls take it (DescribeLogGroups adds ':*')."""
    return group["arn"].removesuffix(":*")


def find(logs, name: str) -> dict | None:
    groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return next((g for g in groups if g["logGroupName"] == name), None)


@dataclass(frozen=True)
class Seen:
    """A group as observed: None when there is none; its tags (read only when there is one)."""
    group: dict | None
    tags: list | dict | None = None


def observe(ctx: Context, logs, name: str) -> Seen:
    """The group and its tags, read at once: the tags by the ARN its name makes (CloudWatch Logs ARNs
    are arn:<partition>:logs:<region>:<account>:log-group:<name>), not the one DescribeLogGroups answers."""
    arn = _arn(ctx, logs, name)
    group, tags = together(ctx, lambda c: find(logs, name),
                           lambda c: or_none(logs.list_tags_for_resource, RESOURCE_NOT_FOUND_EXCEPTION, resourceArn=arn))
    return Seen(group, tags["tags"] if group and tags else None)


def _arn(ctx: Context, logs, name: str) -> str:
    region = logs.meta.region_name
    return f"arn:{partition(region)}:logs:{region}:{ctx.account_id}:log-group:{name}"


def ensure(ctx: Context, logs, name: str, where: str = "", seen: Seen | None = None) -> dict | None:
    """The group, created or brought to our tags and retention; None when it is only planned.
    seen: what an observe found (None: look now)."""
    seen = seen or observe(ctx, logs, name)
    group = made(ctx, logs, name, where, seen)
    kept(ctx, logs, name, group, seen)
    return group


def made(ctx: Context, logs, name: str, where: str, seen: Seen) -> dict | None:
    """The group as seen, or created (what DescribeLogGroups would answer for it, without asking); None
    when only planned. ``kept`` then brings it to our tags and retention: a caller may send what needs
    the group to exist beside that."""
    if seen.group is not None:
        return seen.group
    days = ctx.config.function.log_retention_days
    ctx.change("create", f"log group {name}{where} ({days} days)", logs.create_log_group,
               logGroupName=name, tags=ctx.tags, find=lambda: find(logs, name))
    return None if ctx.planning else {"logGroupName": name, "arn": _arn(ctx, logs, name) + ":*"}


def kept(ctx: Context, logs, name: str, group: dict | None, seen: Seen) -> None:
    """The group made or seen (``made``) held to our tags (one just created has them) and retention."""
    days = ctx.config.function.log_retention_days
    if seen.group is not None and not is_ours(seen.tags, ctx.stack):
        ctx.change("update", f"tags of log group {name}", logs.tag_resource, resourceArn=group_arn(seen.group),
                   tags=ctx.tags)
    if group is None or group.get("retentionInDays") != days:
        ctx.change("update", f"retention of {name}: {days} days", logs.put_retention_policy,
                   logGroupName=name, retentionInDays=days)


def destroy(ctx: Context, logs, name: str, seen: Seen | None = None) -> None:
    seen = seen or observe(ctx, logs, name)
    if seen.group is None:
        return
    if not is_ours(seen.tags, ctx.stack):
        ctx.out.note(f"Leaving log group {name}: it is not tagged as this stack's")
        return
    ctx.change("delete", f"log group {name}", logs.delete_log_group, logGroupName=name)


# --- for the steps' OWNS (provision/registry.py): the function's and WAF logging's share these ----


def inventory(config: Config) -> list[str]:
    """Every log group tagged as the stack's, in every region it uses (WAF's is in us-east-1), read back
    with plain boto3: one lister for both steps' groups, so a stray group of another name is seen too."""
    found = []
    for region in config.regions:
        logs = boto3.client("logs", region_name=region)
        found += [f"log group {group['logGroupName']}" for group in logs.describe_log_groups()["logGroups"]
                  if is_ours(logs.list_tags_for_resource(resourceArn=group_arn(group))["tags"], config.stack.name)]
    return found


def arns(names: Names, action: str, region: str, name: str) -> list[str]:
    """A group's ARN as the policy grants it: the group, and its streams (':*'); none for the delivery
    actions (CloudFront's log delivery, cloudfront_logging.py), which act on the delivery parts only."""
    if "Delivery" in action:
        return []
    return [names.arn("logs", region, f"log-group:{name}{suffix}") for suffix in ("", ":*")]


LOG_GROUP_TAGGED = Beyond("logs", "CreateLogGroup", ("logs:TagResource", "logs:TagLogGroup"),
                          "CloudWatch Logs API reference, CreateLogGroup: 'To be able to tag a log group, you must have both the "
                          "logs:TagResource and logs:TagLogGroup permissions'")
