"""The generic rules every test runs under (tests/aws_rules.py, switched on by conftest's ``aws``) bite: each
refuses what AWS refuses, for the toolkit's calls only, and the toolkit converges under them."""
import boto3
import pytest
from botocore.exceptions import ClientError

from provision.clients import PACE_SECONDS
from provision.iam import permissions
from provision.steps import security_groups
from tests.support import printed, quiet_context


def test_a_call_outside_the_operators_policy_is_refused_the_tests_own_is_not(cfg):
    ctx = quiet_context(cfg)
    with pytest.raises(ClientError) as refused:
        ctx.client("iam").list_users()
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert "iam:ListUsers" in str(refused.value)
    assert boto3.client("iam").list_users()["Users"] == []  # the test's own read-back is not judged


def test_the_policy_is_checked_on_the_resource_not_only_the_action(cfg):
    ctx = quiet_context(cfg)
    with pytest.raises(ClientError, match="lambda:GetFunction on resource: .*function:someone-elses"):
        ctx.client("lambda").get_function(FunctionName="someone-elses")


def test_an_authorization_aws_implies_is_checked_too(cfg, monkeypatch):
    """CreateTable with Tags is also authorized as dynamodb:TagResource (terraform-provider-aws#10943): without
    that entry in provision/iam/permissions.py, the first run in a region is refused."""
    monkeypatch.setattr(permissions, "BEYOND", tuple(b for b in permissions.BEYOND if b.operation != "CreateTable"))
    ctx = quiet_context(cfg)
    with pytest.raises(ClientError, match="dynamodb:TagResource"):
        ctx.client("dynamodb").create_table(
            TableName="rds-edge-api-leases", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "stack", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "stack", "KeyType": "HASH"}], Tags=[{"Key": "shared", "Value": "all"}])


def test_a_new_group_is_not_found_at_first_by_the_run_that_made_it(cfg):
    ctx = quiet_context(cfg)
    ec2 = ctx.client("ec2")
    [db] = boto3.client("rds", region_name=cfg.stack.region).describe_db_instances()["DBInstances"]
    vpc = db["DBSubnetGroup"]["VpcId"]  # the database's: the policy grants groups there only
    group = ec2.create_security_group(GroupName="demo-lambda", Description="d", VpcId=vpc,
                                      TagSpecifications=[{"ResourceType": "security-group", "Tags": ctx.tag_list}])
    with pytest.raises(ClientError, match="InvalidGroup.NotFound"):
        ec2.describe_security_groups(GroupIds=[group["GroupId"]])
    assert ec2.describe_security_groups(GroupIds=[group["GroupId"]])["SecurityGroups"]
    later = quiet_context(cfg).client("ec2")  # the next command's clients: settled
    assert later.describe_security_groups(GroupIds=[group["GroupId"]])["SecurityGroups"]


def test_the_security_group_step_waits_for_its_new_group_to_show(cfg):
    ctx = quiet_context(cfg)
    security_groups.ensure(ctx)
    assert "waiting for EC2 to show the new security group" in printed(ctx)
    [group] = boto3.client("ec2", region_name=cfg.stack.region).describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["demo-lambda"]}])["SecurityGroups"]
    assert [p["FromPort"] for p in group["IpPermissionsEgress"]] == [3306]


def ip_set(client, version: str, tags: list) -> dict:
    addresses = ["203.0.113.0/24"] if version == "IPV4" else ["2001:db8::/32"]
    return client.create_ip_set(Name=f"demo-{version.lower()}", Scope="CLOUDFRONT", IPAddressVersion=version,
                                Addresses=addresses, Tags=tags)


def test_two_waf_creates_within_a_second_are_throttled_then_retried(cfg):
    ctx = quiet_context(cfg)
    raw = ctx.client("wafv2", "us-east-1")._client  # below the toolkit's pacing: its retry hook only
    ip_set(raw, "IPV4", ctx.tag_list)
    ip_set(raw, "IPV6", ctx.tag_list)
    assert "CreateIPSet: ThrottlingException, retrying" in printed(ctx)


def test_the_toolkits_waf_creates_are_paced_not_throttled(cfg):
    ctx = quiet_context(cfg)
    waf = ctx.client("wafv2", "us-east-1")
    for version in ("IPV4", "IPV6"):
        ip_set(waf, version, ctx.tag_list)
    assert any(PACE_SECONDS - 0.5 < slept <= PACE_SECONDS for slept in ctx.sleep), ctx.sleep
    assert "retrying" not in printed(ctx)


@pytest.mark.lenient("throttling", reason="shows what the toolkit meets without the rule")
def test_lenient_leaves_out_only_the_rule_it_names(cfg):
    ctx = quiet_context(cfg)
    raw = ctx.client("wafv2", "us-east-1")._client
    for version in ("IPV4", "IPV6"):
        ip_set(raw, version, ctx.tag_list)
    assert "retrying" not in printed(ctx)
    with pytest.raises(ClientError, match="AccessDenied"):  # the policy rule is still on
        ctx.client("iam").list_users()


def test_a_throttled_call_is_not_carried_out(cfg):
    """The throttling rule answers below botocore's parser, where moto's own handler also sees the request: a call
    it refuses must not be done (AWS does nothing for a throttled request)."""
    apigw = boto3.client("apigateway", region_name=cfg.stack.region)
    first, second = (apigw.create_rest_api(name=name)["id"] for name in ("one", "two"))
    raw = quiet_context(cfg).client("apigateway")._client
    raw.delete_rest_api(restApiId=first)
    with pytest.raises(ClientError, match="TooManyRequestsException"):  # DeleteRestApi: 1 per 30 s per account
        raw.delete_rest_api(restApiId=second)
    assert [api["id"] for api in apigw.get_rest_apis()["items"]] == [second]
