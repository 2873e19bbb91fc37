"""The rds-edge-api stacks an account holds, found by their tags: for ``list`` and ``outputs --stack``.

Every resource the toolkit makes carries ``managed-by = rds-edge-api`` and
``stack = <name>``; the Resource Groups Tagging API finds them by the first
tag in each region (``GetResources``, paginated), and they are grouped by the
exact value of the second, so ``orders`` and ``orders-eu`` stay apart.
Resources tagged ``shared`` (the lease table) belong to no one stack.

The Tagging API does not return IAM roles (AWS's supported-resources list
for Resource Groups; aws/aws-sdk#581): each stack's role is read by its name.
A stack is complete when it has every kind of resource a deploy always makes
(``REQUIRED``); its lease is read from its lease item (``lease.py``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import lease
from ..aws.apigateway_account import role_name as logging_role_name
from ..aws_errors import (
    HTTP_403,
    HTTP_404,
    NO_SUCH_BUCKET,
    NO_SUCH_DISTRIBUTION,
    NO_SUCH_ENTITY,
    NOT_FOUND,
    NOT_FOUND_EXCEPTION,
    RESOURCE_NOT_FOUND_EXCEPTION,
    RULE_SET_DOES_NOT_EXIST,
    WAF_NONEXISTENT_ITEM_EXCEPTION,
)
from ..config import SES_RECEIVING_REGIONS
from ..context import EDGE_REGION
from ..errors import or_none
from ..steps.iam_role import role_name
from ..steps.mail import SHARED_RULE_SET
from ..tags import MANAGED_BY, as_dict, is_ours

DEFAULT_REGION = "us-east-1"  # where the list of enabled regions is asked for
# What every deploy makes, whatever the config (mail, alerts and DNS records depend on it).
REQUIRED = ("acm:certificate", "apigateway:restapis", "cloudfront:distribution", "ec2:security-group",
            "iam:role", "lambda:function", "logs:log-group", "wafv2:webacl")
# The stack's regional half: what lives in its own region, never in us-east-1 for a stack of another region.
REGIONAL = ("lambda:function", "apigateway:restapis", "apigateway:apikeys", "apigateway:usageplans",
            "ec2:security-group")
REGIONAL_LOG_GROUPS = (":log-group:/aws/lambda/", ":log-group:/aws/apigateway/")
EXECUTE_API = re.compile(r"[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")


@dataclass
class Stack:
    name: str
    resources: dict[str, set[str]] = field(default_factory=dict)  # type -> ARNs
    regions: set[str] = field(default_factory=set)
    holder: lease.Holder | None = None

    @property
    def missing(self) -> list[str]:
        return [kind for kind in REQUIRED if kind not in self.resources]

    def add(self, arn: str) -> None:
        self.resources.setdefault(resource_type(arn), set()).add(arn)
        region = arn.split(":")[3]
        if region:
            self.regions.add(region)


def resource_type(arn: str) -> str:
    """``service:kind`` from an ARN: arn:aws:lambda:...:function:x -> lambda:function,
    arn:aws:apigateway:r::/restapis/id -> apigateway:restapis, arn:aws:s3:::bucket -> s3:bucket."""
    parts = arn.split(":", 5)
    service, rest = parts[2], parts[5]
    if service == "s3" and "/" not in rest:
        return "s3:bucket"
    if service == "sns":
        return "sns:topic"
    if service == "wafv2":  # global/webacl/name/id, regional/ipset/...
        return f"wafv2:{rest.split('/')[1]}"
    kind = rest.lstrip("/").replace(":", "/").split("/")[0]
    return f"{service}:{kind}"


def is_regional(arn: str) -> bool:
    """Whether the ARN is of the stack's regional half (its function, API, security group, their logs)."""
    return resource_type(arn) in REGIONAL or any(part in arn for part in REGIONAL_LOG_GROUPS)


def tagged(session, region: str, stack: str | None = None) -> list[dict]:
    """The Tagging API's mappings of the toolkit's resources in one region (of one stack, given its name)."""
    filters = [{"Key": "managed-by", "Values": [MANAGED_BY]}] + ([{"Key": "stack", "Values": [stack]}] if stack else [])
    tagging = session.client("resourcegroupstaggingapi", region_name=region)
    return [mapping for page in tagging.get_paginator("get_resources").paginate(TagFilters=filters)
            for mapping in page["ResourceTagMappingList"]]


def origin_region(session, stack: str) -> str | None:
    """The region of the API the stack's distribution forwards to (its origin,
    ``<id>.execute-api.<region>.amazonaws.com``): where its regional half is, read with no region scanned."""
    front = session.client("cloudfront")
    for page in front.get_paginator("list_distributions").paginate():
        for dist in page["DistributionList"].get("Items") or []:
            if not is_ours(front.list_tags_for_resource(Resource=dist["ARN"])["Tags"].get("Items"), stack):
                continue
            for origin in dist.get("Origins", {}).get("Items") or []:
                match = EXECUTE_API.fullmatch(origin.get("DomainName", ""))
                if match:
                    return match.group(1)
    return None


def homes(session, stack: str, regions: list[str] | None = None) -> list[str]:
    """The regions holding the stack's regional half, looked for in ``regions`` (default: where its
    distribution's origin points, else every enabled region)."""
    if regions is None:
        hint = origin_region(session, stack)
        found = homes(session, stack, [hint]) if hint else []
        return found or homes(session, stack, enabled_regions(session))
    return [region for region in regions
            if any(is_regional(m["ResourceARN"]) and m["ResourceARN"].split(":")[3] == region
                   for m in tagged(session, region, stack))]


def enabled_regions(session) -> list[str]:
    ec2 = session.client("ec2", region_name=session.region_name or DEFAULT_REGION)
    return sorted(r["RegionName"] for r in ec2.describe_regions()["Regions"])


def find(session, regions: list[str] | None) -> tuple[dict[str, Stack], set[str]]:
    """(stacks by name, shared things) in the given regions, or in every enabled one.

    us-east-1 is always asked too: its Tagging API endpoint alone returns CloudFront distributions, their
    ACM certificates and CLOUDFRONT-scoped web ACLs (cloud-custodian#2729), the global half of every stack;
    asked only for it, its stacks are those found in the given regions. What the Tagging API returns is
    checked to exist (``exists``): it keeps returning a deleted resource for a while."""
    asked = list(regions or enabled_regions(session))
    stacks: dict[str, Stack] = {}
    shared: set[str] = set()
    for region in dict.fromkeys([*asked, EDGE_REGION]):
        for mapping in tagged(session, region):
            tags, arn = as_dict(mapping.get("Tags")), mapping["ResourceARN"]
            if region not in asked and (tags.get("stack") not in stacks or is_regional(arn)):
                continue  # us-east-1 asked only for the global half of the stacks found
            if not exists(session, arn):
                continue
            if "stack" in tags:
                stacks.setdefault(tags["stack"], Stack(tags["stack"])).add(arn)
            elif "shared" in tags:
                shared.add(arn)
    iam = session.client("iam", region_name=DEFAULT_REGION)
    for stack in stacks.values():
        role = or_none(iam.get_role, NO_SUCH_ENTITY, RoleName=role_name(stack.name))
        if role and as_dict(iam.list_role_tags(RoleName=role_name(stack.name))["Tags"]).get("stack") == stack.name:
            stack.add(role["Role"]["Arn"])
        stack.holder = _holder(session, stack)
    return stacks, shared | _shared_untagged(session, asked)


def _shared_untagged(session, regions: list[str]) -> set[str]:
    """The account-wide things the stacks share that carry no tags: the SES receipt rule set every
    email-validated stack's rule is in, and each region's API Gateway CloudWatch logging role."""
    found = set()
    for region in dict.fromkeys([*regions, EDGE_REGION]):  # us-east-1: the default mail region
        if region in SES_RECEIVING_REGIONS and or_none(
                session.client("ses", region_name=region).describe_receipt_rule_set, RULE_SET_DOES_NOT_EXIST,
                RuleSetName=SHARED_RULE_SET):
            found.add(f"SES receipt rule set {SHARED_RULE_SET} in {region}")
        if region not in regions:
            continue
        role = session.client("apigateway", region_name=region).get_account().get("cloudwatchRoleArn", "")
        if role.rsplit("/", 1)[-1] == logging_role_name(region):
            found.add(f"API Gateway logging role of {region}: {role}")
    return found


def exists(session, arn: str) -> bool:
    """Whether the resource is still there: the Tagging API returns resources for a while after they are
    deleted (its GetResources is eventually consistent). Kinds not checked here count as there."""
    check = EXISTS.get(resource_type(arn))
    return True if check is None else check(session, arn)


def _region(arn: str) -> str:
    return arn.split(":")[3] or EDGE_REGION


def _found(call, missing: str | tuple[str, ...], /, **kwargs) -> bool:
    return or_none(call, missing, **kwargs) is not None


def _log_group(session, arn: str) -> bool:
    name = arn.split(":log-group:", 1)[1].removesuffix(":*")
    groups = session.client("logs", region_name=_region(arn)).describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return any(group["logGroupName"] == name for group in groups)


def _web_acl_or_ip_set(session, arn: str) -> bool:
    scope_name, _, name, item_id = arn.split(":", 5)[5].split("/")[:4]  # global/webacl/<name>/<id>
    scope = "CLOUDFRONT" if scope_name == "global" else "REGIONAL"
    waf = session.client("wafv2", region_name=_region(arn))
    get = waf.get_web_acl if "/webacl/" in arn else waf.get_ip_set
    return _found(get, WAF_NONEXISTENT_ITEM_EXCEPTION, Name=name, Scope=scope, Id=item_id)


EXISTS: dict[str, Callable[[Any, str], bool]] = {
    "lambda:function": lambda s, arn: _found(s.client("lambda", region_name=_region(arn)).get_function_configuration,
                                             RESOURCE_NOT_FOUND_EXCEPTION, FunctionName=arn),
    "apigateway:restapis": lambda s, arn: _found(s.client("apigateway", region_name=_region(arn)).get_rest_api,
                                                 NOT_FOUND_EXCEPTION, restApiId=arn.rsplit("/", 1)[1]),
    "apigateway:apikeys": lambda s, arn: _found(s.client("apigateway", region_name=_region(arn)).get_api_key,
                                                NOT_FOUND_EXCEPTION, apiKey=arn.rsplit("/", 1)[1]),
    "apigateway:usageplans": lambda s, arn: _found(s.client("apigateway", region_name=_region(arn)).get_usage_plan,
                                                   NOT_FOUND_EXCEPTION, usagePlanId=arn.rsplit("/", 1)[1]),
    "ec2:security-group": lambda s, arn: bool(s.client("ec2", region_name=_region(arn)).describe_security_groups(
        Filters=[{"Name": "group-id", "Values": [arn.rsplit("/", 1)[1]]}])["SecurityGroups"]),
    "logs:log-group": _log_group,
    "acm:certificate": lambda s, arn: _found(s.client("acm", region_name=_region(arn)).describe_certificate,
                                             RESOURCE_NOT_FOUND_EXCEPTION, CertificateArn=arn),
    "cloudfront:distribution": lambda s, arn: _found(s.client("cloudfront").get_distribution, NO_SUCH_DISTRIBUTION,
                                                     Id=arn.rsplit("/", 1)[1]),
    "wafv2:webacl": _web_acl_or_ip_set,
    "wafv2:ipset": _web_acl_or_ip_set,
    "s3:bucket": lambda s, arn: _found(s.client("s3", region_name=EDGE_REGION).head_bucket,
                                       (HTTP_404, NO_SUCH_BUCKET, HTTP_403), Bucket=arn.rsplit(":", 1)[1]),
    "sns:topic": lambda s, arn: _found(s.client("sns", region_name=_region(arn)).get_topic_attributes, NOT_FOUND,
                                       TopicArn=arn),
    "dynamodb:table": lambda s, arn: _found(s.client("dynamodb", region_name=_region(arn)).describe_table,
                                            RESOURCE_NOT_FOUND_EXCEPTION, TableName=arn.rsplit("/", 1)[1]),
}


def home(session, stack: Stack) -> str | None:
    """The stack's own region, where its lease is: its function's, else its distribution's origin's."""
    functions = sorted({_region(arn) for arn in stack.resources.get("lambda:function", ())})
    return functions[0] if functions else origin_region(session, stack.name)


def _holder(session, stack: Stack) -> lease.Holder | None:
    """The lease lives in the stack's region; a stack with neither function nor distribution is looked
    for wherever it has resources."""
    found_home = home(session, stack)
    for region in [found_home] if found_home else sorted(stack.regions):
        found = lease.holder(session.client("dynamodb", region_name=region), stack.name)
        if found:
            return found
    return None
