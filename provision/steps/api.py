"""API Gateway: a REGIONAL REST API, GET /<path>, API key required, AWS integration to Lambda.

REGIONAL because CloudFront is already in front: an edge-optimized API would
hide a second CloudFront hop behind ours. Changes reach callers only through a
deployment to the stage, so the stage's deployment carries a fingerprint of
the API's definition and a new deployment is made whenever it differs (also
after a run that changed the API and died before deploying it).

API keys: the stack's key is named `<stack>`; ``rotate api-key`` adds the next
generation `<stack>-2`, `<stack>-3`, ... The newest is the one CloudFront
sends; older ones stay in the usage plan until ``rotate api-key --finish``
retires them, so a plain deploy during a rotation keeps both accepted. The
keys themselves (names, tags) are the record of the window, not the state.

Duplicates: names are not unique in API Gateway, and CreateRestApi, CreateApiKey
and CreateUsagePlan take no idempotency token, so these creates are never sent
again after a lost answer before the step has looked (provision/clients.py).
Every REST API and usage plan with the stack's tags is the stack's, and every
key of a generation: deploy keeps one of each (the state's, else the oldest),
says which others it found and removes them; teardown removes them all.

Quotas: CreateRestApi, CreateDeployment, UpdateUsagePlan and DeleteRestApi
have fixed per-account quotas (one call per 3, 5, 20 and 30 s) that cannot be
raised, so two stacks torn down together are throttled for longer than the
usual backoff: those calls go through ``waits.within_quota``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import boto3

from .. import waits
from ..aws.arns import partition
from ..aws_errors import CONFLICT_EXCEPTION, NOT_FOUND_EXCEPTION
from ..config import Config
from ..context import UNKNOWN, Context
from ..errors import is_code, or_none
from ..registry import Account, Beyond, Step
from ..tags import is_ours
from ..together import together
from . import function

NAME = "api"
# The blog's template, {"key": "$input.params('key')", ...}, with the key escaped: unescaped, a key
# holding '"' broke the JSON (a 500, not a 4xx) and could smuggle extra fields into the event.
# escapeJavaScript also turns ' into \', which JSON does not know, hence the replaceAll.
# ?after= (the cursor of the previous page, optional) is passed the same way; absent, it is "".
# X-Forwarded-For, found whatever its case (a REST API keeps the sender's), carries the caller's address
# that CloudFront appended; sourceIp is the edge server's (lambda/handler.py's caller_address says more).
FORWARDED_FOR = (r'''#set($forwardedFor = "")#foreach($name in $input.params().header.keySet())'''
                 r'''#if($name.matches("(?i)x-forwarded-for"))#set($forwardedFor = $input.params().header.get($name))'''
                 r'''#end#end''')
TEMPLATE = (FORWARDED_FOR
            + r'''{"key": "$util.escapeJavaScript($input.params('key')).replaceAll("\\'","'")", '''
            r'''"after": "$util.escapeJavaScript($input.params('after')).replaceAll("\\'","'")", '''
            r'''"forwardedFor": "$util.escapeJavaScript($forwardedFor).replaceAll("\\'","'")", '''
            r'''"sourceIp": "$context.identity.sourceIp"}''')
ERROR_BODY = "{\"message\": $input.json('$.errorMessage')}"
# (status, selection pattern on the Lambda error message, response template); patterns are disjoint.
RESPONSES = (
    ("200", None, None),
    ("400", r"^\[BadRequest\].*", ERROR_BODY),
    ("404", r"^\[NotFound\].*", ERROR_BODY),
    ("500", r"^(?!\[BadRequest\]|\[NotFound\])(\n|.)+", '{"message": "Internal server error"}'),
)
CACHE_CONTROL = "method.response.header.Cache-Control"
QUERY_KEY = "method.request.querystring.key"
QUERY_AFTER = "method.request.querystring.after"
# The validator requires key; after is declared, optional (False), so it is documented and passed on.
REQUEST_PARAMETERS = {QUERY_KEY: True, QUERY_AFTER: False}
VALIDATOR = "query-parameters"


def api_name(stack: str) -> str:
    return stack


def execute_api_domain(api_id: str, region: str) -> str:
    return f"{api_id}.execute-api.{region}.amazonaws.com"


def _lambda_uri(region: str, function_arn: str) -> str:
    return f"arn:{partition(region)}:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"


def cache_control(seconds: int) -> dict[str, str]:
    """The Cache-Control header each response status carries, with [api] cache_seconds > 0: max-age on the
    200s, so CloudFront keeps those that long (the stack's cache policy lets the origin decide), no-store on
    every error, so none is kept. None at all when caching is off (CachingDisabled keeps nothing)."""
    if not seconds:
        return {}
    return {status: f"max-age={seconds}" if status == "200" else "no-store" for status, _, _ in RESPONSES}


def fingerprint(ctx: Context, function_arn: str) -> str:
    """What the deployed API must match; a different one calls for a new deployment."""
    definition: dict[str, object] = {"path": ctx.config.api.path, "template": TEMPLATE, "responses": RESPONSES,
                  "function": function_arn, "validator": VALIDATOR}
    if ctx.config.api.cache_seconds:  # only then: a stack without caching keeps its fingerprint
        definition["cache control"] = cache_control(ctx.config.api.cache_seconds)
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]


def _paged(call, key: str, **kwargs) -> list[dict]:
    """API Gateway's position-based paging (boto3 has paginators, but not for every call we make)."""
    items, position = [], None
    while True:
        page = call(**kwargs, **({"position": position} if position else {}), limit=500)
        items += page.get(key, [])
        position = page.get("position")
        if not position:
            return items


def _one_and_extras(found: list[dict], hint: str | None) -> tuple[dict | None, list[dict]]:
    """The one to keep (the state's, else the oldest) and the extras a lost answer may have made."""
    if not found:
        return None, []
    ordered = sorted(found, key=lambda item: (item["id"] != hint, str(item.get("createdDate", "")), item["id"]))
    return ordered[0], ordered[1:]


def _stack_apis(ctx: Context) -> list[dict]:
    """Every REST API with the stack's tags: all of them are the stack's."""
    return [api for api in _paged(ctx.client("apigateway").get_rest_apis, "items") if is_ours(api.get("tags"), ctx.stack)]


def find(ctx: Context) -> dict | None:
    """The stack's REST API (the state's, else the oldest with the stack's tags): the one lookup every
    command and the local path use, so a same-named API of someone else's is never taken for it."""
    return _one_and_extras(_stack_apis(ctx), ctx.state.get(NAME).get("rest_api_id"))[0]


def _remove_extras(ctx: Context, what: str, extras: list[dict], delete) -> None:
    """Say which duplicates were found, and remove them."""
    if extras:
        ctx.out.note(f"Found {len(extras)} more {what} tagged as stack {ctx.stack}'s "
                     f"({', '.join(e['id'] for e in extras)}), made by a run whose answer was lost: removing them")
    for extra in extras:
        ctx.change("delete", f"extra {what} {extra['name']} ({extra['id']})", delete, extra)


@dataclass
class ApiSeen:
    """What one REST API holds, as read: the deciding is ensure's."""
    api_id: str
    validators: list[dict]
    resources: list[dict]
    method: dict | None  # GET on /<path>, None when there is no such resource or method
    stages: list[dict]
    deployment: dict | None  # the configured stage's deployment


@dataclass
class Seen:
    """The api step's reads, all made at once (``observe``)."""
    apis: list[dict]  # every REST API with the stack's tags
    api: ApiSeen | None  # inside the one kept (the state's, else the oldest)
    keys: list[tuple[int, dict]]  # ``_all_keys``
    plans: list[dict]  # every usage plan with the stack's tags
    plan_keys: set[str]  # the key ids in the kept plan
    newest_key_value: str | None = field(default=None, repr=False)  # only with [api] key_env: never shown


def observe(ctx: Context) -> Seen:
    """Every lookup of the step at once: the REST API (then what it holds), the keys and the plans (then the
    kept plan's keys); reads only, from the config and the step's own state."""
    (apis, inside), (keys, value), (plans, plan_keys) = together(ctx, _observe_apis, _observe_keys, _observe_plans)
    return Seen(apis=apis, api=inside, keys=keys, plans=plans, plan_keys=plan_keys, newest_key_value=value)


def _observe_apis(ctx: Context) -> tuple[list[dict], ApiSeen | None]:
    apis = _stack_apis(ctx)
    api, _ = _one_and_extras(apis, ctx.state.get(NAME).get("rest_api_id"))
    return apis, (_inside(ctx, api["id"]) if api else None)


def _inside(ctx: Context, api_id: str) -> ApiSeen:
    """The validators, the resources (then the GET method) and the stages (then the stage's deployment)."""
    validators, (resources, method), (stages, deployment) = together(
        ctx, lambda c: c.client("apigateway").get_request_validators(restApiId=api_id).get("items", []),
        lambda c: _resources_and_method(c, api_id), lambda c: _stages_and_deployment(c, api_id))
    return ApiSeen(api_id, validators, resources, method, stages, deployment)


def _resources_and_method(ctx: Context, api_id: str) -> tuple[list[dict], dict | None]:
    apigw = ctx.client("apigateway")
    resources = _paged(apigw.get_resources, "items", restApiId=api_id)
    ours = next((r for r in resources if r["path"] == f"/{ctx.config.api.path}"), None)
    method = ours and or_none(apigw.get_method, NOT_FOUND_EXCEPTION, restApiId=api_id, resourceId=ours["id"],
                              httpMethod="GET")
    return resources, method


def _stages_and_deployment(ctx: Context, api_id: str) -> tuple[list[dict], dict | None]:
    apigw = ctx.client("apigateway")
    stages = apigw.get_stages(restApiId=api_id).get("item", [])
    current = next((s for s in stages if s["stageName"] == ctx.config.api.stage), None)
    deployment = current and apigw.get_deployment(restApiId=api_id, deploymentId=current["deploymentId"])
    return stages, deployment


def _observe_keys(ctx: Context) -> tuple[list[tuple[int, dict]], str | None]:
    """The stack's keys; with [api] key_env, also the newest key's value, to compare with it."""
    keys = _all_keys(ctx)
    kept, _ = _keep_per_generation(ctx, keys)
    if ctx.config.api.key is None or not kept:
        return keys, None
    return keys, ctx.client("apigateway").get_api_key(apiKey=kept[-1]["id"], includeValue=True)["value"]


def _observe_plans(ctx: Context) -> tuple[list[dict], set[str]]:
    plans = _stack_plans(ctx)
    plan, _ = _one_and_extras(plans, ctx.state.get(NAME).get("usage_plan_id"))
    return plans, (_plan_key_ids(ctx, plan["id"]) if plan else set())


def _plan_key_ids(ctx: Context, plan_id: str) -> set[str]:
    return {k["id"] for k in _paged(ctx.client("apigateway").get_usage_plan_keys, "items", usagePlanId=plan_id)}


def ensure(ctx: Context, rotation: str | None = None, seen: Seen | None = None) -> None:
    """rotation "start" (from ``rotate api-key``) adds the next key when the stack has one; seen: what
    ``observe`` read at the start of the run (None: read now).

    What does not need another's answer goes out together: the API's definition (validator and resource,
    then the method) and then its deployment (it needs the method), beside the keys; then the usage plan
    (it names the stage) and its keys. The function is only named (its ARN, ``function.arn``): the
    invoke permission, which needs it made, is a step of its own (invoke_permission.py).
    """
    seen = seen or observe(ctx)
    apigw, name = ctx.client("apigateway"), api_name(ctx.stack)
    function_arn = function.arn(ctx)  # named only: the API is built while the function is made
    api, extras = _one_and_extras(seen.apis, ctx.state.get(NAME).get("rest_api_id"))
    _remove_extras(ctx, "REST API", extras,
                   lambda extra: waits.within_quota(ctx, apigw.delete_rest_api, restApiId=extra["id"]))
    if api is None:
        api = ctx.change("create", f"REST API {name} (REGIONAL)", waits.within_quota, ctx, apigw.create_rest_api,
                         name=name,
                         description=f"rds-edge-api stack {ctx.stack}", apiKeySource="HEADER",
                         endpointConfiguration={"types": ["REGIONAL"]}, tags=ctx.tags, find=lambda: find(ctx))
        if api is None:
            _plan_new_api(ctx)
            return
        inside = ApiSeen(api["id"], [], [{"id": api["rootResourceId"], "path": "/"}], None, [], None)  # new: empty
    else:
        assert seen.api is not None and seen.api.api_id == api["id"]  # observe looked inside the same one
        inside = seen.api
    api_id = api["id"]
    if api.get("endpointConfiguration", {}).get("types") != ["REGIONAL"]:
        ctx.change("update", f"REST API {name}: endpoint type REGIONAL", apigw.update_rest_api, restApiId=api_id,
                   patchOperations=[{"op": "replace", "path": f"/endpointConfiguration/types/{t}",
                                     "value": "REGIONAL"} for t in api["endpointConfiguration"]["types"]])

    def definition(c: Context) -> None:  # one change to the REST API at a time
        validator_id, resource_id = _ensure_validator(c, api_id, inside), _ensure_resource(c, api_id, inside)
        method = inside.method if any(r["id"] == resource_id for r in inside.resources) else None
        _ensure_method(c, api_id, resource_id, validator_id, function_arn, method)

    def deployed(c: Context) -> None:
        definition(c)
        _ensure_stage(c, api_id, fingerprint(c, function_arn), inside)

    _, key_ids = together(ctx, deployed, lambda c: _ensure_keys(c, rotation, seen))
    plan_id = _ensure_usage_plan(ctx, api_id, key_ids, seen)
    stage, path = ctx.config.api.stage, ctx.config.api.path
    domain = execute_api_domain(api_id, ctx.region)
    old = [k for k in key_ids[:-1] if k != UNKNOWN]
    ctx.state.put(NAME, {"rest_api_id": api_id, "api_key_id": key_ids[-1], "usage_plan_id": plan_id,
                         "stage": stage, "execute_api_domain": domain, "retiring_api_key_ids": old or None})
    ctx.outputs["Invoke URL (API key required)"] = f"https://{domain}/{stage}/{path}"
    ctx.outputs["API key id"] = key_ids[-1]
    if old:
        ctx.outputs["API key rotation"] = (f"old key {', '.join(old)} still accepted; once CloudFront sends the new "
                                           "one everywhere: rds-edge-api rotate api-key --finish")


# API Gateway refuses a change to a REST API while another is under way (409 ConflictException, "Unable to
# complete operation due to concurrent modification. Please try again later."): undocumented, seen on the
# method responses and integration responses of one method (hashicorp/terraform#11395,
# terraform-provider-aws#3174, #16439) and on other parts of one API (#27027, CreateAuthorizer).
# Users of terraform avoid it with -parallelism=1 (#18018), and terraform-provider-aws retries it on every
# REST API operation since 3.24.0 (#776). So the changes to the REST API go one at a time (only reads, and
# changes outside it, the keys, go out beside them), and one refused all the same,
# for another's change under way (an operator's, in the console), is sent again.
CONCURRENT_MODIFICATION = "Unable to complete operation due to concurrent modification"
CONCURRENT_TIMEOUT = 60.0


def _concurrent_modification(exc: BaseException) -> bool:
    return is_code(exc, CONFLICT_EXCEPTION) and CONCURRENT_MODIFICATION in str(exc)


def _in_turn(ctx: Context, call: Callable[..., Any], /, **kwargs) -> Any:
    """A change to the REST API: refused while another change to it is under way, it is sent again
    (bounded, said)."""
    return waits.retry_while(ctx, "API Gateway to finish another change to the REST API", lambda: call(**kwargs),
                             _concurrent_modification, timeout=CONCURRENT_TIMEOUT, interval=0.25, max_interval=2)


def _plan_new_api(ctx: Context) -> None:
    api = ctx.config.api
    for description in (f"GET /{api.path} (API key and query string 'key' required) -> Lambda",
                        f"deployment to stage {api.stage}", f"API key {ctx.stack}",
                        f"usage plan {ctx.stack} ({api.throttle_rate:g} req/s, burst {api.throttle_burst})"):
        ctx.change("create", description, lambda: None)


def _ensure_validator(ctx: Context, api_id: str, inside: ApiSeen) -> str | None:
    apigw = ctx.client("apigateway")
    found = next((v for v in inside.validators if v["name"] == VALIDATOR), None)
    if found is not None:
        return found["id"]
    created = ctx.change("create", "request validator for query parameters", _in_turn, ctx,
                         apigw.create_request_validator, restApiId=api_id, name=VALIDATOR, validateRequestBody=False,
                         validateRequestParameters=True, find=lambda: _validator(apigw, api_id))
    return created["id"] if created else None


def _validator(apigw, api_id: str) -> dict | None:
    return next((v for v in apigw.get_request_validators(restApiId=api_id).get("items", [])
                 if v["name"] == VALIDATOR), None)


def _ensure_resource(ctx: Context, api_id: str, inside: ApiSeen) -> str | None:
    """/<path> under the root; any other resource in our API is a leftover of an older path."""
    apigw, path, resources = ctx.client("apigateway"), ctx.config.api.path, inside.resources
    root = next(r for r in resources if r["path"] == "/")
    ours = next((r for r in resources if r["path"] == f"/{path}"), None)
    for stale in (r for r in resources if r["path"] not in ("/", f"/{path}") and r.get("parentId") == root["id"]):
        ctx.change("delete", f"resource {stale['path']}", _in_turn, ctx, apigw.delete_resource,
                   restApiId=api_id, resourceId=stale["id"])
    if ours:
        return ours["id"]
    created = ctx.change("create", f"resource /{path}", _in_turn, ctx, apigw.create_resource,
                         restApiId=api_id, parentId=root["id"], pathPart=path,
                         find=lambda: next((r for r in _paged(apigw.get_resources, "items", restApiId=api_id)
                                            if r["path"] == f"/{path}"), None))
    return created["id"] if created else None


def _method_matches(method: dict, validator_id: str | None, uri: str, seconds: int) -> bool:
    """Whether the method is as ``_put_method`` makes it, in every field that sets."""
    return _method_shape(method) == _wanted_shape(validator_id, uri, seconds)


def _method_shape(method: dict) -> dict:
    integration = method.get("methodIntegration") or {}
    return {"request": (method.get("apiKeyRequired") is True, method.get("authorizationType"),
                        method.get("requestParameters"), method.get("requestValidatorId")),
            "method responses": {status: r.get("responseParameters") or None
                                 for status, r in (method.get("methodResponses") or {}).items()},
            "integration": (integration.get("type"), integration.get("httpMethod"), integration.get("uri"),
                            integration.get("requestTemplates"), integration.get("passthroughBehavior")),
            "integration responses": {status: (r.get("selectionPattern") or None, r.get("responseTemplates") or None,
                                               r.get("responseParameters") or None)
                                      for status, r in (integration.get("integrationResponses") or {}).items()}}


def _wanted_shape(validator_id: str | None, uri: str, seconds: int) -> dict:
    headers = cache_control(seconds)
    return {"request": (True, "NONE", REQUEST_PARAMETERS, validator_id),
            "method responses": {status: {CACHE_CONTROL: False} if status in headers else None
                                 for status, _, _ in RESPONSES},
            "integration": ("AWS", "POST", uri, {"application/json": TEMPLATE}, "NEVER"),
            "integration responses": {status: (pattern, {"application/json": body} if body else None,
                                               {CACHE_CONTROL: f"'{headers[status]}'"} if status in headers else None)
                                      for status, pattern, body in RESPONSES}}


def _ensure_method(ctx: Context, api_id: str, resource_id: str | None, validator_id: str | None,
                   function_arn: str, method: dict | None) -> None:
    """GET with its integration; any drift replaces the whole method (it is ours alone)."""
    uri = _lambda_uri(ctx.region, function_arn)
    if method is not None and _method_matches(method, validator_id, uri, ctx.config.api.cache_seconds):
        return
    kind = "update" if method is not None else "create"
    ctx.change(kind, f"GET /{ctx.config.api.path} (API key and query string 'key' required) -> Lambda", _put_method,
               ctx, api_id, resource_id, validator_id, uri, method is not None)


def _put_method(ctx: Context, api_id: str, resource_id: str, validator_id: str, uri: str, replace: bool) -> None:
    """The method, its 4 responses, its integration, then the integration's 4 responses (each names a
    method response): one after another, as API Gateway takes changes to one REST API."""
    apigw = ctx.client("apigateway")
    ids = {"restApiId": api_id, "resourceId": resource_id, "httpMethod": "GET"}
    if replace:
        _in_turn(ctx, apigw.delete_method, **ids)
    _in_turn(ctx, apigw.put_method, **ids, authorizationType="NONE", apiKeyRequired=True,
             requestParameters=REQUEST_PARAMETERS, requestValidatorId=validator_id)
    headers = cache_control(ctx.config.api.cache_seconds)
    for status, _, _ in RESPONSES:
        declared = {"responseParameters": {CACHE_CONTROL: False}} if status in headers else {}
        _in_turn(ctx, apigw.put_method_response, **ids, statusCode=status, responseModels={"application/json": "Empty"},
                 **declared)
    _in_turn(ctx, apigw.put_integration, **ids, type="AWS", integrationHttpMethod="POST", uri=uri,
             requestTemplates={"application/json": TEMPLATE}, passthroughBehavior="NEVER")
    for status, pattern, body in RESPONSES:
        extra: dict[str, Any] = {"selectionPattern": pattern} if pattern else {}
        if body:
            extra["responseTemplates"] = {"application/json": body}
        if status in headers:  # a static value: quoted, as API Gateway's header mappings take it
            extra["responseParameters"] = {CACHE_CONTROL: f"'{headers[status]}'"}
        _in_turn(ctx, apigw.put_integration_response, **ids, statusCode=status, **extra)


def _ensure_stage(ctx: Context, api_id: str, print_: str, inside: ApiSeen) -> None:
    apigw, stage = ctx.client("apigateway"), ctx.config.api.stage
    description = f"rds-edge-api {print_}"
    for stale in (s for s in inside.stages if s["stageName"] != stage):
        ctx.change("delete", f"stage {stale['stageName']}", apigw.delete_stage, restApiId=api_id,
                   stageName=stale["stageName"])
    current = next((s for s in inside.stages if s["stageName"] == stage), None)
    if current is None:
        ctx.change("create", f"deployment to stage {stage}", _create_stage, ctx, api_id, stage, description,
                   find=lambda: or_none(apigw.get_stage, NOT_FOUND_EXCEPTION, restApiId=api_id, stageName=stage))
        return
    if (inside.deployment or {}).get("description") != description:
        ctx.change("update", f"new deployment to stage {stage}", _redeploy, ctx, api_id, stage, description)
    if not is_ours(current.get("tags"), ctx.stack):
        arn = f"arn:{partition(ctx.region)}:apigateway:{ctx.region}::/restapis/{api_id}/stages/{stage}"
        ctx.change("update", f"tags of stage {stage}", apigw.tag_resource, resourceArn=arn, tags=ctx.tags)


def _redeploy(ctx: Context, api_id: str, stage: str, description: str) -> None:
    """Deploy, then point the stage at it: the stage keeps its tags and settings."""
    apigw = ctx.client("apigateway")
    deployment = waits.within_quota(ctx, apigw.create_deployment, restApiId=api_id, description=description)
    apigw.update_stage(restApiId=api_id, stageName=stage,
                       patchOperations=[{"op": "replace", "path": "/deploymentId", "value": deployment["id"]}])


def _create_stage(ctx: Context, api_id: str, stage: str, description: str) -> None:
    apigw = ctx.client("apigateway")
    deployment = waits.within_quota(ctx, apigw.create_deployment, restApiId=api_id, description=description)
    apigw.create_stage(restApiId=api_id, stageName=stage, deploymentId=deployment["id"],
                       description=f"rds-edge-api stack {ctx.stack}", tags=ctx.tags)


def key_name(stack: str, generation: int) -> str:
    return stack if generation == 1 else f"{stack}-{generation}"


def _generation_of(key: dict, stack: str) -> int:
    """The generation of one of ``stack_keys``' keys (which keeps only those named as a generation)."""
    generation = _generation(key["name"], stack)
    assert generation is not None, key["name"]
    return generation


def _generation(name: str, stack: str) -> int | None:
    if name == stack:
        return 1
    suffix = name.removeprefix(f"{stack}-")
    return int(suffix) if suffix != name and suffix.isdigit() and int(suffix) > 1 else None


def _all_keys(ctx: Context) -> list[tuple[int, dict]]:
    """(generation, key) for every API key of the stack's, duplicates of a generation included."""
    keys = _paged(ctx.client("apigateway").get_api_keys, "items", nameQuery=ctx.stack)
    return [(generation, key) for key in keys
            if (generation := _generation(key["name"], ctx.stack)) and is_ours(key.get("tags"), ctx.stack)]


def _keep_per_generation(ctx: Context, keys: list[tuple[int, dict]]) -> tuple[list[dict], list[dict]]:
    """One key per generation, oldest generation first (the state's key kept, else the oldest), and the rest."""
    hint = ctx.state.get(NAME).get("api_key_id")
    by_generation: dict[int, list[dict]] = {}
    for generation, key in keys:
        by_generation.setdefault(generation, []).append(key)
    kept, extras = [], []
    for generation in sorted(by_generation):
        one, more = _one_and_extras(by_generation[generation], hint)
        kept += [one] if one is not None else []  # a generation's group is never empty
        extras += more
    return kept, extras


def stack_keys(ctx: Context) -> list[dict]:
    """The stack's API keys, oldest generation first: more than one only during a rotation."""
    return _keep_per_generation(ctx, _all_keys(ctx))[0]


def _create_key(ctx: Context, generation: int) -> str:
    apigw, wanted, name = ctx.client("apigateway"), ctx.config.api.key, key_name(ctx.stack, generation)
    value = {"value": wanted.value} if wanted is not None else {}
    created = ctx.change("create", f"API key {name}", apigw.create_api_key, name=name, enabled=True,
                         description=f"rds-edge-api stack {ctx.stack}: sent by CloudFront", tags=ctx.tags, **value,
                         find=lambda: next((k for k in stack_keys(ctx) if k["name"] == name), None))
    return created["id"] if created else UNKNOWN


def _ensure_keys(ctx: Context, rotation: str | None, seen: Seen) -> list[str]:
    """The ids of the stack's keys, oldest first; the last is the one CloudFront sends.

    Its value is generated by API Gateway unless [api] key_env gives it; a key whose value no longer
    matches key_env is replaced (outside a rotation, that is a brief outage: rotate instead).
    """
    apigw, wanted = ctx.client("apigateway"), ctx.config.api.key
    keys, extras = _keep_per_generation(ctx, seen.keys)
    _remove_extras(ctx, "API key", extras, lambda extra: apigw.delete_api_key(apiKey=extra["id"]))
    if rotation == "start" and len(keys) == 1:
        return [keys[0]["id"], _create_key(ctx, _generation_of(keys[0], ctx.stack) + 1)]
    if not keys:
        return [_create_key(ctx, 1)]
    newest, generation = keys[-1], _generation_of(keys[-1], ctx.stack)
    old = [key["id"] for key in keys[:-1]]
    if wanted is not None and seen.newest_key_value != wanted.value:
        ctx.change("delete", f"API key {newest['name']} (its value changed)", apigw.delete_api_key,
                   apiKey=newest["id"])
        return old + [_create_key(ctx, generation)]
    if not newest.get("enabled"):
        ctx.change("update", f"enable API key {newest['name']}", apigw.update_api_key, apiKey=newest["id"],
                   patchOperations=[{"op": "replace", "path": "/enabled", "value": "true"}])
    return old + [newest["id"]]


def retire_old_keys(ctx: Context) -> None:
    """``rotate api-key --finish``: every key but the newest leaves the usage plan, then is deleted (the
    old keys side by side: one each but during an interrupted rotation)."""
    apigw = ctx.client("apigateway")
    keys, (plans, in_plan) = together(ctx, stack_keys, _observe_plans)
    plan, _ = _one_and_extras(plans, ctx.state.get(NAME).get("usage_plan_id"))

    def retire(key: dict) -> Callable[[Context], None]:
        def run(c: Context) -> None:
            if plan and key["id"] in in_plan:
                c.change("delete", f"API key {key['name']} from usage plan {c.stack}", apigw.delete_usage_plan_key,
                         usagePlanId=plan["id"], keyId=key["id"])
            c.change("delete", f"API key {key['name']} ({key['id']})", apigw.delete_api_key, apiKey=key["id"])
        return run

    for batch in _batches(keys[:-1]):
        together(ctx, *(retire(key) for key in batch))
    if keys:
        ctx.state.put(NAME, {**ctx.state.get(NAME), "api_key_id": keys[-1]["id"], "retiring_api_key_ids": None})
    ctx.outputs["API key rotation"] = None  # the window closed: the api step's label goes (runner merges)


# DeleteApiKey (like CreateApiKey) is held to 5 calls per second per account (Amazon API Gateway quotas):
# keys go out at most this many at once.
KEYS_AT_ONCE = 5


def _batches(items: list[dict]) -> list[list[dict]]:
    return [items[i:i + KEYS_AT_ONCE] for i in range(0, len(items), KEYS_AT_ONCE)]


def _stack_plans(ctx: Context) -> list[dict]:
    """Every usage plan with the stack's tags: all of them are the stack's."""
    return [p for p in _paged(ctx.client("apigateway").get_usage_plans, "items") if is_ours(p.get("tags"), ctx.stack)]


def _find_plan(ctx: Context) -> dict | None:
    return _one_and_extras(_stack_plans(ctx), ctx.state.get(NAME).get("usage_plan_id"))[0]


def _delete_plan(ctx: Context, plan: dict) -> None:
    """Its stages first: a usage plan bound to a stage cannot be deleted."""
    apigw = ctx.client("apigateway")
    if plan.get("apiStages"):
        ctx.change("update", f"usage plan {plan['name']} ({plan['id']}): detach stages", waits.within_quota, ctx,
                   apigw.update_usage_plan, usagePlanId=plan["id"], patchOperations=[
                       {"op": "remove", "path": "/apiStages", "value": f"{s['apiId']}:{s['stage']}"}
                       for s in plan["apiStages"]],
                   find=lambda: None if apigw.get_usage_plan(usagePlanId=plan["id"]).get("apiStages") else {})
    ctx.change("delete", f"usage plan {plan['name']} ({plan['id']})", apigw.delete_usage_plan, usagePlanId=plan["id"],
               find=_gone(apigw.get_usage_plan, usagePlanId=plan["id"]))


def _ensure_usage_plan(ctx: Context, api_id: str, key_ids: list[str], seen: Seen) -> str:
    """Bound to the stage, with a throttle: a leaked key must not run up the bill or exhaust the database."""
    apigw, api = ctx.client("apigateway"), ctx.config.api
    stage = {"apiId": api_id, "stage": api.stage}
    throttle = {"rateLimit": api.throttle_rate, "burstLimit": api.throttle_burst}
    plan, extras = _one_and_extras(seen.plans, ctx.state.get(NAME).get("usage_plan_id"))
    if extras:
        ctx.out.note(f"Found {len(extras)} more usage plan(s) tagged as stack {ctx.stack}'s "
                     f"({', '.join(e['id'] for e in extras)}), made by a run whose answer was lost: removing them")
    for extra in extras:  # one after another: UpdateUsagePlan is held to 1 call per 20 s
        _delete_plan(ctx, extra)
    in_plan = seen.plan_keys
    if plan is None:
        plan = ctx.change("create", f"usage plan {ctx.stack} ({api.throttle_rate:g} req/s, burst "
                                    f"{api.throttle_burst})", apigw.create_usage_plan, name=ctx.stack,
                          description=f"rds-edge-api stack {ctx.stack}", apiStages=[stage], throttle=throttle,
                          tags=ctx.tags, find=lambda: _find_plan(ctx))
        if plan is None:
            ctx.change("create", f"API key {ctx.stack} in usage plan", lambda: None)
            return UNKNOWN
        in_plan = set()  # made just now: no key in it yet
    else:
        ops = _usage_plan_drift(plan, stage, throttle)
        if ops:
            ctx.change("update", f"usage plan {ctx.stack}: " + ", ".join(sorted({o["path"] for o in ops})),
                       waits.within_quota, ctx, apigw.update_usage_plan, usagePlanId=plan["id"], patchOperations=ops)
    _ensure_plan_keys(ctx, plan["id"], key_ids, in_plan)
    return plan["id"]


def _usage_plan_drift(plan: dict, stage: dict, throttle: dict) -> list[dict]:
    """The patch operations that bring the plan's throttle and stages back to ours."""
    ops = []
    found = plan.get("throttle") or {}
    if float(found.get("rateLimit", -1)) != throttle["rateLimit"]:
        # "5", not "5.0", for a whole rate: AWS takes either, moto only the first.
        ops.append({"op": "replace", "path": "/throttle/rateLimit", "value": f"{throttle['rateLimit']:g}"})
    if int(found.get("burstLimit", -1)) != throttle["burstLimit"]:
        ops.append({"op": "replace", "path": "/throttle/burstLimit", "value": str(throttle["burstLimit"])})
    stages = plan.get("apiStages") or []
    ops += [{"op": "remove", "path": "/apiStages", "value": f"{s['apiId']}:{s['stage']}"}
            for s in stages if s != stage]
    if stage not in [{"apiId": s["apiId"], "stage": s["stage"]} for s in stages]:
        ops.append({"op": "add", "path": "/apiStages", "value": f"{stage['apiId']}:{stage['stage']}"})
    return ops


def _ensure_plan_keys(ctx: Context, plan_id: str, key_ids: list[str], in_plan: set[str]) -> None:
    """Every key of the stack in the plan, side by side (a key made while planning is UNKNOWN: announced)."""
    apigw = ctx.client("apigateway")

    def add(key_id: str) -> Callable[[Context], None]:
        return lambda c: c.change("create", f"API key {key_id if key_id != UNKNOWN else c.stack} in usage plan",
                                  apigw.create_usage_plan_key, usagePlanId=plan_id, keyId=key_id, keyType="API_KEY",
                                  find=lambda: or_none(apigw.get_usage_plan_key, NOT_FOUND_EXCEPTION,
                                                       usagePlanId=plan_id, keyId=key_id))

    together(ctx, *(add(key_id) for key_id in key_ids if key_id not in in_plan))


def destroy(ctx: Context) -> None:
    """Every usage plan, key and REST API with the stack's tags, duplicates included: the three lookups at
    once; the plans first (each bound to a stage of an API), then the keys beside the APIs."""
    plans, keys, apis = together(ctx, _stack_plans, _all_keys, _stack_apis)
    for plan in plans:  # one after another: UpdateUsagePlan is held to 1 call per 20 s
        _delete_plan(ctx, plan)
    together(ctx, lambda c: _delete_keys(c, [key for _, key in keys]), lambda c: _delete_apis(c, apis))


def _delete_keys(ctx: Context, keys: list[dict]) -> None:
    apigw = ctx.client("apigateway")

    def delete(key: dict) -> Callable[[Context], None]:
        return lambda c: c.change("delete", f"API key {key['name']} ({key['id']})", apigw.delete_api_key,
                                  apiKey=key["id"], find=_gone(apigw.get_api_key, apiKey=key["id"]))

    for batch in _batches(keys):
        together(ctx, *(delete(key) for key in batch))


def _delete_apis(ctx: Context, apis: list[dict]) -> None:
    """One after another: DeleteRestApi is held to 1 call per 30 s."""
    apigw = ctx.client("apigateway")
    for api in apis:
        ctx.change("delete", f"REST API {api['name']} ({api['id']})", waits.within_quota, ctx, apigw.delete_rest_api,
                   restApiId=api["id"], find=_gone(apigw.get_rest_api, restApiId=api["id"]))


def _gone(get, **ids):
    """A delete's ``find``: {} once the thing is gone (moto answers a repeated delete with a 500, not
    AWS's NotFoundException: look rather than send it again)."""
    return lambda: {} if or_none(get, NOT_FOUND_EXCEPTION, **ids) is None else None


# --- the step, declared (provision/registry.py) ---------------------------------



def inventory(config: Config) -> list[str]:
    """The stack's REST APIs, API keys and usage plans (by tag), read back with plain boto3 in every
    region the stack uses."""
    found = []
    for region in config.regions:
        apigw, stack = boto3.client("apigateway", region_name=region), config.stack.name
        found += ([f"rest api {a['name']}" for a in apigw.get_rest_apis()["items"] if is_ours(a.get("tags"), stack)]
                  + [f"api key {k['name']}" for k in apigw.get_api_keys()["items"] if is_ours(k.get("tags"), stack)]
                  + [f"usage plan {p['name']}" for p in apigw.get_usage_plans()["items"]
                     if is_ours(p.get("tags"), stack)])
    return found


def drift(session: boto3.Session, config: Config) -> None:
    """Behind the stack's back: its API keys disabled, the method's integration made a MOCK, the stage's
    stack tag removed, the API's endpoint made EDGE."""
    stack, region = config.stack.name, config.stack.region
    apigw = session.client("apigateway", region_name=region)
    [api] = [a for a in apigw.get_rest_apis()["items"] if a["name"] == api_name(stack)]
    for key in apigw.get_api_keys()["items"]:
        if is_ours(key.get("tags"), stack):
            apigw.update_api_key(apiKey=key["id"], patchOperations=[
                {"op": "replace", "path": "/enabled", "value": "false"}])
    resource = next(r for r in apigw.get_resources(restApiId=api["id"])["items"] if r["path"] == f"/{config.api.path}")
    apigw.put_integration(restApiId=api["id"], resourceId=resource["id"], httpMethod="GET", type="MOCK",
                          requestTemplates={"application/json": '{"statusCode": 200}'})
    apigw.untag_resource(resourceArn=f"arn:{partition(region)}:apigateway:{region}::/restapis/{api['id']}/stages/"
                                     f"{config.api.stage}", tagKeys=["stack"])
    apigw.update_rest_api(restApiId=api["id"], patchOperations=[
        {"op": "replace", "path": "/endpointConfiguration/types/REGIONAL", "value": "EDGE"}])


APIGW_TAGS = ("API Gateway authorizes tags given at creation as apigateway:PUT on arn:aws:apigateway:<region>::/tags/"
              "<URL-encoded resource ARN> (the AccessDenied quoted in mattclay/aws-terminator#284; API Gateway "
              "developer guide, 'Using tags to control access to API Gateway REST API resources')")
BEYOND = (
    *(Beyond("apigateway", op, ("apigateway:PUT",), APIGW_TAGS, resources={"apigateway:PUT": ("Tags",)})
      for op in ("CreateRestApi", "CreateApiKey", "CreateUsagePlan", "CreateStage")),
    Beyond("apigateway", "TagResource", ("apigateway:PATCH",),
           "TagResource is authorized as apigateway:PUT on /tags/<ARN> and apigateway:PATCH on the tagged resource "
           "(iann0036/iam-dataset#39, tested against AWS)", resources={"apigateway:PATCH": ("Stage",)}),
)


def leaves(config: Config, account: Account) -> list[str]:
    """The REST API, its key and its usage plan, all named after the stack."""
    return [f"{kind} {api_name(config.stack.name)}" for kind in ("rest api", "api key", "usage plan")]


STEP = Step(NAME, "API Gateway", ensure, destroy, observe=observe,
            inventory=(inventory,), leaves=leaves,
            creates=("CreateRestApi", "PutIntegration", "CreateStage", "CreateApiKey", "CreateUsagePlan",
                     "CreateUsagePlanKey"),
            removes=("DeleteRestApi",), drift=(drift,), beyond=BEYOND)
