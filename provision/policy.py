"""The operator's least-privilege IAM policy, from the AWS calls the toolkit was seen making.

``aws_calls.json`` (beside this file) lists every (service, operation) the
commands made in moto, per config variant; ``scripts/record-aws-calls``
writes it (``provision/local/recording.py``), and ``tests/test_policy.py``
fails when the code makes a call the catalog lacks. This module maps each
call to its IAM action(s) and narrows the resources to the stack's own names,
regions and account where the service supports resource-level permissions.

Mapping rules, for calls the table below does not name: the IAM action is
``<service>:<Operation>``; API Gateway authorizes by HTTP method on the
resource path instead (``apigateway:POST`` on ``/restapis/*``), taken from
botocore's model of the operation. Calls whose IAM action needs more than
the call's name (CreateFunction passes the role, WAF logging writes a log
delivery) get the extra actions AWS documents. Actions without resource-level
support get ``*``, never the other way round: no action is ever ``*``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import botocore.session

from .config import Config
from .context import EDGE_REGION
from .steps import api_access_log, apigateway_account, cloudfront_logging
from .steps.function import function_name, log_group_name
from .steps.iam_role import partition, role_name
from .steps.waf import acl_name, ip_set_name

CATALOG = Path(__file__).with_name("aws_calls.json")
RECORD_COMMAND = "scripts/record-aws-calls"
NO_PERMISSION_NEEDED = {("sts", "GetCallerIdentity")}  # AWS answers it for any caller
# The function's role may be passed to Lambda only; the account's API Gateway logging role (UpdateAccount) to
# API Gateway only.
CONDITIONS = {"iam:PassRole": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}}
PASSED_BY = {"apigateway": {"StringEquals": {"iam:PassedToService": "apigateway.amazonaws.com"}}}

# (boto3 service, operation) -> IAM actions, where they differ from "<prefix>:<operation>".
ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("s3", "HeadBucket"): ("s3:ListBucket",),
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "ListObjects"): ("s3:ListBucket",),
    ("s3", "ListObjectVersions"): ("s3:ListBucketVersions",),
    ("s3", "ListBuckets"): ("s3:ListAllMyBuckets",),
    ("s3", "HeadObject"): ("s3:GetObject",),
    ("s3", "DeleteObjects"): ("s3:DeleteObject", "s3:DeleteObjectVersion"),
    ("s3", "DeleteObject"): ("s3:DeleteObject", "s3:DeleteObjectVersion"),
    ("s3", "PutBucketLifecycleConfiguration"): ("s3:PutLifecycleConfiguration",),
    ("s3", "GetBucketLifecycleConfiguration"): ("s3:GetLifecycleConfiguration",),
    ("s3", "DeleteBucketLifecycle"): ("s3:PutLifecycleConfiguration",),
    ("s3", "PutPublicAccessBlock"): ("s3:PutBucketPublicAccessBlock",),
    ("s3", "GetPublicAccessBlock"): ("s3:GetBucketPublicAccessBlock",),
    ("s3", "DeletePublicAccessBlock"): ("s3:PutBucketPublicAccessBlock",),
    ("s3", "PutBucketEncryption"): ("s3:PutEncryptionConfiguration",),
    ("s3", "GetBucketEncryption"): ("s3:GetEncryptionConfiguration",),
    ("s3", "DeleteBucketTagging"): ("s3:PutBucketTagging",),
    # Tags given at creation need the tagging action too ("tag on create").
    # Whoever may set the mail bucket's policy can grant itself any object action there; saying so openly
    # (parliament: RESOURCE_POLICY_PRIVILEGE_ESCALATION) adds no power that PutBucketPolicy does not give.
    ("s3", "PutBucketPolicy"): ("s3:PutBucketPolicy", "s3:PutObject"),
    ("cloudfront", "CreateDistributionWithTags"): ("cloudfront:CreateDistribution", "cloudfront:TagResource"),
    ("ec2", "CreateSecurityGroup"): ("ec2:CreateSecurityGroup", "ec2:CreateTags"),
    ("ec2", "AuthorizeSecurityGroupIngress"): ("ec2:AuthorizeSecurityGroupIngress", "ec2:CreateTags"),
    ("ec2", "AuthorizeSecurityGroupEgress"): ("ec2:AuthorizeSecurityGroupEgress", "ec2:CreateTags"),
    ("iam", "CreateRole"): ("iam:CreateRole", "iam:TagRole"),
    ("logs", "CreateLogGroup"): ("logs:CreateLogGroup", "logs:TagResource", "logs:TagLogGroup"),
    ("wafv2", "CreateWebACL"): ("wafv2:CreateWebACL", "wafv2:TagResource"),
    ("wafv2", "CreateIPSet"): ("wafv2:CreateIPSet", "wafv2:TagResource"),
    ("acm", "RequestCertificate"): ("acm:RequestCertificate", "acm:AddTagsToCertificate"),
    ("lambda", "CreateFunction"): ("lambda:CreateFunction", "lambda:TagResource", "iam:PassRole"),
    ("lambda", "UpdateFunctionConfiguration"): ("lambda:UpdateFunctionConfiguration", "iam:PassRole"),
    ("wafv2", "PutLoggingConfiguration"): ("wafv2:PutLoggingConfiguration", "logs:CreateLogDelivery",
                                           "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
                                           "logs:DescribeLogGroups"),
    ("wafv2", "DeleteLoggingConfiguration"): ("wafv2:DeleteLoggingConfiguration", "logs:DeleteLogDelivery"),
    ("logs", "TagLogGroup"): ("logs:TagLogGroup", "logs:TagResource"),
    # Setting the account's CloudWatch role passes it to API Gateway.
    ("apigateway", "UpdateAccount"): ("apigateway:PATCH", "iam:PassRole"),
    # CloudFront's log delivery (CloudWatch Logs user guide, "Logs sent to CloudWatch Logs", V2 permissions;
    # CloudFront developer guide, standard logging v2): the source needs the distribution's consent, the
    # delivery the log group's resource policy.
    ("logs", "PutDeliverySource"): ("logs:PutDeliverySource", "logs:TagResource",
                                    "cloudfront:AllowVendedLogDeliveryForResource"),
    ("logs", "PutDeliveryDestination"): ("logs:PutDeliveryDestination", "logs:TagResource"),
    ("logs", "CreateDelivery"): ("logs:CreateDelivery", "logs:TagResource", "logs:PutResourcePolicy",
                                 "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"),
    ("logs", "ListTagsLogGroup"): ("logs:ListTagsLogGroup", "logs:ListTagsForResource"),
}
PREFIXES = {"ses": "ses", "sesv2": "ses", "logs": "logs"}  # boto3 name -> IAM prefix where they differ

# IAM actions that only take "*" (no resource-level permissions, per AWS's Service Authorization Reference).
STAR = re.compile(r"^(ec2:Describe.*|acm:ListCertificates|acm:RequestCertificate|cloudfront:ListDistributions"
                  r"|lambda:ListFunctions|route53:ListHostedZones.*|route53:GetHostedZoneCount"
                  r"|s3:ListAllMyBuckets|wafv2:List(WebACLs|IPSets|LoggingConfigurations)|iam:ListRoles"
                  r"|ses:.*|sns:(ListTopics|Unsubscribe)|events:ListRules|logs:(DescribeLogGroups|CreateLogDelivery"
                  r"|DeleteLogDelivery|GetLogDelivery|ListLogDeliveries|UpdateLogDelivery|PutResourcePolicy"
                  r"|DescribeResourcePolicies|DeleteResourcePolicy|DescribeDeliveries|DescribeDeliverySources"
                  r"|DescribeDeliveryDestinations)"
                  r"|rds:DescribeDBEngineVersions|tag:GetResources)$")


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    commands: tuple[str, ...]
    variants: tuple[str, ...]


def variant(validation: str, hosted_zone_id: str | None) -> str:
    """Which recorded config variant a config is: "dns", "dns+zone", "email", "email+zone"."""
    return f"{validation}+zone" if hosted_zone_id else validation


def load_catalog(path: Path = CATALOG) -> list[Call]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [Call(c["service"], c["operation"], tuple(c["commands"]), tuple(c["variants"])) for c in data["calls"]]


def actions(service: str, operation: str) -> tuple[str, ...]:
    """The IAM action(s) AWS checks for one API call."""
    if (service, operation) in ACTIONS:
        return ACTIONS[(service, operation)]
    if service in ("apigateway", "apigatewayv2"):  # both authorize as apigateway:<HTTP method>
        return (f"apigateway:{_apigateway_http(operation, service)[0]}",)
    return (f"{PREFIXES.get(service, service)}:{operation}",)


_MODELS: dict[str, object] = {}


def _apigateway_http(operation: str, service: str = "apigateway") -> tuple[str, str]:
    """(HTTP method, resource path up to the first id) of an API Gateway operation, from botocore's model:
    /restapis/{restapi_id}/resources/{resource_id} -> /restapis/*; apigatewayv2's: /v2/apis/{apiId} -> /apis/*."""
    if service not in _MODELS:
        _MODELS[service] = botocore.session.get_session().get_service_model(service)
    http = dict(_MODELS[service].operation_model(operation).http)
    http["requestUri"] = http["requestUri"].removeprefix("/v2")
    path = re.sub(r"\{[^}]+\}", "*", http["requestUri"].split("?")[0])
    return http["method"], path[:path.index("*") + 1] if "*" in path else path


@dataclass(frozen=True)
class Names:
    """What the stack's resources are called: the ARNs the policy narrows to."""
    config: Config
    account: str

    def arn(self, service: str, region: str, resource: str) -> str:
        return f"arn:{partition(self.config.stack.region)}:{service}:{region}:{self.account}:{resource}"

    def resources(self, action: str, service: str, operation: str) -> list[str]:
        """The narrowest resources AWS supports for this action and this stack."""
        if STAR.match(action):
            return ["*"]
        cfg, stack, region = self.config, self.config.stack.name, self.config.stack.region
        prefix = action.split(":")[0]
        if prefix == "apigateway":  # ids are API Gateway's: narrowed to the region and the kind of resource
            top = "/" + _apigateway_http(operation, service)[1].split("/")[1]
            return [f"arn:{partition(region)}:apigateway:{region}::{top}", f"arn:{partition(region)}:apigateway:{region}::{top}/*"]
        logging_role = f"arn:{partition(region)}:iam::{self.account}:role/{apigateway_account.role_name(region)}"
        if action == "iam:PassRole":
            return [logging_role] if service == "apigateway" else [
                f"arn:{partition(region)}:iam::{self.account}:role/{role_name(stack)}"]
        if prefix == "iam":
            return [f"arn:{partition(region)}:iam::{self.account}:role/{role_name(stack)}", logging_role]
        if prefix == "lambda":
            return [self.arn("lambda", region, f"function:{function_name(stack)}")]
        if prefix == "logs" and "Deliver" in action:  # CloudFront's log delivery, in us-east-1
            return [self.arn("logs", EDGE_REGION, f"delivery-source:{cloudfront_logging.source_name(stack)}"),
                    self.arn("logs", EDGE_REGION, f"delivery-destination:{cloudfront_logging.destination_name(stack)}"),
                    self.arn("logs", EDGE_REGION, "delivery:*")]
        if prefix == "logs":
            groups = [(region, log_group_name(stack)), (EDGE_REGION, f"aws-waf-logs-{stack}"),
                      (region, api_access_log.log_group_name(stack)),
                      (EDGE_REGION, cloudfront_logging.log_group_name(stack))]
            resources = [self.arn("logs", r, f"log-group:{g}{suffix}") for r, g in groups for suffix in ("", ":*")]
            if action in ("logs:TagResource", "logs:ListTagsForResource"):  # the delivery parts are tagged too
                resources += self.resources("logs:PutDeliverySource", service, operation)
            return resources
        if prefix == "acm":
            return [self.arn("acm", EDGE_REGION, "certificate/*")]
        if prefix == "cloudfront":
            return [f"arn:{partition(region)}:cloudfront::{self.account}:distribution/*"]
        if prefix == "wafv2":
            return [self.arn("wafv2", EDGE_REGION, f"global/webacl/{acl_name(stack)}/*"),
                    *(self.arn("wafv2", EDGE_REGION, f"global/ipset/{ip_set_name(stack, v)}/*") for v in (4, 6))]
        if prefix == "ec2":
            groups = [self.arn("ec2", region, "security-group/*")]
            return groups + [self.arn("ec2", region, "vpc/*")] if action == "ec2:CreateSecurityGroup" else groups
        if prefix == "rds":
            if "Subnet" in action:
                return [self.arn("rds", region, "subgrp:*")]
            return [self.arn("rds", region, f"db:{cfg.database.instance_id}")]
        if prefix == "route53":
            if action == "route53:GetChange":
                return [f"arn:{partition(region)}:route53:::change/*"]
            zone = cfg.domain.hosted_zone_id
            return [f"arn:{partition(region)}:route53:::hostedzone/{zone}"] if zone else ["*"]
        if prefix == "s3":
            bucket = f"{stack.lower()}-mail-{self.account}"  # steps/mail.py's bucket_name
            return [f"arn:{partition(region)}:s3:::{bucket}", f"arn:{partition(region)}:s3:::{bucket}/*"]
        if prefix == "sns":
            return [self.arn("sns", r, f"{stack}*") for r in cfg.regions]
        if prefix == "events":
            return [self.arn("events", r, f"rule/{stack}*") for r in cfg.regions]
        return ["*"]


def document(config: Config, account: str, calls: list[Call] | None = None) -> dict:
    """The policy document for this config: every recorded call of its variant, one statement per service,
    resource set and condition."""
    name = variant(config.domain.validation, config.domain.hosted_zone_id)
    names = Names(config, account)
    grouped: dict[tuple[str, tuple[str, ...], str], set[str]] = {}
    for call in calls if calls is not None else load_catalog():
        if name not in call.variants or (call.service, call.operation) in NO_PERMISSION_NEEDED:
            continue
        for action in actions(call.service, call.operation):
            resources = tuple(sorted(names.resources(action, call.service, call.operation)))
            condition = json.dumps(PASSED_BY.get(call.service) if action == "iam:PassRole" and call.service in
                                   PASSED_BY else CONDITIONS.get(action), sort_keys=True)
            grouped.setdefault((action.split(":")[0], resources, condition), set()).add(action)
    statements = []
    for (service, resources, condition), acts in sorted(grouped.items()):
        sid = re.sub(r"[^A-Za-z0-9]", "", service.title()) + ("Any" if resources == ("*",) else "Stack")
        statement = {"Sid": f"{sid}{len(statements) + 1}", "Effect": "Allow", "Action": sorted(acts),
                     "Resource": list(resources) if len(resources) > 1 else resources[0]}
        if json.loads(condition):
            statement["Condition"] = json.loads(condition)
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}
