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

from dataclasses import dataclass, field

from . import lease
from .errors import or_none
from .steps.iam_role import role_name
from .tags import MANAGED_BY, as_dict

DEFAULT_REGION = "us-east-1"  # where the list of enabled regions is asked for
# What every deploy makes, whatever the config (mail, alerts and DNS records depend on it).
REQUIRED = ("acm:certificate", "apigateway:restapis", "cloudfront:distribution", "ec2:security-group",
            "iam:role", "lambda:function", "logs:log-group", "wafv2:webacl")



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


def find(session, regions: list[str] | None) -> tuple[dict[str, Stack], set[str]]:
    """(stacks by name, shared resources' ARNs) in the given regions, or in every enabled one."""
    if not regions:
        ec2 = session.client("ec2", region_name=session.region_name or DEFAULT_REGION)
        regions = sorted(r["RegionName"] for r in ec2.describe_regions()["Regions"])
    stacks: dict[str, Stack] = {}
    shared: set[str] = set()
    for region in regions:
        tagging = session.client("resourcegroupstaggingapi", region_name=region)
        pages = tagging.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": "managed-by", "Values": [MANAGED_BY]}])
        for page in pages:
            for mapping in page["ResourceTagMappingList"]:
                tags = as_dict(mapping.get("Tags"))
                if "stack" in tags:
                    stacks.setdefault(tags["stack"], Stack(tags["stack"])).add(mapping["ResourceARN"])
                elif "shared" in tags:
                    shared.add(mapping["ResourceARN"])
    iam = session.client("iam", region_name=DEFAULT_REGION)
    for stack in stacks.values():
        role = or_none(iam.get_role, "NoSuchEntity", RoleName=role_name(stack.name))
        if role and as_dict(iam.list_role_tags(RoleName=role_name(stack.name))["Tags"]).get("stack") == stack.name:
            stack.add(role["Role"]["Arn"])
        stack.holder = _holder(session, stack)
    return stacks, shared


def _holder(session, stack: Stack) -> lease.Holder | None:
    """The lease lives in the stack's region (its function's); a half-made stack is looked for everywhere."""
    homes = sorted({arn.split(":")[3] for arn in stack.resources.get("lambda:function", ())}) or sorted(stack.regions)
    for region in homes:
        found = lease.holder(session.client("dynamodb", region_name=region), stack.name)
        if found:
            return found
    return None
