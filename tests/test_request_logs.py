"""The request logs an operator and an auditor expect (issue 16): the API stage's access log with the
account's API Gateway CloudWatch role, CloudFront's standard logging (v2), read back from moto with AWS's
rules on (tests/aws_rules.py)."""
import json

import boto3
import pytest

from provision import config as config_module
from provision.aws import apigateway_account
from provision.steps import api_access_log, cloudfront_logging
from tests import aws_rules as rules
from tests.support import changing_ops, printed, quiet_context

REGION = "eu-west-1"
ROLE = apigateway_account.role_name(REGION)
ACCESS_GROUP = "/aws/apigateway/demo/access"
CF_GROUP = "/aws/cloudfront/demo/access"
DISTRIBUTION_ARN = "arn:aws:cloudfront::123456789012:distribution/E2EXAMPLE"
TAGS = {"stack": "demo", "managed-by": "rds-edge-api"}


@pytest.fixture
def load(aws, write_config):
    """load(overrides=None) -> Config; neither step needs the operator's VPC or RDS."""
    return lambda overrides=None: config_module.load(write_config(overrides))


def apigateway():
    return boto3.client("apigateway", region_name=REGION)


def logs(region=REGION):
    return boto3.client("logs", region_name=region)


def make_api(name="demo", tags=TAGS, stage="v1"):
    """A REST API with a deployed stage, as the api step leaves it (the access log step needs no more)."""
    api_id = apigateway().create_rest_api(name=name, tags=tags, endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = apigateway().get_resources(restApiId=api_id)["items"][0]["id"]
    apigateway().put_method(restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="NONE")
    apigateway().put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
    apigateway().create_deployment(restApiId=api_id, stageName=stage)
    return api_id


def run(cfg, action, api_id=None, distribution_arn=None):
    """One run of one step action in a fresh context that knows the API / distribution, as after their steps."""
    ctx = quiet_context(cfg)
    if api_id:
        ctx.state.put("api", {"rest_api_id": api_id})
    if distribution_arn:
        ctx.state.put("cloudfront", {"arn": distribution_arn})
    action(ctx)
    return ctx


def group(name, region=REGION):
    found = [g for g in logs(region).describe_log_groups(logGroupNamePrefix=name)["logGroups"]
             if g["logGroupName"] == name]
    return found[0] if found else None


def tags_of(arn, region=REGION):
    return logs(region).list_tags_for_resource(resourceArn=arn.removesuffix(":*"))["tags"]


def account_role():
    return apigateway().get_account().get("cloudwatchRoleArn") or ""


def role_exists(name=ROLE):
    try:
        boto3.client("iam").get_role(RoleName=name)
        return True
    except boto3.client("iam").exceptions.NoSuchEntityException:
        return False


# --- the stage's access log ----------------------------------------------------------------------------

@pytest.mark.iam  # AWS's managed AmazonAPIGatewayPushToCloudWatchLogs
def test_access_log_is_json_to_a_tagged_group_with_the_key_id_never_its_value(load, aws_rules):
    active = aws_rules(*rules.request_logging_rules())
    cfg = load({"function": {"log_retention_days": 14}})
    api_id = make_api()
    ctx = run(cfg, api_access_log.ensure, api_id)
    stage = apigateway().get_stage(restApiId=api_id, stageName="v1")
    settings = stage["accessLogSettings"]
    found = group(ACCESS_GROUP)
    assert settings["destinationArn"] == found["arn"].removesuffix(":*")  # the group, without DescribeLogGroups' :*
    fields = json.loads(settings["format"])  # JSON: every value a quoted $context variable
    assert fields["apiKeyId"] == "$context.identity.apiKeyId" and fields["requestId"] == "$context.requestId"
    assert "$context.identity.apiKey\"" not in settings["format"] and "$context.identity.apiKey," not in settings["format"]
    assert {"$context.status", "$context.responseLatency", "$context.identity.sourceIp"} <= set(fields.values())
    assert not any("querystring" in v or "header" in v for v in fields.values())  # never the key
    assert found["retentionInDays"] == 14 and tags_of(found["arn"]) == TAGS
    # the account had no CloudWatch role: the toolkit's, tagged, became it after IAM propagated (2 refusals)
    assert account_role().endswith(f":role/{ROLE}")
    role = boto3.client("iam").get_role(RoleName=ROLE)["Role"]
    assert {t["Key"]: t["Value"] for t in role["Tags"]} == TAGS
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "apigateway.amazonaws.com"}
    attached = boto3.client("iam").list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"]
    assert [a["PolicyArn"] for a in attached] == [
        "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"]
    refused = [r for r in active if r.name.startswith("a new role")][0]
    assert len(refused.seen) == 3  # two refusals, then accepted
    assert "waiting for IAM role" in printed(ctx)


@pytest.mark.iam  # AWS's managed AmazonAPIGatewayPushToCloudWatchLogs
def test_execution_logs_are_errors_only_without_data_to_a_group_made_first_and_removed_with_them(load, aws_rules):
    """Prowler's apigateway_restapi_logging_enabled counts execution logging; ERROR level keeps an integration
    failure's reason, data trace off keeps request and response bodies out."""
    aws_rules(*rules.request_logging_rules())
    cfg = load({"function": {"log_retention_days": 14}})
    api_id = make_api()
    run(cfg, api_access_log.ensure, api_id)
    settings = apigateway().get_stage(restApiId=api_id, stageName="v1")["methodSettings"]["*/*"]
    assert (settings["loggingLevel"], settings["dataTraceEnabled"]) == ("ERROR", False)
    execution = group(f"API-Gateway-Execution-Logs_{api_id}/v1")
    assert execution["retentionInDays"] == 14 and tags_of(execution["arn"]) == TAGS
    run(load({"logs": {"api_access": False}}), api_access_log.ensure, api_id)
    assert apigateway().get_stage(restApiId=api_id, stageName="v1")["methodSettings"]["*/*"]["loggingLevel"] == "OFF"
    assert group(f"API-Gateway-Execution-Logs_{api_id}/v1") is None


@pytest.mark.iam  # AWS's managed AmazonAPIGatewayPushToCloudWatchLogs
def test_a_second_run_changes_nothing(load, aws_rules):
    aws_rules(*rules.request_logging_rules())
    cfg = load()
    api_id = make_api()
    run(cfg, api_access_log.ensure, api_id)
    again = run(cfg, api_access_log.ensure, api_id)
    assert changing_ops(again) == []


@pytest.mark.iam  # AWS's managed AmazonAPIGatewayPushToCloudWatchLogs
def test_drifted_settings_are_put_back(load, aws_rules):
    aws_rules(*rules.request_logging_rules())
    cfg = load()
    api_id = make_api()
    run(cfg, api_access_log.ensure, api_id)
    apigateway().update_stage(restApiId=api_id, stageName="v1", patchOperations=[
        {"op": "replace", "path": "/accessLogSettings/format", "value": '{"id":"$context.requestId"}'}])
    ctx = run(cfg, api_access_log.ensure, api_id)
    assert changing_ops(ctx) == ["UpdateStage"]
    apigateway().update_stage(restApiId=api_id, stageName="v1", patchOperations=[
        {"op": "replace", "path": "/*/*/logging/dataTrace", "value": "true"}])
    assert changing_ops(run(cfg, api_access_log.ensure, api_id)) == ["UpdateStage"]
    assert apigateway().get_stage(restApiId=api_id, stageName="v1")["methodSettings"]["*/*"]["dataTraceEnabled"] is False
    assert apigateway().get_stage(restApiId=api_id, stageName="v1")["accessLogSettings"]["format"] == \
        api_access_log.FORMAT


@pytest.mark.iam  # AWS's managed AmazonAPIGatewayPushToCloudWatchLogs
def test_an_account_role_someone_else_set_is_used_and_never_removed(load, aws_rules):
    theirs = "arn:aws:iam::123456789012:role/their-apigateway-logs"
    apigateway().update_account(patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": theirs}])
    aws_rules(*rules.request_logging_rules())
    cfg = load()
    api_id = make_api()
    ctx = run(cfg, api_access_log.ensure, api_id)
    assert account_role() == theirs and not role_exists()
    assert apigateway().get_stage(restApiId=api_id, stageName="v1")["accessLogSettings"]["destinationArn"]
    assert "left as set" in ctx.outputs["API Gateway logging role"]
    run(cfg, api_access_log.destroy, api_id)
    assert account_role() == theirs and group(ACCESS_GROUP) is None


@pytest.mark.iam  # AWS's managed AmazonAPIGatewayPushToCloudWatchLogs
def test_teardown_keeps_the_account_role_while_another_api_logs_through_it(load, aws_rules):
    aws_rules(*rules.request_logging_rules())
    cfg = load()
    api_id = make_api()
    run(cfg, api_access_log.ensure, api_id)
    other = make_api(name="someone-else", tags={"team": "payments"}, stage="prod")
    apigateway().update_stage(restApiId=other, stageName="prod", patchOperations=[
        {"op": "replace", "path": "/*/*/logging/loglevel", "value": "INFO"}])
    ctx = run(cfg, api_access_log.destroy, api_id)
    assert account_role().endswith(f":role/{ROLE}") and role_exists()
    assert "someone-else/prod" in printed(ctx) and group(ACCESS_GROUP) is None
    apigateway().delete_rest_api(restApiId=other)  # once nothing else logs, the next teardown releases it
    run(cfg, api_access_log.destroy, api_id)
    assert account_role() == "" and not role_exists()


@pytest.mark.iam  # AWS's managed AmazonAPIGatewayPushToCloudWatchLogs
def test_another_stack_of_the_toolkit_counts_as_another_user(load, aws_rules, write_config):
    aws_rules(*rules.request_logging_rules())
    cfg = load()
    api_id = make_api()
    run(cfg, api_access_log.ensure, api_id)
    second = config_module.load(write_config({"stack": {"name": "second"}}, name="second.toml"))
    second_api = make_api(name="second", tags={"stack": "second", "managed-by": "rds-edge-api"})
    run(second, api_access_log.ensure, second_api)
    run(cfg, api_access_log.destroy, api_id)  # the first stack made the role; the second still logs through it
    apigateway().delete_rest_api(restApiId=api_id)  # as the first stack's api step does next
    assert account_role().endswith(f":role/{ROLE}") and role_exists()
    run(second, api_access_log.destroy, second_api)  # no state needed: ownership is the role's name and tag
    assert account_role() == "" and not role_exists()


@pytest.mark.iam  # AWS's managed AmazonAPIGatewayPushToCloudWatchLogs
def test_api_access_false_removes_the_log_and_releases_the_role(load, aws_rules):
    aws_rules(*rules.request_logging_rules())
    api_id = make_api()
    run(load(), api_access_log.ensure, api_id)
    off = load({"logs": {"api_access": False}})
    ctx = run(off, api_access_log.ensure, api_id)
    assert "accessLogSettings" not in apigateway().get_stage(restApiId=api_id, stageName="v1") or \
        not apigateway().get_stage(restApiId=api_id, stageName="v1")["accessLogSettings"]
    assert group(ACCESS_GROUP) is None and account_role() == "" and not role_exists()
    assert "API access log" not in ctx.outputs
    assert changing_ops(run(off, api_access_log.ensure, api_id)) == []


def test_plan_of_a_new_stack_announces_and_changes_nothing(load, aws_rules):
    aws_rules(*rules.request_logging_rules())
    ctx = quiet_context(load(), planning=True)
    api_access_log.ensure(ctx)
    text = printed(ctx)
    assert f"would create IAM role {ROLE}" in text and "would change: API Gateway account setting" in text
    assert f"would create access log of stage v1 to {ACCESS_GROUP}" in text
    assert account_role() == "" and not role_exists() and group(ACCESS_GROUP) is None


def test_the_rules_refuse_what_aws_refuses(aws_rules):
    """Out of the toolkit's order, or with a format lacking a request id, AWS refuses: the rules make moto agree."""
    from botocore.exceptions import ClientError
    api_id = make_api()
    aws_rules(rules.access_logging_needs_the_account_role())
    with pytest.raises(ClientError, match="CloudWatch Logs role ARN must be set"):
        apigateway().update_stage(restApiId=api_id, stageName="v1", patchOperations=[
            {"op": "replace", "path": "/accessLogSettings/destinationArn", "value": "arn:aws:logs:x"}])
    apigateway().update_account(patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": "arn:r"}])
    aws_rules(rules.access_log_format_needs_a_request_id())
    with pytest.raises(ClientError, match="requestId"):
        apigateway().update_stage(restApiId=api_id, stageName="v1", patchOperations=[
            {"op": "replace", "path": "/accessLogSettings/format", "value": '{"ip":"$context.identity.sourceIp"}'}])
    aws_rules(rules.delivery_parts_in_use_cannot_be_deleted())
    edge = logs("us-east-1")
    edge.create_log_group(logGroupName="g")
    edge.put_delivery_source(name="s", resourceArn=DISTRIBUTION_ARN, logType="ACCESS_LOGS")
    destination = edge.put_delivery_destination(name="d", deliveryDestinationConfiguration={
        "destinationResourceArn": "arn:aws:logs:us-east-1:123456789012:log-group:g"})["deliveryDestination"]
    edge.create_delivery(deliverySourceName="s", deliveryDestinationArn=destination["arn"])
    for call, name in ((edge.delete_delivery_source, "s"), (edge.delete_delivery_destination, "d")):
        with pytest.raises(ClientError, match="ConflictException"):
            call(name=name)


# --- CloudFront's standard logging (v2) --------------------------------------------------------------------

def edge_logs():
    return logs("us-east-1")


def deliveries():
    return edge_logs().describe_deliveries()["deliveries"]


def test_cloudfront_logging_is_a_tagged_delivery_to_a_tagged_group(load, aws_rules):
    aws_rules(*rules.request_logging_rules())
    cfg = load()
    run(cfg, cloudfront_logging.ensure, distribution_arn=DISTRIBUTION_ARN)
    source = edge_logs().get_delivery_source(name="demo-cloudfront")["deliverySource"]
    assert source["resourceArns"] == [DISTRIBUTION_ARN] and source["logType"] == "ACCESS_LOGS"
    destination = edge_logs().get_delivery_destination(name="demo-cloudfront-logs")["deliveryDestination"]
    found = group(CF_GROUP, "us-east-1")
    assert destination["deliveryDestinationConfiguration"] == {"destinationResourceArn": found["arn"].removesuffix(":*")}
    assert destination["outputFormat"] == "json"
    [delivery] = deliveries()
    assert delivery["deliverySourceName"] == "demo-cloudfront" and delivery["deliveryDestinationArn"] == destination["arn"]
    assert "cs-uri-query" not in delivery["recordFields"] and "c-ip" in delivery["recordFields"]  # never ?key=
    for arn in (source["arn"], destination["arn"], delivery["arn"], found["arn"]):
        assert tags_of(arn, "us-east-1") == TAGS
    assert found["retentionInDays"] == 30
    assert changing_ops(run(cfg, cloudfront_logging.ensure, distribution_arn=DISTRIBUTION_ARN)) == []


def test_a_new_distribution_replaces_the_source_and_its_delivery(load, aws_rules):
    aws_rules(*rules.request_logging_rules())
    cfg = load()
    run(cfg, cloudfront_logging.ensure, distribution_arn=DISTRIBUTION_ARN)
    [old] = deliveries()
    newer = DISTRIBUTION_ARN.replace("E2EXAMPLE", "E3NEWER")
    ctx = run(cfg, cloudfront_logging.ensure, distribution_arn=newer)
    assert changing_ops(ctx) == ["DeleteDelivery", "DeleteDeliverySource", "PutDeliverySource", "CreateDelivery"]
    assert edge_logs().get_delivery_source(name="demo-cloudfront")["deliverySource"]["resourceArns"] == [newer]
    [delivery] = deliveries()
    assert delivery["id"] != old["id"]


def test_cloudfront_false_and_teardown_remove_every_part(load, aws_rules):
    aws_rules(*rules.request_logging_rules())
    run(load(), cloudfront_logging.ensure, distribution_arn=DISTRIBUTION_ARN)
    off = load({"logs": {"cloudfront": False}})
    run(off, cloudfront_logging.ensure, distribution_arn=DISTRIBUTION_ARN)
    assert deliveries() == [] and group(CF_GROUP, "us-east-1") is None
    assert edge_logs().describe_delivery_sources()["deliverySources"] == []
    assert edge_logs().describe_delivery_destinations()["deliveryDestinations"] == []
    run(load(), cloudfront_logging.ensure, distribution_arn=DISTRIBUTION_ARN)
    ctx = quiet_context(load())  # no state: found by name, removed because tagged as ours
    cloudfront_logging.destroy(ctx)
    assert deliveries() == [] and group(CF_GROUP, "us-east-1") is None
    assert edge_logs().describe_delivery_sources()["deliverySources"] == []


def test_parts_not_tagged_as_ours_are_left(load, aws_rules):
    aws_rules(*rules.request_logging_rules())
    edge_logs().put_delivery_source(name="demo-cloudfront", resourceArn=DISTRIBUTION_ARN, logType="ACCESS_LOGS",
                                    tags={"team": "edge"})
    cloudfront_logging.destroy(quiet_context(load()))
    assert edge_logs().get_delivery_source(name="demo-cloudfront")["deliverySource"]["resourceArns"] == \
        [DISTRIBUTION_ARN]


def test_config_logs_section(load, write_config):
    cfg = load()
    assert cfg.logs.api_access is True and cfg.logs.cloudfront is True
    assert load({"logs": {"api_access": False, "cloudfront": False}}).logs == config_module.LogsConfig(False, False)
    from provision.errors import ConfigError
    with pytest.raises(ConfigError, match="logs.cloudfront: must be true or false"):
        config_module.load(write_config({"logs": {"cloudfront": "no"}}))
    with pytest.raises(ConfigError, match="logs.waf: unknown key"):
        config_module.load(write_config({"logs": {"waf": False}}))


# --- the caller's address in the function's log line ------------------------------------------------------

@pytest.fixture
def handler_module():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambda"))
    try:
        import handler
        yield handler
    finally:
        sys.path.pop(0)


@pytest.mark.parametrize("forwarded_for, caller", [
    ("203.0.113.9", "203.0.113.9"),                      # the viewer sent none: CloudFront's entry alone
    ("10.0.0.1, 203.0.113.9", "203.0.113.9"),            # the viewer's own claim first, CloudFront's last
    ("spoofed, 2001:db8::7", "2001:db8::7"),
    ("203.0.113.9, not-an-address", None), ("", None), (None, None), (7, None),
    ("2001:DB8:0:0::7", "2001:db8::7"),                  # an IPv6 address in its one short form
    ("203.0.113.009", None), ("203.0.113", None), ("203.0.113.9\x00", None),  # not four plain decimal parts
])
def test_the_caller_is_the_entry_cloudfront_appended(handler_module, forwarded_for, caller):
    assert handler_module.caller_address(forwarded_for) == caller


def test_the_log_line_names_caller_and_edge(handler_module, capsys):
    with pytest.raises(handler_module.BadRequest):  # no key: refused before any database call, logged all the same
        handler_module.handler({"forwardedFor": "10.9.9.9, 198.51.100.4", "sourceIp": "130.176.1.2"}, None)
    line = json.loads(capsys.readouterr().out)
    assert line["callerIp"] == "198.51.100.4" and line["edgeIp"] == "130.176.1.2" and line["outcome"] == "bad_request"


@pytest.mark.parametrize("header", ["X-Forwarded-For", "x-forwarded-for", "X-FORWARDED-FOR"])
def test_the_template_passes_x_forwarded_for_whatever_its_case(header):
    """Rendered by a real Velocity engine (provision/local/vtl.py); a REST API keeps the sender's header case."""
    from provision.local import vtl
    from provision.steps import api
    value = "10.0.0.1, 203.0.113.9"
    event = json.loads(vtl.render(api.TEMPLATE, vtl.Input("", {}, {"key": "42"}, {header: value, "host": "x"}),
                                  {"identity": {"sourceIp": "130.176.1.2"}}))
    assert event == {"key": "42", "after": "", "forwardedFor": value, "sourceIp": "130.176.1.2"}
    hostile = json.loads(vtl.render(api.TEMPLATE, vtl.Input("", {}, {"key": "42"}, {header: "a'\"b\\, 1.2.3.4"}),
                                    {"identity": {"sourceIp": "130.176.1.2"}}))
    assert hostile["forwardedFor"] == "a'\"b\\, 1.2.3.4" and set(hostile) == set(event)  # no smuggled fields


# --- logs: the access log and CloudFront's records merged with the function's and WAF's ---------------------

def put_events(region, name, events):
    client = logs(region)
    if group(name, region) is None:
        client.create_log_group(logGroupName=name)
    client.create_log_stream(logGroupName=name, logStreamName="s")
    client.put_log_events(logGroupName=name, logStreamName="s",
                          logEvents=[{"timestamp": t, "message": m} for t, m in sorted(events)])


def seed_one_request(t):
    """One allowed request as each log records it, CloudFront first, the function last; and a direct call."""
    from datetime import datetime, timezone
    when = datetime.fromtimestamp(t / 1000, timezone.utc)
    put_events("us-east-1", CF_GROUP, [(t + 900, json.dumps({
        "date": when.strftime("%Y-%m-%d"), "time": when.strftime("%H:%M:%S"), "c-ip": "203.0.113.9",
        "sc-status": "200", "time-taken": "0.042", "x-edge-location": "NRT57-P1", "cs-uri-stem": "/items"}))])
    put_events("us-east-1", "aws-waf-logs-demo", [(t + 1010, json.dumps({
        "timestamp": t + 1010, "action": "ALLOW", "httpRequest": {"clientIp": "203.0.113.9", "args": "key=sku-1"}}))])
    put_events(REGION, ACCESS_GROUP, [
        (t + 1040, json.dumps({"requestId": "r-1", "requestTimeEpoch": str(t + 1020), "ip": "130.176.1.2",
                               "status": "200", "responseLatency": "31", "apiKeyId": "k1a2b3"})),
        (t + 2040, json.dumps({"requestId": "r-2", "requestTimeEpoch": str(t + 2000), "ip": "198.51.100.50",
                               "status": "403", "responseLatency": "2", "apiKeyId": "-"}))])
    put_events(REGION, "/aws/lambda/demo-api", [(t + 1030, json.dumps({
        "callerIp": "203.0.113.9", "edgeIp": "130.176.1.2", "keyLength": 5, "rows": 1, "ms": 12.5,
        "outcome": "ok"}))])


def logs_json(cfg):
    from provision.commands import logs as logs_command
    ctx = quiet_context(cfg)
    logs_command.show(ctx, since=600, follow=False, as_json=True)
    return [json.loads(line) for line in printed(ctx).splitlines() if line.startswith("{")], printed(ctx)


def test_logs_merges_cloudfront_waf_the_access_log_and_the_function(load):
    import time
    t = int(time.time() * 1000) - 60_000
    seed_one_request(t)
    rows, text = logs_json(load())
    assert [(r["source"], r["address"], r["outcome"], r["ms"]) for r in rows] == [
        ("cloudfront", "203.0.113.9", "200 at CloudFront", 42.0),
        ("waf", "203.0.113.9", "allowed by WAF", None),
        ("api", "130.176.1.2", "200 at API Gateway", 31.0),       # who connected: CloudFront's edge
        ("function", "203.0.113.9", "200", 12.5),
        ("api", "198.51.100.50", "403 at API Gateway", 2.0),      # a direct call: only the access log saw it
    ]
    assert rows[3]["edge"] == "130.176.1.2"
    assert "sku-1" not in text and "k1a2b3" not in text and "no log group" not in text


def test_logs_leaves_out_what_the_config_turned_off(load):
    import time
    t = int(time.time() * 1000) - 60_000
    seed_one_request(t)
    rows, text = logs_json(load({"logs": {"api_access": False, "cloudfront": False}}))
    assert [r["source"] for r in rows] == ["waf", "function"]
    assert "no log group" not in text


def test_logs_says_which_log_is_missing(load):
    import time
    put_events(REGION, "/aws/lambda/demo-api", [(int(time.time() * 1000) - 1000, json.dumps({
        "callerIp": "203.0.113.9", "edgeIp": "130.176.1.2", "keyLength": 1, "rows": 1, "ms": 1, "outcome": "ok"}))])
    rows, text = logs_json(load())
    assert [r["source"] for r in rows] == ["function"]
    assert f"no log group {ACCESS_GROUP} in {REGION}" in text and f"no log group {CF_GROUP} in us-east-1" in text


# --- the operator's policy covers the new calls, narrowly ------------------------------------------------

def test_policy_passes_the_logging_role_to_api_gateway_only_and_names_the_delivery_parts(load):
    from provision.iam import policy
    calls = [policy.Call(service, operation, ("deploy",), ("dns",)) for service, operation in (
        ("lambda", "CreateFunction"), ("apigateway", "UpdateAccount"), ("apigateway", "GetAccount"),
        ("apigatewayv2", "GetApis"), ("iam", "CreateRole"), ("logs", "PutDeliverySource"),
        ("logs", "CreateDelivery"), ("logs", "DescribeDeliveries"), ("logs", "ListTagsForResource"))]
    doc = policy.document(load(), "123456789012", policy.Network("vpc-1", "sg-1"), calls)
    passing = {s["Condition"]["StringEquals"]["iam:PassedToService"]: s["Resource"]
               for s in doc["Statement"] if "iam:PassRole" in s["Action"]}
    assert passing == {"lambda.amazonaws.com": "arn:aws:iam::123456789012:role/demo-fn",
                       "apigateway.amazonaws.com": f"arn:aws:iam::123456789012:role/{ROLE}"}
    by_action = {a: s["Resource"] for s in doc["Statement"] for a in s["Action"]}
    assert "arn:aws:cloudfront::123456789012:distribution/*" in by_action["cloudfront:AllowVendedLogDeliveryForResource"]
    assert "arn:aws:logs:us-east-1:123456789012:delivery-source:demo-cloudfront" in by_action["logs:CreateDelivery"]
    assert by_action["logs:DescribeDeliveries"] == "*"
    assert f"arn:aws:logs:{REGION}:123456789012:log-group:{ACCESS_GROUP}" in by_action["logs:ListTagsForResource"]
    assert f"arn:aws:apigateway:{REGION}::/apis" in by_action["apigateway:GET"]
    assert f"arn:aws:iam::123456789012:role/{ROLE}" in by_action["iam:CreateRole"]


# --- the whole stack, with AWS's rules on ------------------------------------------------------------------

@pytest.mark.iam
def test_deploy_again_changes_nothing_and_teardown_leaves_nothing(load_seeded, hosted_zone, write_config, aws_rules):
    from tests.support import Run, inventory
    aws_rules(*rules.request_logging_rules())
    overrides = {"domain": {"hosted_zone_id": hosted_zone}}
    cfg = load_seeded(overrides)
    path = write_config(overrides)
    up = Run("deploy", path)
    assert up.code == 0, up.text
    found = inventory(cfg)
    for part in (f"log group {ACCESS_GROUP}", f"log group {CF_GROUP}", "delivery source demo-cloudfront",
                 "delivery destination demo-cloudfront-logs", f"role {ROLE}",
                 f"api gateway account logging role in {REGION}"):
        assert part in found, (part, found)
    [distribution] = boto3.client("cloudfront").list_distributions()["DistributionList"]["Items"]
    source = edge_logs().get_delivery_source(name="demo-cloudfront")["deliverySource"]
    assert source["resourceArns"] == [distribution["ARN"]]
    again = Run("deploy", path)
    assert again.code == 0 and again.text.rstrip().endswith("(0 changing)"), again.text
    down = Run("teardown", path, "--yes")
    assert down.code == 0, down.text
    assert inventory(cfg) == [] and account_role() == ""
