"""Scale check (issue 20): stacks named as prefixes of others stay apart, and every lookup holds when the
account has more than one page of distributions, web ACLs, REST APIs, log groups and tagged resources.
Functions are found by exact name (GetFunction), never listed."""
import boto3
import pytest

from provision.aws import log_groups
from provision.commands import list as list_command
from provision.steps import api, cloudfront, waf
from tests import aws_rules as rules
from tests.support import quiet_context

DECOYS = ("orders-eu", "orders-api", "orders-2", "orders1")  # each begins with "orders"


@pytest.fixture
def orders(load_config, write_config):
    from provision import config as config_module
    return config_module.load(write_config({"stack": {"name": "orders"}}))


def tags(stack):
    return {"stack": stack, "managed-by": "rds-edge-api"}


def web_acl(stack):
    return boto3.client("wafv2", region_name="us-east-1").create_web_acl(
        Name=waf.acl_name(stack), Scope="CLOUDFRONT", DefaultAction={"Block": {}},
        VisibilityConfig={"SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": False, "MetricName": stack},
        Tags=[{"Key": k, "Value": v} for k, v in tags(stack).items()])["Summary"]


def distribution(stack):
    config = {
        "CallerReference": stack, "Comment": cloudfront.comment(stack), "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "api", "DomainName": f"{stack}.execute-api.example.com",
                                              "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443,
                                                                     "OriginProtocolPolicy": "https-only"}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "api", "ViewerProtocolPolicy": "https-only",
                                 "CachePolicyId": "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"},
    }
    return boto3.client("cloudfront").create_distribution_with_tags(DistributionConfigWithTags={
        "DistributionConfig": config,
        "Tags": {"Items": [{"Key": k, "Value": v} for k, v in tags(stack).items()]}})["Distribution"]


def test_lookups_find_the_exact_stack_across_pages(orders, aws_rules):
    pages = aws_rules(rules.small_pages(2))
    apigw = boto3.client("apigateway", region_name="eu-west-1")
    for stack in DECOYS:  # made first, so ours is on the last page
        apigw.create_rest_api(name=api.api_name(stack), tags=tags(stack))
        web_acl(stack)
        distribution(stack)
    ours_api = apigw.create_rest_api(name=api.api_name("orders"), tags=tags("orders"))
    ours_acl, ours_dist = web_acl("orders"), distribution("orders")

    ctx = quiet_context(orders)
    assert api.find(ctx)["id"] == ours_api["id"]
    assert waf._find_acl(ctx)["ARN"] == ours_acl["ARN"]
    assert cloudfront.find(ctx)["Id"] == ours_dist["Id"]
    seen = [call.operation for call in pages.seen]
    for operation in ("GetRestApis", "ListWebACLs", "ListDistributions"):
        assert seen.count(operation) == 3, (operation, seen)  # five of each, two a page


def test_log_groups_and_list_across_pages(orders, aws_rules):
    aws_rules(rules.tagging_api_covers_more_services())
    logs = boto3.client("logs", region_name="eu-west-1")
    for i in range(60):  # more than one page (50) of groups that begin with ours, and of tagged resources
        logs.create_log_group(logGroupName=f"/aws/lambda/orders-api-{i:02d}-api", tags=tags(f"orders-api-{i:02d}"))
    logs.create_log_group(logGroupName="/aws/lambda/orders-api", tags=tags("orders"))
    found = log_groups.find(logs, "/aws/lambda/orders-api")
    assert found["logGroupName"] == "/aws/lambda/orders-api"

    stacks, _ = list_command.find(boto3.Session(), ["eu-west-1"])
    assert len(stacks) == 61
    [arn] = stacks["orders"].resources.pop("logs:log-group")
    assert arn.removesuffix(":*").endswith(":log-group:/aws/lambda/orders-api") and not stacks["orders"].resources
    assert "lambda:function" in stacks["orders"].missing and "logs:log-group" in stacks["orders-api-07"].resources
