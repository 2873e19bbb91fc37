"""API Gateway's UpdateAccount (the region's CloudWatch Logs role, provision/aws/apigateway_account.py) is under a
fixed quota of 1 request every 20 s per account ("Amazon API Gateway quotas", which says it cannot be increased:
https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html). moto has none; tests/aws_rules.py's
``api_gateway_quota`` adds it, and the claim and the release wait as long as it requires, as the api step's
quota-bound calls do (tests/test_api_quotas.py): Retry-After honoured, else the quota's interval, said."""
import pytest

from provision import config as config_module
from provision.steps import api_access_log
from tests.aws_rules import Clock, access_logging_needs_the_account_role, api_gateway_quota
from tests.support import printed, quiet_context
from tests.test_request_logs import ROLE, account_role, make_api, role_exists

pytestmark = pytest.mark.iam  # AWS's managed AmazonAPIGatewayPushToCloudWatchLogs
SAID = "waiting for API Gateway's UpdateAccount quota (1 call per 20 s per account, fixed)"


@pytest.fixture
def stacks(aws, write_config):
    """Two stacks' configs in one account and region, each with its REST API as its api step leaves it."""
    found = []
    for name in ("demo", "demo2"):
        cfg = config_module.load(write_config({"stack": {"name": name, "region": "eu-west-1"}}, name=f"{name}.toml"))
        found.append((cfg, make_api(name=name, tags={"stack": name, "managed-by": "rds-edge-api"})))
    return found


def step(stack, clock, destroy=False):
    """One run of the api_access_log step (which claims and releases the account's role), the clock its sleep."""
    cfg, api_id = stack
    ctx = quiet_context(cfg)
    ctx.sleep = clock
    ctx.state.put("api", {"rest_api_id": api_id})
    (api_access_log.destroy if destroy else api_access_log.ensure)(ctx)
    return ctx


@pytest.mark.parametrize("retry_after, slept", [(True, [15]), (False, [20])],
                         ids=["Retry-After honoured", "the quota's interval without Retry-After"])
def test_a_release_within_20_seconds_of_the_claim_waits_for_the_quota(aws_rules, stacks, retry_after, slept):
    clock = Clock()
    quota = api_gateway_quota(clock, "UpdateAccount", 20.0, retry_after)
    aws_rules(quota, access_logging_needs_the_account_role())
    step(stacks[0], clock)  # claims: UpdateAccount at t=0
    assert account_role().endswith(f":role/{ROLE}")
    clock.advance(5)
    ctx = step(stacks[0], clock, destroy=True)  # releases at t=5: refused, then again at t=20 (or t=25)
    assert clock.slept == slept
    assert len(quota.seen) == 3  # the claim, the refused release, the release
    assert account_role() == "" and not role_exists()
    assert SAID in printed(ctx)


def test_a_claim_within_20_seconds_of_another_stacks_release_waits_for_the_quota(aws_rules, stacks):
    """The claim waits for the quota inside its wait for the new role to be usable (two different refusals)."""
    clock = Clock()
    quota = api_gateway_quota(clock, "UpdateAccount", 20.0)
    aws_rules(quota, access_logging_needs_the_account_role())
    step(stacks[0], clock)
    clock.advance(25)
    step(stacks[0], clock, destroy=True)  # the first stack goes at t=25, releasing the setting and the role
    assert clock.slept == [] and account_role() == ""
    clock.advance(3)
    second = step(stacks[1], clock)  # the second claims at t=28: refused, Retry-After 17
    assert clock.slept == [17]
    assert account_role().endswith(f":role/{ROLE}") and role_exists()
    assert SAID in printed(second)
