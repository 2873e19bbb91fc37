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
``api_access = false`` removes the settings and the group, and releases the role.

Pitfalls: the format must hold ``$context.requestId`` or
``$context.extendedRequestId`` (else UpdateStage refuses it), and the
destination is the group's ARN without the ``:*`` DescribeLogGroups adds.
"""
from __future__ import annotations

import json

from ..context import UNKNOWN, Context
from ..errors import or_none
from ..registry import Names, Owns
from ..together import together
from . import apigateway_account, log_groups
from .api import STEP as API_STEP

STEP = "api_access_log"
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


def log_group_name(stack: str) -> str:
    return f"/aws/apigateway/{stack}/access"


def _stage(ctx: Context) -> tuple[str | None, dict | None]:
    """(API id, the stage as API Gateway has it); None for what does not exist yet."""
    api_id = ctx.state.get(API_STEP).get("rest_api_id")
    if not api_id or api_id == UNKNOWN:
        return None, None
    return api_id, or_none(ctx.client("apigateway").get_stage, "NotFoundException", restApiId=api_id,
                           stageName=ctx.config.api.stage)


def ensure(ctx: Context) -> None:
    """The stage, the account's role and the group are read (and the role and group made) at once; the
    stage's settings change once both are there (UpdateStage refuses a stage log without the account's role)."""
    if not ctx.config.logs.api_access:
        _remove(ctx)
        return
    name = log_group_name(ctx.stack)
    (api_id, stage), _, group = together(ctx, _stage, apigateway_account.claim,
                                         lambda c: log_groups.ensure(c, c.client("logs"), name))
    current = (stage or {}).get("accessLogSettings") or {}
    arn = log_groups.group_arn(group) if group else UNKNOWN
    if current.get("destinationArn") != arn or current.get("format") != FORMAT:
        ctx.change("update" if current else "create",
                   f"access log of stage {ctx.config.api.stage} to {name} (JSON)", ctx.client("apigateway").update_stage,
                   restApiId=api_id, stageName=ctx.config.api.stage, patchOperations=[
                       {"op": "replace", "path": "/accessLogSettings/destinationArn", "value": arn},
                       {"op": "replace", "path": "/accessLogSettings/format", "value": FORMAT}])
    ctx.state.put(STEP, {"log_group": name})
    ctx.outputs["API access log"] = name if group else UNKNOWN


def _remove(ctx: Context) -> None:
    """[logs] api_access = false: the stage's settings and the group at once, then the account's role
    (released once the stage no longer logs through it)."""
    together(ctx, _remove_stage_log, lambda c: log_groups.destroy(c, c.client("logs"), log_group_name(c.stack)))
    apigateway_account.release(ctx)
    ctx.state.drop(STEP)


def _remove_stage_log(ctx: Context) -> None:
    api_id, stage = _stage(ctx)
    if ((stage or {}).get("accessLogSettings") or {}).get("destinationArn"):
        ctx.change("delete", f"access log of stage {ctx.config.api.stage} ([logs] api_access = false)",
                   ctx.client("apigateway").update_stage, restApiId=api_id, stageName=ctx.config.api.stage,
                   patchOperations=[{"op": "remove", "path": "/accessLogSettings"}])


def destroy(ctx: Context) -> None:
    """The group and the account's role (if nothing else logs through it) at once; the API goes with the
    api step."""
    together(ctx, lambda c: log_groups.destroy(c, c.client("logs"), log_group_name(c.stack)),
             apigateway_account.release)


# --- what the step owns (provision/registry.py) ---------------------------------



def _log_group_arns(names: Names, action: str) -> list[str]:
    return log_groups.arns(names, action, names.config.stack.region, log_group_name(names.config.stack.name))


OWNS = Owns(inventory=(log_groups.inventory, apigateway_account.inventory),
            arns={"logs": _log_group_arns, "iam": apigateway_account.arns},
            creates=("CreateLogGroup", "UpdateStage"),
            removes=("DeleteLogGroup",))
