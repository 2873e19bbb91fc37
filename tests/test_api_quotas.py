"""API Gateway's fixed control-plane quotas (DeleteRestApi 1 per 30 s, UpdateUsagePlan 1 per 20 s,
CreateDeployment 1 per 5 s, CreateRestApi 1 per 3 s per account; "Amazon API Gateway quotas", which says
they cannot be increased): moto has none, tests/aws_rules.py's ``api_gateway_quota`` adds them, and the
toolkit waits as long as each requires, honouring Retry-After, bounded and said.

The issue's case: two stacks torn down within 30 s. Before, the second failed with TooManyRequestsException
after the transient backoff (about 15 s in all)."""
import boto3
import pytest
from botocore.exceptions import ClientError

from provision import config as config_module, waits
from provision.errors import DeployError
from provision.steps import api
from tests.aws_rules import Clock, Rule, always_throttled, api_gateway_quota, fail_with, operation
from tests.support import failing, printed, quiet_context, response

QUOTAS = waits.API_GATEWAY_QUOTAS
pytestmark = pytest.mark.lenient("throttling", reason="each test's own api_gateway_quota rules stand for these "
                                                      "quotas, on its Clock, to assert the exact waits")


@pytest.fixture
def stacks(aws, write_config):
    """Two stacks' configs in one account: demo and demo2."""
    return [config_module.load(write_config({"stack": {"name": name, "region": "eu-west-1"}}, name=f"{name}.toml"))
            for name in ("demo", "demo2")]


def step(cfg, clock, destroy=False):
    """One run of the api step with the test's clock as its sleep."""
    ctx = quiet_context(cfg)
    ctx.sleep = clock
    (api.destroy if destroy else api.ensure)(ctx)
    return ctx


def rest_apis():
    return sorted(a["name"] for a in boto3.client("apigateway", region_name="eu-west-1").get_rest_apis()["items"])


def quota_rules(clock, retry_after=True):
    return [api_gateway_quota(clock, op, every, retry_after) for op, every in QUOTAS.items()]


def test_two_stacks_created_a_second_apart_wait_for_create_quotas(aws_rules, stacks):
    clock = Clock()
    aws_rules(*quota_rules(clock))
    step(stacks[0], clock)
    clock.advance(1)
    second = step(stacks[1], clock)
    assert clock.slept == [2, 2]  # CreateRestApi (1 per 3 s) at t=1, then CreateDeployment (1 per 5 s) at t=3
    assert rest_apis() == ["demo", "demo2"]
    assert "waiting for API Gateway's CreateRestApi quota" in printed(second)
    assert "waiting for API Gateway's CreateDeployment quota" in printed(second)


@pytest.mark.parametrize("retry_after, slept", [(True, [12, 10]), (False, [20, 30])],
                         ids=["Retry-After honoured", "the quota's interval without Retry-After"])
def test_two_teardowns_within_30_seconds_both_finish(aws_rules, stacks, retry_after, slept):
    for cfg in stacks:
        step(cfg, Clock())
    clock = Clock()
    aws_rules(*quota_rules(clock, retry_after))
    step(stacks[0], clock, destroy=True)
    clock.advance(8)  # the case: the second teardown 8 s after the first
    second = step(stacks[1], clock, destroy=True)
    # UpdateUsagePlan (detach stages) at t=8 waits for t=20; DeleteRestApi then waits for t=30. Without
    # Retry-After each wait is the whole interval: t=28, then t=58.
    assert clock.slept == slept
    assert rest_apis() == []
    plans = boto3.client("apigateway", region_name="eu-west-1").get_usage_plans()["items"]
    assert plans == []
    said = printed(second)
    assert "waiting for API Gateway's UpdateUsagePlan quota (1 call per 20 s per account, fixed)" in said
    assert "waiting for API Gateway's DeleteRestApi quota (1 call per 30 s per account, fixed)" in said


def test_the_quota_wait_is_bounded_and_says_how_to_go_on(aws_rules, stacks):
    step(stacks[0], Clock())
    throttle = aws_rules(always_throttled("DeleteRestApi"))
    clock = Clock()
    with pytest.raises(DeployError, match=r"gave up waiting for API Gateway's DeleteRestApi quota after 5m00s .*"
                                          r"TooManyRequestsException.*run the same command again"):
        step(stacks[0], clock, destroy=True)
    assert sum(clock.slept) == waits.QUOTA_TIMEOUT
    assert len(throttle.seen) == len(clock.slept) + 1 == 11  # Retry-After 30: ten waits, eleven tries
    assert rest_apis() == ["demo"]  # nothing lost: the next run deletes it


def test_retry_after_is_read_from_the_wire_and_the_transient_hook_leaves_the_throttle(stacks):
    """Injected below botocore's parser, so the real header parsing runs: one wait of Retry-After's 7 s,
    none by the transient hook (whose backoff is shorter than the quota). (moto still serves the injected
    attempt, hence an update that may be made twice.)"""
    step(stacks[0], Clock())
    ctx = quiet_context(stacks[0])
    apigw = ctx.client("apigateway")
    plan_id = apigw.get_usage_plans()["items"][0]["id"]
    attempts = failing(apigw, "UpdateUsagePlan", 1, lambda: response(
        429, '{"message": "Too Many Requests"}',
        {"x-amzn-ErrorType": "TooManyRequestsException", "Retry-After": "7"}))
    waits.within_quota(ctx, apigw.update_usage_plan, usagePlanId=plan_id,
                       patchOperations=[{"op": "replace", "path": "/description", "value": "changed"}])
    assert len(attempts) == 2 and ctx.sleep == [7.0]
    assert apigw.get_usage_plan(usagePlanId=plan_id)["description"] == "changed"


def test_other_throttles_are_still_the_transient_hooks(stacks):
    ctx = quiet_context(stacks[0])
    apigw = ctx.client("apigateway")
    attempts = failing(apigw, "GetRestApis", 2, lambda: response(
        429, '{"message": "Too Many Requests"}', {"x-amzn-ErrorType": "TooManyRequestsException"}))
    apigw.get_rest_apis()
    assert len(attempts) == 3 and len(ctx.sleep) == 2


def test_a_quota_operation_failing_otherwise_fails_at_once(aws_rules, stacks):
    refused = aws_rules(Rule("DeleteRestApi refused", "a test's stand-in", operation("apigateway", "DeleteRestApi"),
                             fail_with("BadRequestException", "Cannot delete: in use")))
    ctx = quiet_context(stacks[0])
    with pytest.raises(ClientError) as err:
        waits.within_quota(ctx, ctx.client("apigateway").delete_rest_api, restApiId="abc123")
    assert err.value.response["Error"]["Code"] == "BadRequestException"
    assert len(refused.seen) == 1 and ctx.sleep == []
