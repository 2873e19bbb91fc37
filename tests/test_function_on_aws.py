"""The function step where AWS is stricter than moto, each case made real by a rule of tests/aws_rules.py:
the new role's second propagation message, an Inactive function, the subnets Lambda takes, and
max_concurrency = 0 (no reservation). The concurrency headroom is the preflight's (test_preflight.py)."""
import boto3
import pytest

from provision import config as config_module
from provision.errors import DeployError
from provision.steps import function, iam_role, security_groups
from tests.aws_rules import ENI_MESSAGE, function_goes_inactive, lambda_subnet_limits, role_without_eni_permissions_yet
from tests.support import changing_ops, printed, quiet_context, run_steps

pytestmark = pytest.mark.iam

PREREQUISITES = (iam_role, security_groups)


def configuration(region="eu-west-1"):
    return boto3.client("lambda", region_name=region).get_function_configuration(FunctionName="demo-api")


@pytest.mark.lenient("eventual_consistency", reason="counts the waits the role's propagation causes; the new "
                     "function's Pending state adds waits of its own, proven by every deploy")
def test_the_network_interface_message_of_a_new_role_is_waited_out(aws_rules, cfg):
    """aws-cdk#7998: "does not have permissions to call CreateNetworkInterface on EC2" right after the role
    is made, though its policy grants it; retried within the same bounded wait as "cannot be assumed"."""
    rule = aws_rules(role_without_eni_permissions_yet(times=2))
    ctx = run_steps(cfg, *PREREQUISITES, function)
    assert len(rule.seen) == 3  # two refusals, then created
    assert configuration()["State"] == "Active"
    assert "waiting for IAM role demo-fn to become usable by Lambda" in printed(ctx)
    assert len(ctx.sleep) == 2


def test_a_role_that_never_gets_the_permission_fails_within_the_bound(aws_rules, cfg):
    aws_rules(role_without_eni_permissions_yet(times=10_000))
    with pytest.raises(DeployError, match="gave up waiting for IAM role demo-fn to become usable by Lambda after "
                                          "2m00s .*CreateNetworkInterface"):
        run_steps(cfg, *PREREQUISITES, function)
    assert ENI_MESSAGE.startswith("The provided execution role")


def test_an_inactive_function_is_reactivated_then_waited_for(aws_rules, cfg):
    run_steps(cfg, *PREREQUISITES, function)
    idle = aws_rules(function_goes_inactive("demo-api"))
    assert configuration()["State"] == "Inactive"  # what AWS shows after weeks without a call
    ctx = run_steps(cfg, *PREREQUISITES, function)
    assert [c.operation for c in idle.seen].count("Invoke") == 1
    assert configuration()["State"] == "Active"
    assert "reactivate demo-api (Inactive: Idle; one invocation, then a wait for Active)" in printed(ctx)
    assert "waiting for Lambda function demo-api to be Active" in printed(ctx)  # Pending once, then Active
    again = run_steps(cfg, *PREREQUISITES, function)
    assert changing_ops(again) == [] and [c.operation for c in idle.seen].count("Invoke") == 1


def test_a_plan_says_it_would_reactivate_and_invokes_nothing(aws_rules, cfg):
    run_steps(cfg, *PREREQUISITES, function)
    idle = aws_rules(function_goes_inactive("demo-api"))
    plan = run_steps(cfg, *PREREQUISITES, function, planning=True)
    assert "would change: reactivate demo-api (Inactive: Idle" in printed(plan)
    assert "Invoke" not in [c.operation for c in idle.seen]
    assert configuration()["State"] == "Inactive"


def test_max_concurrency_0_reserves_nothing_and_removes_a_reservation(cfg, write_config):
    lambda_ = boto3.client("lambda", region_name="eu-west-1")
    run_steps(cfg, *PREREQUISITES, function)
    assert lambda_.get_function_concurrency(FunctionName="demo-api")["ReservedConcurrentExecutions"] == 10
    none = config_module.load(write_config({"function": {"max_concurrency": 0}}))
    ctx = run_steps(none, *PREREQUISITES, function)
    assert changing_ops(ctx) == ["DeleteFunctionConcurrency"]
    assert "ReservedConcurrentExecutions" not in lambda_.get_function_concurrency(FunctionName="demo-api")
    assert changing_ops(run_steps(none, *PREREQUISITES, function)) == []


def operators_subnets(cfg, zones):
    """Add subnets in the given zones to the seeded database's DB subnet group; all its subnet ids."""
    region = cfg.stack.region
    rds, ec2 = boto3.client("rds", region_name=region), boto3.client("ec2", region_name=region)
    group = rds.describe_db_subnet_groups(DBSubnetGroupName="orders-db-subnets")["DBSubnetGroups"][0]
    existing = [s["SubnetIdentifier"] for s in group["Subnets"]]
    added = [ec2.create_subnet(VpcId=group["VpcId"], CidrBlock=f"10.20.{100 + i}.0/24",
                               AvailabilityZone=zone)["Subnet"]["SubnetId"] for i, zone in enumerate(zones)]
    rds.modify_db_subnet_group(DBSubnetGroupName="orders-db-subnets", SubnetIds=existing + added)
    return existing + added


def zone_ids(subnet_ids, region):
    found = boto3.client("ec2", region_name=region).describe_subnets(SubnetIds=subnet_ids)["Subnets"]
    return {s["SubnetId"]: s["AvailabilityZoneId"] for s in found}


def test_subnets_in_a_zone_lambda_does_not_run_in_are_left_out_and_said(aws_rules, load_seeded):
    aws_rules(lambda_subnet_limits())
    cfg = load_seeded({"stack": {"region": "us-east-1"}})
    every = operators_subnets(cfg, ["us-east-1e"])  # us-east-1e is use1-az3 in moto
    zones = zone_ids(every, "us-east-1")
    [unsupported] = [s for s, z in zones.items() if z == "use1-az3"]
    ctx = run_steps(cfg, *PREREQUISITES, function)
    used = configuration("us-east-1")["VpcConfig"]["SubnetIds"]
    assert sorted(used) == sorted(s for s in every if s != unsupported)
    assert function.subnets(ctx).left_out == ((unsupported, "use1-az3: a zone Lambda does not run in"),)


def test_more_than_16_subnets_are_cut_to_16_over_every_zone(aws_rules, load_seeded):
    aws_rules(lambda_subnet_limits())
    cfg = load_seeded()  # two subnets, in eu-west-1a and eu-west-1b
    every = operators_subnets(cfg, ["eu-west-1a"] * 8 + ["eu-west-1b"] * 7 + ["eu-west-1c"] * 3)
    run_steps(cfg, *PREREQUISITES, function)
    used = configuration()["VpcConfig"]["SubnetIds"]
    zones = zone_ids(every, "eu-west-1")
    assert len(every) == 20 and len(used) == 16
    assert {zones[s] for s in used} == set(zones.values())  # all three zones kept


def test_no_usable_subnet_stops_before_the_function_is_made(aws_rules, load_seeded):
    aws_rules(lambda_subnet_limits())
    cfg = load_seeded({"stack": {"region": "us-east-1"}})
    rds, ec2 = boto3.client("rds", region_name="us-east-1"), boto3.client("ec2", region_name="us-east-1")
    vpc = rds.describe_db_subnet_groups(DBSubnetGroupName="orders-db-subnets")["DBSubnetGroups"][0]["VpcId"]
    only = [ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.200.0/24", AvailabilityZone="us-east-1e")["Subnet"]["SubnetId"]]
    rds.modify_db_subnet_group(DBSubnetGroupName="orders-db-subnets", SubnetIds=only)
    ctx = quiet_context(cfg)
    for module in PREREQUISITES:
        module.ensure(ctx)
    with pytest.raises(DeployError, match="none of the database's subnets can hold the function"):
        function.ensure(ctx)
    assert "CreateFunction" not in changing_ops(ctx)


def test_verify_says_when_the_function_is_inactive(aws_rules, cfg):
    from provision.commands import verify
    run_steps(cfg, *PREREQUISITES, function)
    ctx = quiet_context(cfg)
    assert "the first call can fail once" in verify.idle_note(ctx)
    aws_rules(function_goes_inactive("demo-api"))
    note = verify.idle_note(ctx)
    assert "demo-api is Inactive (idle for long: Idle): the first request fails once" in note


def test_resource_not_ready_is_not_retried_as_a_transient_5xx(load_config):
    """Lambda answers an Inactive function's invocation with 502 ResourceNotReadyException: repeating the call
    does not mend it (Lambda's restore does), so the transient hook leaves it to the function step."""
    from tests.support import failing, response
    ctx = quiet_context(load_config())
    lambda_ = ctx.client("lambda")
    attempts = failing(lambda_, "Invoke", 5, lambda: response(
        502, '{"Message": "The function is inactive"}', {"x-amzn-ErrorType": "ResourceNotReadyException"}))
    function._invoke_once(lambda_, "demo-api")  # the expected refusal is swallowed
    assert len(attempts) == 1 and ctx.sleep == []
