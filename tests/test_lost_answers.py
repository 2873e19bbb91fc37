"""A lost answer never makes a second resource; every resource with the stack's tags is the stack's.

The fault (tests/aws_rules.py ``lost_answers``) lets AWS (moto) act, then drops the answer: a
connection reset, or a 503, as AWS can. Resources are counted with plain boto3 (tests/support.py).
"""
import boto3
import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

from provision import waits
from provision.errors import DeployError
from tests.aws_rules import lost_answers
from tests.support import Run, expected, inventory, kinds, quiet_context

pytestmark = pytest.mark.iam

ALERTS = {"alerts": {"email": "ops@example.com"}}
# The creates with no name AWS enforces and no idempotency token: sent again, each would make a second one.
# Creates AWS would answer twice (no name it refuses to repeat): after a lost answer they are looked for, never
# sent again blindly. CreateDelivery carries no name to be refused by: cloudfront_logging looks for its delivery.
UNGUARDED_CREATES = {"CreateRestApi", "CreateApiKey", "CreateUsagePlan", "CreateRequestValidator", "CreateDelivery",
                     "CreatePolicy"}


@pytest.fixture
def dns_stack(load_seeded, hosted_zone, write_config):
    overrides = {"domain": {"hosted_zone_id": hosted_zone}, **ALERTS}
    return load_seeded(overrides), write_config(overrides)


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr(waits.random, "uniform", lambda low, high: 0.0)


@pytest.mark.parametrize("how", ["reset", "503"])
def test_each_changing_call_losing_its_answer_once_leaves_one_of_each_then_nothing(dns_stack, aws_rules, no_backoff,
                                                                                   how):
    cfg, path = dns_stack
    rule = aws_rules(lost_answers(how))
    run = Run("deploy", path)
    assert run.code == 0, run.text
    assert kinds(inventory(cfg)) == expected(cfg)
    lost = {call.operation for call in rule.seen}
    assert UNGUARDED_CREATES | {"CreateRole", "CreateFunction", "CreateWebACL", "CreateDistributionWithTags",
                                "RequestCertificate", "CreateTopic", "Subscribe"} <= lost, lost
    assert "answer lost" in run.text
    again = Run("deploy", path)
    assert again.text.rstrip().endswith("(0 changing)"), again.text
    down = Run("teardown", path, "--yes")  # the deletes lose their first answer too
    assert down.code == 0, down.text
    assert {"DeleteRestApi", "DeleteFunction", "DeleteDistribution"} <= {call.operation for call in rule.seen}
    assert inventory(cfg) == []


def test_email_validation_losing_each_answer_once_leaves_one_of_each_then_nothing(load_seeded, hosted_zone,
                                                                                   write_config, aws_rules, no_backoff):
    overrides = {"domain": {"hosted_zone_id": hosted_zone, "validation": "email", "mail_region": "us-west-2"}}
    cfg, path = load_seeded(overrides), write_config(overrides)
    rule = aws_rules(lost_answers("reset"))
    run = Run("deploy", path)
    assert run.code == 0, run.text
    assert kinds(inventory(cfg)) == expected(cfg)
    assert {"CreateBucket", "CreateReceiptRuleSet", "CreateReceiptRule", "VerifyDomainIdentity"} <= {
        call.operation for call in rule.seen}
    down = Run("teardown", path, "--yes")
    assert down.code == 0, down.text
    assert inventory(cfg) == []


def test_extras_tagged_as_the_stacks_are_reported_and_removed_by_deploy(dns_stack, no_backoff):
    cfg, path = dns_stack
    assert Run("deploy", path).code == 0
    apigw = boto3.client("apigateway", region_name=cfg.stack.region)
    tags = {"stack": "demo", "managed-by": "rds-edge-api"}
    extra_api = apigw.create_rest_api(name="demo", tags=tags)["id"]
    extra_key = apigw.create_api_key(name="demo", enabled=True, tags=tags)["id"]
    extra_plan = apigw.create_usage_plan(name="demo", tags=tags)["id"]
    run = Run("deploy", path)
    assert run.code == 0, run.text
    for extra in (extra_api, extra_key, extra_plan):
        assert extra in run.text and "removing them" in run.text
    assert kinds(inventory(cfg)) == expected(cfg)


def test_teardown_removes_every_duplicate_not_the_first_it_finds(dns_stack, no_backoff):
    cfg, path = dns_stack
    assert Run("deploy", path).code == 0
    apigw = boto3.client("apigateway", region_name=cfg.stack.region)
    tags = {"stack": "demo", "managed-by": "rds-edge-api"}
    apigw.create_rest_api(name="demo", tags=tags)
    apigw.create_api_key(name="demo", enabled=True, tags=tags)
    apigw.create_usage_plan(name="demo", tags=tags)
    ec2 = boto3.client("ec2", region_name=cfg.stack.region)
    other_vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]  # where the database used to be
    ec2.create_security_group(GroupName="demo-lambda", Description="x", VpcId=other_vpc, TagSpecifications=[
        {"ResourceType": "security-group", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])
    assert len([f for f in inventory(cfg) if f.startswith(("rest api", "api key", "usage plan", "security group"))]) == 8
    (cfg.state_dir / "demo.json").unlink()
    down = Run("teardown", path, "--yes")
    assert down.code == 0, down.text
    assert inventory(cfg) == []


# --- the retry layers, one call at a time -----------------------------------------------------------

def lose_before_send(client, operation: str, times: int = 1) -> list:
    """Below botocore's retry: the first ``times`` sends fail with a reset; the attempts."""
    attempts = []

    def before_send(request, **_):
        attempts.append(request)
        if len(attempts) <= times:
            raise ConnectionClosedError(endpoint_url=request.url)

    client.meta.events.register_first(f"before-send.{client.meta.service_model.service_id.hyphenize()}.{operation}",
                                      before_send)
    return attempts


def test_botocore_never_resends_a_create_whose_answer_may_be_lost(cfg, no_backoff):
    ctx = quiet_context(cfg)
    apigw = ctx.client("apigateway")
    attempts = lose_before_send(apigw, "CreateRestApi")
    with pytest.raises(DeployError, match="the answer to CreateRestApi was lost"):
        apigw.create_rest_api(name="demo")  # no step to look for it: never sent again blindly
    assert len(attempts) == 1


@pytest.mark.lenient("throttling", reason="the first CreateRestApi is dropped before it is sent (a botocore hook, "
                     "after the rules): AWS never saw it, the quota rule counted it")
def test_a_lost_create_is_looked_for_then_sent_again_when_nothing_was_made(cfg, no_backoff):
    ctx = quiet_context(cfg)
    apigw = ctx.client("apigateway")
    attempts = lose_before_send(apigw, "CreateRestApi")  # lost before AWS acted: nothing to find
    looked = []
    created = ctx.change("create", "REST API demo", apigw.create_rest_api, name="demo",
                         find=lambda: looked.append(1))
    assert len(attempts) == 2 and looked == [1]
    assert [a["id"] for a in boto3.client("apigateway", region_name=cfg.stack.region).get_rest_apis()["items"]] == \
        [created["id"]]


class Operation:
    def __init__(self, name):
        self.name = name


class Http:
    def __init__(self, status):
        self.status_code = status


@pytest.mark.parametrize("operation, response, exception, resent", [
    ("CreateRole", (Http(400), {"Error": {"Code": "Throttling"}}), None, True),       # refused before acting
    ("CreateRestApi", (Http(503), {"Error": {"Code": "SlowDown"}}), None, True),
    ("CreateRestApi", None, EndpointConnectionError(endpoint_url="https://x"), True),  # never reached AWS
    ("CreateRestApi", None, ConnectionClosedError(endpoint_url="https://x"), False),   # AWS may have acted
    ("CreateRole", (Http(500), {"Error": {"Code": "InternalFailure"}}), None, False),
    ("CreateRestApi", (Http(503), {"Error": {"Code": "ServiceUnavailable"}}), None, False),
    ("ListRoles", None, ConnectionClosedError(endpoint_url="https://x"), True),        # a read: always safe
    ("GetRestApis", (Http(503), {"Error": {"Code": "ServiceUnavailable"}}), None, True),
])
def test_botocore_resends_a_changing_call_only_when_aws_cannot_have_acted(operation, response, exception, resent):
    from provision.clients import is_changing
    hook = waits.transient_retry_hook(lambda seconds: None, lambda text: None, changing=is_changing)
    decision = hook(response=response, attempts=1, caught_exception=exception, request_dict={},
                    operation=Operation(operation))
    assert (decision == 0) is resent


@pytest.mark.lenient("operator_policy", reason="a role named r, of no stack: the mechanism, not the policy")
def test_a_delete_whose_answer_was_lost_is_done_when_the_resend_finds_nothing(cfg, aws_rules, no_backoff):
    ctx = quiet_context(cfg)
    iam = ctx.client("iam")
    iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    aws_rules(lost_answers("reset", {"DeleteRole"}))
    assert ctx.change("delete", "role r", iam.delete_role, RoleName="r") == {}
    assert boto3.client("iam").list_roles()["Roles"] == []


def test_every_create_the_toolkit_makes_has_a_resend_decision():
    """A create added later must be judged: refused a second time by AWS (RESENT_CREATES), or looked for first."""
    import json
    from pathlib import Path

    from provision.clients import RESENT_CREATES, resendable
    calls = json.loads((Path(__file__).parent.parent / "provision" / "iam" / "aws_calls.json").read_text())["calls"]
    creates = {call["operation"] for call in calls if call["operation"].startswith("Create")}
    assert creates - RESENT_CREATES == UNGUARDED_CREATES
    assert not any(resendable(operation) for operation in UNGUARDED_CREATES)
