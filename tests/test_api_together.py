"""The api and api_access_log steps send their independent calls together (issue 18), in the order AWS needs.

Proven without timing: every AWS call's start and end are recorded in the order they happened, and calls
that must be in flight at once meet at a barrier (it breaks, failing the call, when they do not). Ordering
constraints are read from the record: a call starts only after what it needs has ended.
"""
import json
import threading
from collections import Counter
from dataclasses import replace

import boto3
import pytest
from botocore.client import BaseClient

from provision import config as config_module, runner
from provision.steps import STEPS, api, api_access_log, function, iam_role, security_groups
from tests import aws_rules as rules
from tests.support import changing_ops, printed, quiet_context, run_steps

pytestmark = pytest.mark.iam

BEFORE_API = (iam_role, security_groups, function)
APIGATEWAY = frozenset(boto3.client("apigateway", region_name="us-east-1").meta.service_model.operation_names)
BARRIER_TIMEOUT = 10  # a bound for the barrier, not a measure: calls that overlap meet at once


class Flights:
    """Every AWS call's start and end, as they happened; ``meet`` makes calls wait for each other."""

    def __init__(self):
        self.events: list[tuple[str, str]] = []  # ("start" | "end", operation)
        self.most_apigateway = 0
        self._apigateway = 0
        self._lock = threading.Lock()
        self._gates: list[tuple[threading.Barrier, Counter]] = []

    def meet(self, *operations: str) -> None:
        """The next calls of these operations (an operation named twice: its next two) must be in flight at once."""
        self._gates.append((threading.Barrier(len(operations), timeout=BARRIER_TIMEOUT), Counter(operations)))

    def clear(self) -> None:
        with self._lock:
            self.events.clear()
            self.most_apigateway = 0

    def call(self, original, client, operation, params):
        service = client.meta.service_model.service_name
        with self._lock:
            self.events.append(("start", operation))
            if service == "apigateway":
                self._apigateway += 1
                self.most_apigateway = max(self.most_apigateway, self._apigateway)
            gate = next((barrier for barrier, left in self._gates if left[operation] > 0), None)
            if gate is not None:
                next(left for barrier, left in self._gates if barrier is gate)[operation] -= 1
        try:
            if gate is not None:
                gate.wait()
            return original(client, operation, params)
        finally:
            with self._lock:
                self.events.append(("end", operation))
                if service == "apigateway":
                    self._apigateway -= 1

    def ops(self) -> list[str]:
        return [op for kind, op in self.events if kind == "start"]

    def first_start(self, *operations: str) -> int:
        return min(i for i, (kind, op) in enumerate(self.events) if kind == "start" and op in operations)

    def last_end(self, *operations: str) -> int:
        return max(i for i, (kind, op) in enumerate(self.events) if kind == "end" and op in operations)

    def after(self, later: tuple[str, ...], earlier: tuple[str, ...]) -> bool:
        """Every call of ``later`` started after every call of ``earlier`` ended."""
        return self.first_start(*later) > self.last_end(*earlier)

    def unmet(self) -> list[Counter]:
        return [left for _, left in self._gates if +left]


@pytest.fixture
def flights(aws_rules, monkeypatch):
    """Flights over every AWS call (outside the aws_rules, which it wraps)."""
    recorder = Flights()
    original = BaseClient._make_api_call
    monkeypatch.setattr(BaseClient, "_make_api_call",
                        lambda client, operation, params: recorder.call(original, client, operation, params))
    yield recorder
    assert recorder.unmet() == []  # every gate was met: the calls it names were made


def ready_for_api(cfg):
    """A context after the steps the api step needs (so it knows the function)."""
    ctx = quiet_context(cfg)
    for step in BEFORE_API:
        step.ensure(ctx)
    return ctx


def gateway():
    return boto3.client("apigateway", region_name="eu-west-1")


def test_observe_reads_at_once_and_a_no_op_ensure_with_it_makes_no_call(cfg, flights):
    run_steps(cfg, *BEFORE_API, api)
    ctx = ready_for_api(cfg)
    flights.clear()
    flights.meet("GetRestApis", "GetApiKeys", "GetUsagePlans")
    flights.meet("GetRequestValidators", "GetResources", "GetStages")  # inside the API, once it is found
    seen = api.observe(ctx)
    assert sorted(flights.ops()) == sorted(["GetRestApis", "GetApiKeys", "GetUsagePlans",
                                            "GetRequestValidators", "GetResources", "GetStages", "GetMethod",
                                            "GetDeployment", "GetUsagePlanKeys"])
    assert flights.after(("GetRequestValidators", "GetResources", "GetStages"), ("GetRestApis",))
    assert flights.after(("GetMethod",), ("GetResources",)) and flights.after(("GetDeployment",), ("GetStages",))
    assert flights.after(("GetUsagePlanKeys",), ("GetUsagePlans",))

    flights.clear()
    api.ensure(ctx, seen=seen)
    assert flights.ops() == [] and changing_ops(ctx) == []
    rest = gateway().get_rest_apis()["items"][0]
    assert ctx.state.get("api")["rest_api_id"] == rest["id"]
    assert ctx.outputs["API key id"] == gateway().get_api_keys()["items"][0]["id"]


def test_a_no_op_deploy_makes_no_call_in_the_api_steps_turn(cfg, flights):
    """The runner's early observe did the reading: the api step's ensure has nothing left to ask."""
    steps = tuple(step for step in STEPS if step.name in ("iam_role", "security_groups", "proxy", "function", "api"))
    runner.deploy(quiet_context(cfg), steps)
    in_its_turn: list = []

    def ensure(ctx, **kwargs):
        start = len(flights.events)  # the other steps' ensures run beside it: only API Gateway's calls count
        api.ensure(ctx, **kwargs)
        in_its_turn.append([op for kind, op in flights.events[start:] if kind == "start" and op in APIGATEWAY])

    ctx = quiet_context(cfg)
    runner.deploy(ctx, tuple(replace(step, ensure=ensure) if step.name == "api" else step for step in steps))
    assert in_its_turn == [[]] and changing_ops(ctx) == []
    assert "GetRestApis" in flights.ops() and "GetMethod" in flights.ops()  # read early, not skipped


def test_ensure_without_seen_observes_itself(cfg, flights):
    run_steps(cfg, *BEFORE_API, api)
    ctx = ready_for_api(cfg)
    flights.clear()
    api.ensure(ctx)
    assert Counter(flights.ops()) == Counter(["GetRestApis", "GetApiKeys", "GetUsagePlans",
                                              "GetRequestValidators", "GetResources", "GetStages", "GetMethod",
                                              "GetDeployment", "GetUsagePlanKeys"])
    assert changing_ops(ctx) == []


def test_a_deploy_from_nothing_goes_out_together_in_the_order_aws_needs(cfg, flights, aws_rules):
    """Changes outside the REST API (the key) go out beside the API's definition;
    the changes to the REST API itself go one at a time, as AWS takes them (the rule refuses one that meets
    another, and none was refused)."""
    one_at_a_time = aws_rules(rules.rest_api_refuses_a_change_while_another_is_under_way())
    ctx = ready_for_api(cfg)
    earlier = len(printed(ctx))
    flights.clear()
    flights.meet("GetRestApis", "GetApiKeys", "GetUsagePlans")
    flights.meet("CreateRequestValidator", "CreateApiKey")
    api.ensure(ctx)
    assert "another change to the REST API" not in printed(ctx)  # no change to it was refused
    changes_to_the_api = [call.operation for call in one_at_a_time.seen]
    assert changes_to_the_api.count("PutMethodResponse") == changes_to_the_api.count("PutIntegrationResponse") == 4

    made_in_api = ("CreateRequestValidator", "CreateResource", "PutMethod")
    assert flights.after(made_in_api, ("CreateRestApi",))
    assert flights.after(("PutMethod",), ("CreateRequestValidator", "CreateResource"))  # it names both
    assert flights.after(("PutMethodResponse", "PutIntegration"), ("PutMethod",))
    assert flights.after(("PutIntegrationResponse",), ("PutMethodResponse", "PutIntegration"))
    assert flights.after(("CreateDeployment",), ("PutIntegrationResponse",))
    assert "AddPermission" not in flights.ops()  # the invoke_permission step's, once the function is made
    assert flights.after(("CreateStage",), ("CreateDeployment",))
    assert flights.after(("CreateUsagePlan",), ("CreateStage", "CreateApiKey"))  # it names the stage
    assert flights.after(("CreateUsagePlanKey",), ("CreateUsagePlan",))
    assert flights.most_apigateway <= 10  # API Gateway's calls in flight kept modest
    assert changing_ops(ctx).count("CreateRestApi") == 1

    # what was made, read back
    rest = gateway().get_rest_apis()["items"][0]
    resource = next(r for r in gateway().get_resources(restApiId=rest["id"])["items"] if r["path"] == "/items")
    method = gateway().get_method(restApiId=rest["id"], resourceId=resource["id"], httpMethod="GET")
    assert set(method["methodResponses"]) == set(method["methodIntegration"]["integrationResponses"]) == {
        "200", "400", "404", "500"}
    [plan] = gateway().get_usage_plans()["items"]
    assert plan["apiStages"] == [{"apiId": rest["id"], "stage": "v1"}]
    assert [k["id"] for k in gateway().get_usage_plan_keys(usagePlanId=plan["id"])["items"]] == [
        ctx.state.get("api")["api_key_id"]]
    # the lines are said in the order of the pieces, whatever answered first
    key_id = ctx.state.get("api")["api_key_id"]
    assert [line.strip() for line in printed(ctx)[earlier:].splitlines()] == [
        "+ create REST API demo (REGIONAL)", "+ create request validator for query parameters",
        "+ create resource /items", "+ create GET /items (API key and query string 'key' required) -> Lambda",
        "+ create deployment to stage v1", "+ create API key demo", "+ create usage plan demo (10 req/s, burst 20)",
        f"+ create API key {key_id} in usage plan"]


def test_a_change_refused_while_another_is_under_way_is_sent_again(cfg, aws_rules):
    """Someone else's change to the REST API under way (an operator's, in the console): AWS refuses ours
    with ConflictException (concurrent modification); it is sent again, said, and the method ends up whole."""
    busy = aws_rules(rules.rest_api_refuses_a_change_while_another_is_under_way(busy_first=2))
    ctx = ready_for_api(cfg)
    api.ensure(ctx)
    assert [call.operation for call in busy.seen[:3]] == ["CreateRequestValidator"] * 3  # refused twice, then made
    rest = gateway().get_rest_apis()["items"][0]
    resource = next(r for r in gateway().get_resources(restApiId=rest["id"])["items"] if r["path"] == "/items")
    method = gateway().get_method(restApiId=rest["id"], resourceId=resource["id"], httpMethod="GET")
    assert set(method["methodResponses"]) == {"200", "400", "404", "500"}
    assert method["methodIntegration"]["uri"].endswith(f"{ctx.state.get('function')['arn']}/invocations")
    assert len(gateway().get_request_validators(restApiId=rest["id"])["items"]) == 1
    assert "waiting for API Gateway to finish another change to the REST API" in printed(ctx)
    assert changing_ops(run_steps(cfg, *BEFORE_API, api)) == []


def test_teardown_looks_up_at_once_and_removes_the_plans_before_the_keys_and_the_api(cfg, flights):
    run_steps(cfg, *BEFORE_API, api)
    flights.clear()
    flights.meet("GetUsagePlans", "GetApiKeys", "GetRestApis")
    flights.meet("DeleteApiKey", "DeleteRestApi")
    ctx = quiet_context(cfg)
    api.destroy(ctx)
    assert flights.after(("DeleteUsagePlan",), ("UpdateUsagePlan",))  # detached from its stage first
    assert flights.after(("DeleteApiKey", "DeleteRestApi"), ("DeleteUsagePlan",))
    assert gateway().get_rest_apis()["items"] == gateway().get_api_keys()["items"] == []
    assert gateway().get_usage_plans()["items"] == []


def test_rotation_finish_retires_the_old_key_from_the_plan_first(cfg, flights):
    run_steps(cfg, *BEFORE_API, api)
    ctx = ready_for_api(cfg)
    api.ensure(ctx, rotation="start")
    [old, new] = api.stack_keys(ctx)
    flights.clear()
    flights.meet("GetApiKeys", "GetUsagePlans")
    api.retire_old_keys(ctx)
    assert flights.after(("DeleteApiKey",), ("DeleteUsagePlanKey",))
    [plan] = gateway().get_usage_plans()["items"]
    assert [k["id"] for k in gateway().get_usage_plan_keys(usagePlanId=plan["id"])["items"]] == [new["id"]]
    assert [k["id"] for k in gateway().get_api_keys()["items"]] == [new["id"]]
    assert ctx.state.get("api")["api_key_id"] == new["id"] != old["id"]


def test_the_access_log_reads_the_stage_the_account_and_the_group_at_once(cfg, flights):
    run_steps(cfg, *BEFORE_API, api)
    ctx = ready_for_api(cfg)
    api.ensure(ctx)
    flights.clear()
    flights.meet("GetStage", "GetAccount", "DescribeLogGroups")
    api_access_log.ensure(ctx)
    assert flights.after(("UpdateStage",), ("UpdateAccount", "PutRetentionPolicy"))  # the role and the group first
    stage = gateway().get_stage(restApiId=ctx.state.get("api")["rest_api_id"], stageName="v1")
    assert json.loads(stage["accessLogSettings"]["format"]) == api_access_log.FIELDS
    before = len(changing_ops(ctx))
    flights.clear()
    flights.meet("GetStage", "GetAccount", "DescribeLogGroups")
    api_access_log.ensure(ctx)
    assert changing_ops(ctx)[before:] == []


def test_a_key_from_key_env_is_compared_from_what_observe_read_and_never_shown(load_seeded, write_config, flights,
                                                                              monkeypatch):
    value = "operator-chosen-key-value-0123456789"
    monkeypatch.setenv("TEST_API_KEY", value)
    cfg = load_seeded({"api": {"key_env": "TEST_API_KEY"}})
    run_steps(cfg, *BEFORE_API, api)
    ctx = ready_for_api(cfg)
    flights.clear()
    seen = api.observe(ctx)
    assert "GetApiKey" in flights.ops()  # the newest key's value, read with the rest
    assert value not in repr(seen)
    flights.clear()
    api.ensure(ctx, seen=seen)
    assert flights.ops() == [] and changing_ops(ctx) == []

    monkeypatch.setenv("TEST_API_KEY", value.replace("0123", "9876"))  # a new value: the key is replaced
    changed = config_module.load(write_config({"api": {"key_env": "TEST_API_KEY"}}))
    ctx = ready_for_api(changed)
    api.ensure(ctx)
    assert changing_ops(ctx) == ["DeleteApiKey", "CreateApiKey", "CreateUsagePlanKey"]
    [key] = gateway().get_api_keys(includeValues=True)["items"]
    assert key["value"] == value.replace("0123", "9876")
    assert value not in printed(ctx) and key["value"] not in printed(ctx)
