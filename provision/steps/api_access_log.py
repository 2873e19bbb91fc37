"""Step "api_access_log": the API stage's access log, one JSON object per request, in CloudWatch Logs.

Without it a call straight to the execute-api URL with the key leaves no
trace, and no record has the response status and latency (Prowler's
apigateway_restapi_logging_enabled). With [logs] api_access (the default):
- the log group ``/aws/apigateway/<stack>/access``, tagged, with the stack's
  retention (``function.log_retention_days``);
- the account's API Gateway CloudWatch Logs role (apigateway_account: set
  only if none is set, released only when nothing else uses it);
- the stage's access log settings, ``FORMAT`` below: the connecting address
  (CloudFront's edge for requests that came through it, the caller's own for
  a direct call), status, latencies, and the API key's *id*
  (``$context.identity.apiKeyId``; ``$context.identity.apiKey`` would be
  the key itself). No header and no query string: the key is never logged.
- the stage's execution logs at ERROR level, data trace off (``*/*`` method
  settings): an integration failure leaves its reason, never the request or
  response bodies (Prowler's apigateway_restapi_logging_enabled counts only
  execution logging). API Gateway writes them to
  ``API-Gateway-Execution-Logs_<api id>/<stage>``, a group it would create
  itself with no expiry and no tags: the step makes it first, tagged, with the
  stack's retention, and removes it at teardown.
``api_access = false`` removes the settings and the groups, and releases the role.

Pitfalls: the format must hold ``$context.requestId`` or
``$context.extendedRequestId`` (else UpdateStage refuses it), and the
destination is the group's ARN without the ``:*`` DescribeLogGroups adds.
"""
from __future__ import annotations

import json

from ..aws import apigateway_account, boundary, log_groups
from ..aws_errors import NOT_FOUND_EXCEPTION
from ..config import Config
from ..context import UNKNOWN, Context
from ..errors import or_none
from ..registry import Account, Beyond, Names, Step
from ..tags import is_ours
from ..together import together
from .api import NAME as API_STEP

NAME = "api_access_log"
# API Gateway's $context variables (developer guide, "Variables for access logging"); every value quoted, so a
# variable API Gateway leaves empty ("-") still makes valid JSON.
FIELDS = {
    "requestId": "$context.requestId", "extendedRequestId": "$context.extendedRequestId",
    "requestTimeEpoch": "$context.requestTimeEpoch", "ip": "$context.identity.sourceIp",
    "httpMethod": "$context.httpMethod", "resourcePath": "$context.resourcePath", "status": "$context.status",
    "protocol": "$context.protocol", "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency", "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integration.status", "apiKeyId": "$context.identity.apiKeyId",
    "userAgent": "$context.identity.userAgent", "error": "$context.error.message",
}
FORMAT = json.dumps(FIELDS, separators=(",", ":"))


EXECUTION_LEVEL = "ERROR"
EXECUTION_PREFIX = "API-Gateway-Execution-Logs_"


def log_group_name(stack: str) -> str:
    return f"/aws/apigateway/{stack}/access"


def execution_log_group_name(api_id: str, stage: str) -> str:
    """Where API Gateway writes a stage's execution logs (its own naming; developer guide, "Set up
    CloudWatch logging for REST APIs in API Gateway")."""
    return f"{EXECUTION_PREFIX}{api_id}/{stage}"


def _execution_group(ctx: Context) -> str | None:
    api_id = ctx.state.get(API_STEP).get("rest_api_id")
    return execution_log_group_name(api_id, ctx.config.api.stage) if api_id and api_id != UNKNOWN else None


def _stage(ctx: Context) -> tuple[str | None, dict | None]:
    """(API id, the stage as API Gateway has it); None for what does not exist yet."""
    api_id = ctx.state.get(API_STEP).get("rest_api_id")
    if not api_id or api_id == UNKNOWN:
        return None, None
    return api_id, or_none(ctx.client("apigateway").get_stage, NOT_FOUND_EXCEPTION, restApiId=api_id,
                           stageName=ctx.config.api.stage)


def ensure(ctx: Context) -> None:
    """The stage, the account's role and the group are read (and the role and group made) at once; the
    stage's settings change once both are there (UpdateStage refuses a stage log without the account's role)."""
    if not ctx.config.logs.api_access:
        _remove(ctx)
        return
    name, execution = log_group_name(ctx.stack), _execution_group(ctx)
    (api_id, stage), _, group, _ = together(ctx, _stage, apigateway_account.claim,
                                            lambda c: log_groups.ensure(c, c.client("logs"), name),
                                            lambda c: execution and log_groups.ensure(c, c.client("logs"), execution))
    current = (stage or {}).get("accessLogSettings") or {}
    arn = log_groups.group_arn(group) if group else UNKNOWN
    if current.get("destinationArn") != arn or current.get("format") != FORMAT:
        ctx.change("update" if current else "create",
                   f"access log of stage {ctx.config.api.stage} to {name} (JSON)", ctx.client("apigateway").update_stage,
                   restApiId=api_id, stageName=ctx.config.api.stage, patchOperations=[
                       {"op": "replace", "path": "/accessLogSettings/destinationArn", "value": arn},
                       {"op": "replace", "path": "/accessLogSettings/format", "value": FORMAT}])
    settings = ((stage or {}).get("methodSettings") or {}).get("*/*") or {}
    if settings.get("loggingLevel") != EXECUTION_LEVEL or settings.get("dataTraceEnabled") is not False:
        ctx.change("update" if settings else "create",
                   f"execution logs of stage {ctx.config.api.stage}: {EXECUTION_LEVEL} only, no data trace",
                   ctx.client("apigateway").update_stage, restApiId=api_id, stageName=ctx.config.api.stage,
                   patchOperations=[
                       {"op": "replace", "path": "/*/*/logging/loglevel", "value": EXECUTION_LEVEL},
                       {"op": "replace", "path": "/*/*/logging/dataTrace", "value": "false"}])
    ctx.state.put(NAME, {"log_group": name})
    ctx.outputs["API access log"] = name if group else UNKNOWN


def _remove(ctx: Context) -> None:
    """[logs] api_access = false: the stage's settings and the group at once, then the account's role
    (released once the stage no longer logs through it)."""
    together(ctx, _remove_stage_log, lambda c: log_groups.destroy(c, c.client("logs"), log_group_name(c.stack)),
             _destroy_execution_group)
    apigateway_account.release(ctx)
    ctx.state.drop(NAME)


def _remove_stage_log(ctx: Context) -> None:
    api_id, stage = _stage(ctx)
    if ((stage or {}).get("accessLogSettings") or {}).get("destinationArn"):
        ctx.change("delete", f"access log of stage {ctx.config.api.stage} ([logs] api_access = false)",
                   ctx.client("apigateway").update_stage, restApiId=api_id, stageName=ctx.config.api.stage,
                   patchOperations=[{"op": "remove", "path": "/accessLogSettings"}])
    if (((stage or {}).get("methodSettings") or {}).get("*/*") or {}).get("loggingLevel", "OFF") != "OFF":
        ctx.change("delete", f"execution logs of stage {ctx.config.api.stage} ([logs] api_access = false)",
                   ctx.client("apigateway").update_stage, restApiId=api_id, stageName=ctx.config.api.stage,
                   patchOperations=[{"op": "replace", "path": "/*/*/logging/loglevel", "value": "OFF"}])


def _destroy_execution_group(ctx: Context) -> None:
    """Every execution log group of the stack's (by the name API Gateway gives and the stack's tags): the API's
    id may be unknown to the state (a lost state file) or have changed (an API replaced)."""
    logs = ctx.client("logs")
    pages = logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=EXECUTION_PREFIX)
    names = [g["logGroupName"] for page in pages for g in page["logGroups"]]
    together(ctx, *(lambda c, name=name: _destroy_if_ours(c, name) for name in names))


def _destroy_if_ours(ctx: Context, name: str) -> None:
    """Other APIs' execution log groups share the prefix: they are passed over without a note."""
    logs = ctx.client("logs")
    seen = log_groups.observe(ctx, logs, name)
    if is_ours(seen.tags, ctx.stack):
        log_groups.destroy(ctx, logs, name, seen=seen)


def destroy(ctx: Context) -> None:
    """The group and the account's role (if nothing else logs through it) at once; the API goes with the
    api step."""
    together(ctx, lambda c: log_groups.destroy(c, c.client("logs"), log_group_name(c.stack)),
             _destroy_execution_group, apigateway_account.release)


# --- the step, declared (provision/registry.py) ---------------------------------



def _log_group_arns(names: Names, action: str) -> list[str]:
    """The access log's group, and the stage's execution log group (its API id is API Gateway's to choose)."""
    region, stack = names.config.stack.region, names.config.stack
    return [*log_groups.arns(names, action, region, log_group_name(stack.name)),
            *log_groups.arns(names, action, region, execution_log_group_name("*", names.config.api.stage))]


BEYOND = (
    Beyond("apigateway", "UpdateAccount", ("iam:PassRole",),
           "API Gateway developer guide, 'Set up CloudWatch logging for REST APIs': setting the account's "
           "cloudwatchRoleArn passes that role to API Gateway (iam:PassRole)"),
    boundary.ROLE_TAGGED,
    boundary.POLICY_TAGGED,
    log_groups.LOG_GROUP_TAGGED,
)


def leaves(config: Config, account: Account) -> list[str]:
    """With [logs] api_access: the access log's and the stage's execution logs' groups (the latter's name
    holds the API's id, ``<api>``), and the account's logging role, set as API Gateway's in the region."""
    if not config.logs.api_access:
        return []
    region = config.stack.region
    return [f"log group {log_group_name(config.stack.name)}",
            f"log group {execution_log_group_name('<api>', config.api.stage)}",
            f"role {apigateway_account.role_name(region)}", f"api gateway account logging role in {region}"]


STEP = Step(NAME, "API access log", ensure, destroy, needs=("api",),
            inventory=(log_groups.inventory, apigateway_account.inventory), leaves=leaves,
            arns={"logs": _log_group_arns, "iam": apigateway_account.arns},
            creates=("CreateLogGroup", "UpdateStage"),
            removes=("DeleteLogGroup",), beyond=BEYOND)
