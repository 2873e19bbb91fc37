"""The local API stand-in, standing for the API Gateway stage: method, API key, request validator,
mapping template, Lambda (the real lambda/handler.py), integration responses.

The usage plan's throttle holds per API key, as a token bucket (API Gateway
developer guide, "Throttle requests to your REST APIs": the burst is the
bucket, the rate refills it): a request with no token left is answered 429
{"message": "Too Many Requests"} before the function runs.

What differs from AWS, knowingly: it serves the API's current definition
(moto keeps no snapshot per deployment); the throttle is exact, where API
Gateway's is "best effort"; no account-level throttle; Python's regular
expressions stand in for Java's in selection patterns (the same for the
patterns the toolkit deploys).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import threading
import time
import traceback
import urllib.parse
import uuid
from pathlib import Path

import airspeed

from ..aws_errors import NOT_FOUND_EXCEPTION
from ..errors import is_code
from . import vtl
from .readback import Deployed, all_items
from .wire import Answer, Incoming, message

HANDLER_FILE = Path(__file__).resolve().parents[2] / "lambda" / "handler.py"
EXECUTE_API_HOST = re.compile(r"^([a-z0-9]+)\.execute-api\.[a-z0-9-]+\.amazonaws\.com$")
LAMBDA_URI = re.compile(r"^arn:[^:]+:apigateway:[^:]+:lambda:path/2015-03-31/functions/(.+)/invocations$")


class LocalFunction:
    """lambda/handler.py in this process, one invocation at a time (as one Lambda container runs them)."""

    def __init__(self, local_database: dict[str, str]):
        """``local_database``: the DB_* settings that point the deployed environment at the local MariaDB."""
        spec = importlib.util.spec_from_file_location("rds_edge_api_local_handler", HANDLER_FILE)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load the function's code from {HANDLER_FILE}")
        self.module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)
        self.db = local_database
        self.lock = threading.Lock()
        self.last_env: dict[str, str] | None = None

    def invoke(self, environment: dict[str, str], event) -> tuple[object, dict | None]:
        """(result, None) or (None, Lambda's error object); the handler's log line is kept out of the console."""
        environment = {**environment, **self.db}
        with self.lock:
            if environment != self.last_env:  # a changed deployment: a fresh container
                self.module._reset()
                self.last_env = environment
            saved = {k: os.environ.get(k) for k in environment}
            os.environ.update(environment)
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    return self.module.handler(event, None), None
            except Exception as exc:  # as Lambda reports an unhandled error
                return None, {"errorMessage": str(exc), "errorType": type(exc).__name__,
                              "stackTrace": traceback.format_tb(exc.__traceback__)}
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value


def _find_resource(resources: list[dict], path: str) -> tuple[dict | None, dict[str, str]]:
    """The resource for a path (literal parts, or {name} matching one segment), and its path parameters."""
    parts = [p for p in path.split("/") if p]
    for resource in resources:
        pattern = [p for p in resource["path"].split("/") if p]
        if len(pattern) != len(parts):
            continue
        params = {}
        for want, got in zip(pattern, parts):
            if want.startswith("{") and want.endswith("}"):
                params[want[1:-1]] = urllib.parse.unquote(got)
            elif want != got:
                break
        else:
            return resource, params
    return None, {}


class Throttles:
    """One token bucket per (usage plan, API key): burstLimit tokens, refilled at rateLimit per second."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (tokens, when counted)
        self.lock = threading.Lock()

    def take(self, plan: dict, key_id: str) -> bool:
        """Whether the request may pass (a token taken); a plan without a throttle always lets it."""
        throttle = plan.get("throttle") or {}
        rate, burst = float(throttle.get("rateLimit") or 0), float(throttle.get("burstLimit") or 0)
        if not rate and not burst:
            return True
        now = self.clock()
        with self.lock:
            tokens, then = self.buckets.get((plan["id"], key_id), (burst, now))
            tokens = min(burst, tokens + (now - then) * rate)
            allowed = tokens >= 1
            self.buckets[(plan["id"], key_id)] = (tokens - 1 if allowed else tokens, now)
            return allowed


class _Refused(Exception):
    """API Gateway answers before the function runs (no such stage or method, no key, a missing parameter...)."""

    def __init__(self, answer: Answer):
        super().__init__(answer.status)
        self.answer = answer


def answer(deployed: Deployed, function: LocalFunction, request: Incoming, throttles: Throttles) -> Answer:
    """The stage: method, API key and its usage plan's throttle, request validator, mapping template, Lambda,
    integration response."""
    apigw = deployed.apigateway
    try:
        api_id, stage, api, rest = _stage(deployed, request)
        resource, path_params, method = _method(apigw, api_id, rest, request.method)
        _check_api_key(deployed, api, stage, method, request.headers, throttles)
        query = dict(urllib.parse.parse_qsl(request.query, keep_blank_values=True))
        missing = _missing_parameters(apigw, api_id, method, query, request.headers, path_params)
        if missing:
            raise _Refused(message(400, f"Missing required request parameters: [{', '.join(missing)}]", "validator"))
        integration, function_name = _lambda_integration(method)
        context = {"identity": {"sourceIp": request.peer}, "stage": stage, "httpMethod": request.method,
                   "resourcePath": resource["path"], "requestId": str(uuid.uuid4()), "apiId": api_id}
        event = _event(integration, request.headers, vtl.Input("", path_params, query, request.headers), context)
    except _Refused as refused:
        return refused.answer
    result, error = function.invoke(deployed.function_environment(function_name), event)
    return _integration_response(integration, result, error, context)


def _stage(deployed: Deployed, request: Incoming) -> tuple[str, str, dict, str]:
    """(API id, stage, the REST API, the path below the stage) the request names: by its execute-api host,
    else the stack's API."""
    apigw = deployed.apigateway
    matched = EXECUTE_API_HOST.match(request.headers.get("host", "").split(":")[0])
    api_id = matched.group(1) if matched else deployed.stack_api_id()
    stage, _, rest = request.path.lstrip("/").partition("/")
    try:
        api = apigw.get_rest_api(restApiId=api_id or "none")
        apigw.get_stage(restApiId=api_id, stageName=stage)
    except Exception as exc:
        if not is_code(exc, NOT_FOUND_EXCEPTION):
            raise
        raise _Refused(message(403, "Forbidden", f"no API {api_id} or stage {stage!r}")) from None
    return api["id"], stage, api, rest


def _method(apigw, api_id: str, rest: str, http_method: str) -> tuple[dict, dict[str, str], dict]:
    """(resource, path parameters, method) for the request's path and HTTP method (or ANY)."""
    resource, path_params = _find_resource(all_items(apigw, "get_resources", restApiId=api_id), "/" + rest)
    methods = (resource or {}).get("resourceMethods") or {}
    verb = next((v for v in (http_method, "ANY") if v in methods), None)
    if resource is None or verb is None:
        raise _Refused(message(403, "Missing Authentication Token", "no such resource or method"))
    return resource, path_params, apigw.get_method(restApiId=api_id, resourceId=resource["id"], httpMethod=verb)


def _check_api_key(deployed: Deployed, api: dict, stage: str, method: dict, headers: dict[str, str],
                   throttles: Throttles) -> None:
    """A method that requires an API key gets one enabled in a usage plan of the stage (from x-api-key), within
    the plan's throttle."""
    if not method.get("apiKeyRequired"):
        return
    source = api.get("apiKeySource") or "HEADER"
    value = headers.get("x-api-key", "") if source == "HEADER" else ""
    found = deployed.key_plan(api["id"], stage, value)
    if found is None:
        raise _Refused(message(403, "Forbidden", "no valid API key"))
    if not throttles.take(found[1], found[0]):
        raise _Refused(message(429, "Too Many Requests", "usage plan throttle"))


def _lambda_integration(method: dict) -> tuple[dict, str]:
    """(the method's integration, the function it invokes): only AWS -> Lambda is served locally."""
    integration = method.get("methodIntegration") or {}
    function_arn = LAMBDA_URI.match(integration.get("uri", "")) if integration.get("type") == "AWS" else None
    if function_arn is None:
        raise _Refused(message(500, "Internal server error",
                               "integration other than AWS -> Lambda (not served locally)"))
    return integration, function_arn.group(1)


def _event(integration: dict, headers: dict[str, str], given: vtl.Input, context: dict) -> dict:
    """The function's event: the request mapping template for the content type, rendered (none: {})."""
    content_type = (headers.get("content-type") or "application/json").split(";")[0].strip()
    templates = integration.get("requestTemplates") or {}
    template = templates.get(content_type)
    passthrough = integration.get("passthroughBehavior")
    if template is None and (passthrough == "NEVER" or (passthrough == "WHEN_NO_TEMPLATES" and templates)):
        raise _Refused(message(415, "Unsupported Media Type", "no mapping template for this content type"))
    try:
        payload = vtl.render(template, given, context) if template is not None else ""
        return json.loads(payload) if payload.strip() else {}
    except (airspeed.TemplateError, ValueError) as exc:
        raise _Refused(message(500, "Internal server error", f"mapping template: {type(exc).__name__}")) from None


def _missing_parameters(apigw, api_id: str, method: dict, query: dict, headers: dict, path: dict) -> list[str]:
    """The required request parameters absent, when the method's validator checks parameters."""
    if not method.get("requestValidatorId"):
        return []
    validator = apigw.get_request_validator(restApiId=api_id, requestValidatorId=method["requestValidatorId"])
    if not validator.get("validateRequestParameters"):
        return []
    found = {"querystring": query, "header": headers, "path": path}
    missing = []
    for name, required in (method.get("requestParameters") or {}).items():
        where, _, param = name.removeprefix("method.request.").partition(".")
        key = param.lower() if where == "header" else param
        if required and key not in found.get(where, {}):
            missing.append(param)
    return missing


def _integration_response(integration: dict, result, error: dict | None, context: dict) -> Answer:
    """Lambda errors are matched by selection pattern (whole message); success takes the default response."""
    responses = integration.get("integrationResponses") or {}
    default = next((r for r in responses.values() if not r.get("selectionPattern")), None)
    chosen = default
    if error is not None:
        for response in responses.values():
            pattern = response.get("selectionPattern")
            if pattern and re.fullmatch(pattern, error["errorMessage"] or ""):
                chosen = response
                break
    body = json.dumps(error if error is not None else result, ensure_ascii=False)
    if chosen is None:
        return message(500, "Internal server error", "no integration response matches")
    template = (chosen.get("responseTemplates") or {}).get("application/json")
    if template:
        try:
            body = vtl.render(template, vtl.Input(body), context)
        except (airspeed.TemplateError, ValueError) as exc:
            return message(500, "Internal server error", f"response template: {type(exc).__name__}")
    outcome = f"Lambda {'error ' + repr(error['errorMessage'][:40]) if error else 'ok'}"
    return Answer(int(chosen["statusCode"]), body.encode(), "application/json", outcome)
