import json

import boto3
import pytest

from provision import config as config_module
from provision.steps import api, function, iam_role, invoke_permission, security_groups
from tests.support import TEST_TIME, changing_ops, printed, run_steps

pytestmark = pytest.mark.iam

STEPS = (iam_role, security_groups, function, api, invoke_permission)


def gateway():
    return boto3.client("apigateway", region_name="eu-west-1")


def only_api():
    apis = gateway().get_rest_apis()["items"]
    assert len(apis) == 1
    return apis[0]


def test_rest_api_method_and_integration(cfg):
    ctx = run_steps(cfg, *STEPS)
    rest = only_api()
    assert rest["name"] == "demo" and rest["endpointConfiguration"]["types"] == ["REGIONAL"]
    assert rest["tags"] == {"stack": "demo", "managed-by": "rds-edge-api"}
    resources = {r["path"]: r for r in gateway().get_resources(restApiId=rest["id"])["items"]}
    assert set(resources) == {"/", "/items"}
    method = gateway().get_method(restApiId=rest["id"], resourceId=resources["/items"]["id"], httpMethod="GET")
    assert method["apiKeyRequired"] is True
    assert method["requestParameters"] == {"method.request.querystring.key": True,
                                           "method.request.querystring.after": False}
    validator = gateway().get_request_validator(restApiId=rest["id"], requestValidatorId=method["requestValidatorId"])
    assert validator["validateRequestParameters"] is True
    integration = method["methodIntegration"]
    function_arn = ctx.state.get("function")["arn"]
    assert integration["type"] == "AWS" and integration["httpMethod"] == "POST"
    assert integration["uri"] == (f"arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/"
                                  f"{function_arn}/invocations")
    template = integration["requestTemplates"]["application/json"]
    assert template == api.TEMPLATE
    # the key is escaped for JSON (a '"' in it must not break the event), the source IP passed as is
    assert template.startswith(api.FORWARDED_FOR + '{"key": "$util.escapeJavaScript($input.params(\'key\'))')
    assert template.endswith('"sourceIp": "$context.identity.sourceIp"}')
    responses = integration["integrationResponses"]
    assert responses["200"].get("selectionPattern") in (None, "")
    assert responses["400"]["selectionPattern"] == r"^\[BadRequest\].*"
    assert responses["404"]["selectionPattern"] == r"^\[NotFound\].*"
    assert responses["500"]["responseTemplates"] == {"application/json": '{"message": "Internal server error"}'}
    assert set(method["methodResponses"]) == {"200", "400", "404", "500"}


def test_error_patterns_route_each_message_to_one_status():
    import re
    routes = {"[BadRequest] query parameter 'key' is required": "400", "[NotFound] no row": "404",
              "[Internal] database unavailable": "500", "Task timed out after 10.01 seconds": "500"}
    for message, status in routes.items():
        matched = [s for s, pattern, _ in api.RESPONSES if pattern and re.fullmatch(pattern, message)]
        assert matched == [status], message


def test_invoke_permission_is_scoped_to_this_api(cfg):
    ctx = run_steps(cfg, *STEPS)
    rest = only_api()
    policy = json.loads(boto3.client("lambda", region_name="eu-west-1").get_policy(FunctionName="demo-api")["Policy"])
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == (
        f"arn:aws:execute-api:eu-west-1:{ctx.account_id}:{rest['id']}/*/GET/items")


def test_stage_key_and_usage_plan(cfg):
    ctx = run_steps(cfg, *STEPS)
    rest = only_api()
    stage = gateway().get_stage(restApiId=rest["id"], stageName="v1")
    assert stage["tags"] == {"stack": "demo", "managed-by": "rds-edge-api"}
    [key] = gateway().get_api_keys()["items"]
    assert key["enabled"] and key["tags"] == {"stack": "demo", "managed-by": "rds-edge-api"}
    [plan] = gateway().get_usage_plans()["items"]
    assert plan["apiStages"] == [{"apiId": rest["id"], "stage": "v1"}]
    assert plan["throttle"] == {"rateLimit": 10.0, "burstLimit": 20}
    assert [k["id"] for k in gateway().get_usage_plan_keys(usagePlanId=plan["id"])["items"]] == [key["id"]]
    assert ctx.outputs["API key id"] == key["id"]
    assert ctx.outputs["Invoke URL (API key required)"] == (
        f"https://{rest['id']}.execute-api.eu-west-1.amazonaws.com/v1/items")
    assert ctx.state.get("api")["execute_api_domain"] == f"{rest['id']}.execute-api.eu-west-1.amazonaws.com"


def test_api_key_value_never_shown(cfg):
    ctx = run_steps(cfg, *STEPS)
    value = gateway().get_api_key(apiKey=ctx.state.get("api")["api_key_id"], includeValue=True)["value"]
    assert value not in printed(ctx)
    assert value not in json.dumps(ctx.state.resources)
    assert value not in json.dumps(ctx.outputs)


def test_second_deploy_changes_nothing(cfg):
    run_steps(cfg, *STEPS)
    again = run_steps(cfg, *STEPS)
    assert changing_ops(again) == []


def test_new_path_moves_the_method_and_redeploys(cfg, write_config):
    run_steps(cfg, *STEPS)
    before = {d["id"] for d in gateway().get_deployments(restApiId=only_api()["id"])["items"]}
    moved = config_module.load(write_config({"api": {"path": "orders"}}))
    ctx = run_steps(moved, *STEPS)
    rest = only_api()
    paths = {r["path"] for r in gateway().get_resources(restApiId=rest["id"])["items"]}
    assert paths == {"/", "/orders"}
    stage = gateway().get_stage(restApiId=rest["id"], stageName="v1")
    assert stage["deploymentId"] not in before
    assert "CreateDeployment" in changing_ops(ctx)
    assert "CreateRestApi" not in changing_ops(ctx)
    assert changing_ops(run_steps(moved, *STEPS)) == []


def test_changed_throttle_updates_the_plan_in_place(cfg, write_config):
    run_steps(cfg, *STEPS)
    changed = config_module.load(write_config({"api": {"throttle_rate": 5, "throttle_burst": 7}}))
    ctx = run_steps(changed, *STEPS)
    assert changing_ops(ctx) == ["UpdateUsagePlan"]
    [plan] = gateway().get_usage_plans()["items"]
    assert plan["throttle"] == {"rateLimit": 5.0, "burstLimit": 7}


def test_an_undeployed_change_is_deployed_on_the_next_run(cfg):
    """A run that changed the API but died before deploying it leaves a stale fingerprint on the stage."""
    ctx = run_steps(cfg, *STEPS)
    rest_id = ctx.state.get("api")["rest_api_id"]
    by_hand = gateway().create_deployment(restApiId=rest_id, description="made by hand")
    gateway().update_stage(restApiId=rest_id, stageName="v1",
                           patchOperations=[{"op": "replace", "path": "/deploymentId", "value": by_hand["id"]}])
    TEST_TIME.passes(5)  # the re-run comes after CreateDeployment's quota (1 per 5 s) refilled: this test is about
    again = run_steps(cfg, *STEPS)  # the stale fingerprint, tests/test_api_quotas.py about the quota
    assert changing_ops(again) == ["CreateDeployment", "UpdateStage"]


def test_plan_on_empty_account_changes_nothing(cfg):
    ctx = run_steps(cfg, *STEPS, planning=True)
    assert changing_ops(ctx) == []
    assert gateway().get_rest_apis()["items"] == []
    assert "would create REST API demo (REGIONAL)" in printed(ctx)


def test_destroy_removes_plan_key_and_api(cfg):
    run_steps(cfg, *STEPS)
    run_steps(cfg, api, destroy=True)
    assert gateway().get_rest_apis()["items"] == []
    assert gateway().get_api_keys()["items"] == []
    assert gateway().get_usage_plans()["items"] == []
    twice = run_steps(cfg, api, destroy=True)
    assert changing_ops(twice) == []


def escape_javascript(value: str) -> str:
    """API Gateway's $util.escapeJavaScript (Apache Commons StringEscapeUtils.escapeJavaScript)."""
    out = []
    for ch in value:
        if ch in "\"'\\/":
            out.append("\\" + ch)
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ord(ch) < 32 or ord(ch) > 0x7f:
            units = ch.encode("utf-16-be")
            out.append("".join(f"\\u{int.from_bytes(units[i:i + 2], 'big'):04X}" for i in range(0, len(units), 2)))
        else:
            out.append(ch)
    return "".join(out)


def render(template: str, params: dict, source_ip: str = "203.0.113.9", forwarded_for: str = "") -> dict:
    """The mapping template as API Gateway fills it for a request with these query parameters."""
    import re
    def param(match):
        return escape_javascript(params.get(match.group(1), "")).replace("\\'", "'")
    body = template.removeprefix(api.FORWARDED_FOR).replace(
        r'''$util.escapeJavaScript($forwardedFor).replaceAll("\\'","'")''',
        escape_javascript(forwarded_for).replace("\\'", "'"))
    body = re.sub(r"""\$util\.escapeJavaScript\(\$input\.params\('(\w+)'\)\)\.replaceAll\("\\\\'","'"\)""",
                  param, body)
    return json.loads(body.replace("$context.identity.sourceIp", source_ip))


@pytest.mark.parametrize("params, event", [
    ({"key": "42"}, {"key": "42", "after": ""}),
    ({"key": "42", "after": "WzEwXQ"}, {"key": "42", "after": "WzEwXQ"}),
    ({"key": 'a"b', "after": '", "key": "other'}, {"key": 'a"b', "after": '", "key": "other'}),
    ({"key": "it's", "after": "x'y\\z/é"}, {"key": "it's", "after": "x'y\\z/é"}),
])
def test_template_passes_key_and_after_escaped(params, event):
    """The optional cursor reaches the function as the event's after ("" when absent), never as extra fields."""
    assert render(api.TEMPLATE, params) == {**event, "forwardedFor": "", "sourceIp": "203.0.113.9"}
