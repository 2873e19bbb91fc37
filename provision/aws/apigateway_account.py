"""API Gateway's account-wide CloudWatch Logs role (UpdateAccount cloudwatchRoleArn), one per region.

A REST API stage writes its access log through this one role of the account
and region; without it, UpdateStage refuses: "CloudWatch Logs role ARN must be
set in account settings to enable logging" (API Gateway developer guide, "Set
up CloudWatch logging for REST APIs"). It is shared with every other API of
the account in that region, so:
- it is set only when none is set; a role someone else set is used as it is;
- ownership is known by name and tag: the setting is the toolkit's only when
  it names the role ``rds-edge-api-apigateway-logs-<region>`` and that role is
  tagged managed-by=rds-edge-api (plus the stack that made it). The state
  file plays no part, so another stack, or a run without state, can release it;
- it is released (setting cleared, role deleted) only when it is the
  toolkit's and no other API in the region logs: a REST stage of an API not
  this stack's with an access log or execution logging, or a WebSocket stage
  likewise, keeps it. While it serves others, it stays, and teardown says so.

The role carries the toolkit's permissions boundary (provision/aws/boundary.py),
like every role the toolkit makes: the operator's policy may change it, never
past that boundary.

A new role takes seconds before API Gateway can assume it: UpdateAccount then
fails with "The role ARN does not have required permissions set to API
Gateway" (terraform-provider-aws internal/service/apigateway/account.go
retries on it, and on "... could not successfully write to CloudWatch Logs
using the ARN specified"); both are waited for, bounded.

Two stacks claiming or releasing it at once would each read "none set" or "no
other user" and act on it; so claim and release read the setting, the role and
its users again under the account's short lease on it (``lease.account_held``,
in the region's lease table), and change them under it.

UpdateAccount is under a fixed quota of 1 request every 20 seconds per
account ("Amazon API Gateway quotas", which says it cannot be increased):
two stacks claiming or releasing the setting at once are throttled, and
``waits.within_quota`` waits that out, as it does for the api step's calls.
"""
from __future__ import annotations

from contextlib import nullcontext

import boto3

from .. import lease, waits
from ..aws_errors import BAD_REQUEST_EXCEPTION, NO_SUCH_ENTITY
from ..config import Config
from ..context import UNKNOWN, Context
from ..errors import is_code, or_none
from ..registry import Names
from ..tags import MANAGED_BY, as_dict, is_ours
from . import boundary
from .arns import partition

ROLE_PREFIX = "rds-edge-api-apigateway-logs-"
LEASE = "apigateway-logging-role"  # the account lease its claims and releases are made under (lease.account_held)
# AWS's managed policy for exactly this role (API Gateway developer guide): the role serves every API of the
# region, execution logs too, so no narrower set of log groups could be named.
POLICY = "arn:{partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
TRUST = {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                        "Action": "sts:AssumeRole"}]}
PROPAGATION_TIMEOUT = 120.0
_KEPT = "(the toolkit's; kept while other APIs use it)"
NOT_YET = ("The role ARN does not have required permissions",
           "could not successfully write to CloudWatch Logs using the ARN specified")


def role_name(region: str) -> str:
    return f"{ROLE_PREFIX}{region}"


def _setting(ctx: Context) -> str:
    return ctx.client("apigateway").get_account().get("cloudwatchRoleArn") or ""


def _names_ours(ctx: Context, arn: str) -> bool:
    return arn.rsplit("/", 1)[-1] == role_name(ctx.region)


def _role(ctx: Context) -> dict | None:
    found = or_none(ctx.client("iam").get_role, NO_SUCH_ENTITY, RoleName=role_name(ctx.region))
    return found and found["Role"]


def _toolkits(ctx: Context, role: dict) -> bool:
    tags = role.get("Tags") or ctx.client("iam").list_role_tags(RoleName=role["RoleName"])["Tags"]
    return as_dict(tags).get("managed-by") == MANAGED_BY


def _held(ctx: Context, why: str):
    """The account's lease on the region's setting for the block; nothing when planning."""
    if ctx.planning:
        return nullcontext()
    return lease.account_held(ctx, ctx.region, LEASE, f"{why} API Gateway's CloudWatch Logs role in {ctx.region}")


def claim(ctx: Context) -> str:
    """Make sure the region's API Gateway has a CloudWatch role; the ARN it uses (UNKNOWN while planned).

    A setting found complete without the lease (the usual re-deploy) is kept without taking it: only a change
    is made under the lease, after reading everything again."""
    settled = None if ctx.planning else _settled(ctx)
    if settled is not None:
        arn, said = settled
        ctx.outputs["API Gateway logging role"] = said
        return arn
    with _held(ctx, "claim"):
        return _claim(ctx)


def _settled(ctx: Context) -> tuple[str, str] | None:
    """(the ARN in use, what to say of it) when claiming would change nothing, or None when it would."""
    current = _setting(ctx)
    if current and not _names_ours(ctx, current):
        return current, f"{current} (the account's own, left as set)"
    role = _role(ctx)
    if role is None or current != role["Arn"]:
        return None
    ceiling = boundary.arn(partition(ctx.region), ctx.account_id)
    if (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn") != ceiling:
        return None
    attached = ctx.client("iam").list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]
    if POLICY.format(partition=partition(ctx.region)) not in {p["PolicyArn"] for p in attached}:
        return None
    return role["Arn"], f"{role_name(ctx.region)} {_KEPT}"


def _claim(ctx: Context) -> str:
    current = _setting(ctx)
    if current and not _names_ours(ctx, current):
        ctx.outputs["API Gateway logging role"] = f"{current} (the account's own, left as set)"
        return current
    arn = _ensure_role(ctx)
    if current != arn:
        apigw = ctx.client("apigateway")
        ctx.change("update", f"API Gateway account setting in {ctx.region}: CloudWatch Logs role "
                             f"{role_name(ctx.region)} (none was set)", waits.retry_while, ctx,
                   f"IAM role {role_name(ctx.region)} to become usable by API Gateway",
                   lambda: waits.within_quota(ctx, apigw.update_account, patchOperations=[
                       {"op": "replace", "path": "/cloudwatchRoleArn", "value": arn}]),
                   _not_yet, timeout=PROPAGATION_TIMEOUT, interval=2, max_interval=10)
    ctx.outputs["API Gateway logging role"] = f"{role_name(ctx.region)} {_KEPT}" if arn != UNKNOWN else UNKNOWN
    return arn


def _not_yet(exc: BaseException) -> bool:
    return is_code(exc, BAD_REQUEST_EXCEPTION) and any(text in str(exc) for text in NOT_YET)


def _ensure_role(ctx: Context) -> str:
    iam, name = ctx.client("iam"), role_name(ctx.region)
    policy = POLICY.format(partition=partition(ctx.region))
    role = _role(ctx)
    ceiling = boundary.ensure(ctx, partition(ctx.region), boundary.observe(ctx, partition(ctx.region)))
    if role is None:
        arn = boundary.create_role(ctx, name, f"API Gateway's CloudWatch Logs role in {ctx.region}", TRUST, ceiling,
                                   f"rds-edge-api: API Gateway writes logs in {ctx.region} through this role "
                                   "(account-wide)")
    else:
        arn = role["Arn"]
        boundary.ensure_on(ctx, role, ceiling)
        attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
        if policy in attached:
            return arn
    ctx.change("update", f"attach {policy.rsplit('/', 1)[1]} to {name}", iam.attach_role_policy, RoleName=name,
               PolicyArn=policy)
    return arn


def release(ctx: Context) -> None:
    """Clear the setting and delete the role, when both are the toolkit's and no other API logs through it.

    With no role of the toolkit's there is nothing to release, so no lease is taken (a teardown of a stack that
    never logged makes no lease table); otherwise everything is read again under the lease."""
    role = _role(ctx)
    if role is None or not _toolkits(ctx, role):
        return
    with _held(ctx, "release"):
        _release(ctx)


def _release(ctx: Context) -> None:
    current, role = _setting(ctx), _role(ctx)
    if role is None or not _toolkits(ctx, role):
        return
    if _names_ours(ctx, current):
        users = other_users(ctx)
        if users:
            ctx.out.note(f"Keeping IAM role {role['RoleName']} and API Gateway's account setting in {ctx.region}: "
                         f"{len(users)} other API stage(s) log through it ({', '.join(users[:3])})")
            return
        ctx.change("update", f"API Gateway account setting in {ctx.region}: no CloudWatch Logs role",
                   waits.within_quota, ctx, ctx.client("apigateway").update_account,
                   patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": ""}])
    iam, name = ctx.client("iam"), role["RoleName"]
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        ctx.change("update", f"detach {attached['PolicyName']} from {name}", iam.detach_role_policy,
                   RoleName=name, PolicyArn=attached["PolicyArn"])
    ctx.change("delete", f"IAM role {name}", iam.delete_role, RoleName=name)


def other_users(ctx: Context) -> list[str]:
    """The stages, of APIs in the region that are not this stack's, that log through the account's role."""
    return [*_rest_users(ctx), *_websocket_users(ctx)]


def _rest_users(ctx: Context) -> list[str]:
    apigw, users = ctx.client("apigateway"), []
    for api in _pages(apigw, "get_rest_apis", "items"):
        if is_ours(api.get("tags"), ctx.stack):
            continue
        users += [f"{api['name']}/{stage['stageName']}" for stage in apigw.get_stages(restApiId=api["id"]).get("item", [])
                  if _rest_stage_logs(stage)]
    return users


def _rest_stage_logs(stage: dict) -> bool:
    """A REST stage writes an access log, or execution logs (a logging level or full request tracing) for
    any of its methods."""
    methods = [s or {} for s in (stage.get("methodSettings") or {}).values()]
    return bool((stage.get("accessLogSettings") or {}).get("destinationArn")
                or any(m.get("loggingLevel", "OFF") != "OFF" or m.get("dataTraceEnabled") for m in methods))


def _websocket_users(ctx: Context) -> list[str]:
    apigw2, users = ctx.client("apigatewayv2"), []
    for api in _pages(apigw2, "get_apis", "Items"):
        if api.get("ProtocolType") != "WEBSOCKET" or is_ours(api.get("Tags"), ctx.stack):
            continue
        users += [f"{api['Name']}/{stage['StageName']} (WebSocket)"
                  for stage in _pages(apigw2, "get_stages", "Items", ApiId=api["ApiId"]) if _websocket_stage_logs(stage)]
    return users


def _websocket_stage_logs(stage: dict) -> bool:
    """A WebSocket stage writes an access log, or execution logs by default or for any route."""
    routes = [stage.get("DefaultRouteSettings") or {}, *(stage.get("RouteSettings") or {}).values()]
    return bool((stage.get("AccessLogSettings") or {}).get("DestinationArn")
                or any(r.get("LoggingLevel", "OFF") != "OFF" or r.get("DataTraceEnabled") for r in routes))


def _pages(client, operation: str, key: str, **kwargs) -> list[dict]:
    return [item for page in client.get_paginator(operation).paginate(**kwargs) for item in page.get(key, [])]


# --- for api_access_log's OWNS (provision/registry.py) ---------------------------------


def inventory(config: Config) -> list[str]:
    """The toolkit's logging role set as API Gateway's account-wide CloudWatch role (a setting, not a
    taggable resource: by the role's name), read back with plain boto3 in every region the stack uses."""
    return [f"api gateway account logging role in {region}" for region in config.regions
            if "role/rds-edge-api-" in (boto3.client("apigateway", region_name=region).get_account()
                                        .get("cloudwatchRoleArn") or "")]


def role_arn(names: Names) -> str:
    """The region's logging role, as the policy grants it."""
    return names.arn("iam", "", f"role/{role_name(names.config.stack.region)}")


def arns(names: Names, action: str) -> list[str]:
    """The logging role for IAM's calls on it; iam:PassRole of it is API Gateway's (UpdateAccount: the policy
    grants it on its own, to apigateway.amazonaws.com only), not the function's."""
    return [] if action == "iam:PassRole" else [role_arn(names)]
