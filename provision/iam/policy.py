"""The operator's least-privilege IAM policy, from the AWS calls the toolkit was seen making.

``aws_calls.json`` (beside this file) lists every (service, operation) the
commands made in moto, per config variant; ``scripts/record-aws-calls``
writes it (``maintainer/recording.py``), and ``tests/test_policy.py``
fails when the code makes a call the catalog lacks. Each call maps to the IAM
actions AWS checks for it: its own, and those it checks beyond it because of
what the toolkit passes (tags on create, a role, a VPC configuration), from
the one table in ``provision/iam/permissions.py``. This module narrows each
action's resources to the stack's own names, regions and account where the
service supports resource-level permissions, and adds the conditions that
narrow further (the role passed to Lambda only; only AWS's VPC-access policy
attached; the function's security group by the stack's tags; the database's by
its id). Actions without resource-level support get ``*``, never the other way
round: no action is ever ``*``. The role-changing actions are granted only on
roles that carry the toolkit's permissions boundary (provision/aws/boundary.py),
whose removal or rewriting is never granted.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import botocore.session
from botocore.model import ServiceModel

from .. import lease, registry
from ..aws import apigateway_account, boundary
from ..aws.arns import partition
from ..config import VALIDATIONS, Config
from ..steps import STEPS, mail, proxy
from ..steps.iam_role import POLICY as LAMBDA_VPC_POLICY, role_name
from ..tags import stack_tags
from . import permissions

CATALOG = Path(__file__).with_name("aws_calls.json")
RECORD_COMMAND = "scripts/record-aws-calls"

# IAM actions that only take "*" (no resource-level permissions, per AWS's Service Authorization Reference).
STAR = re.compile(r"^(ec2:Describe.*|acm:ListCertificates|acm:RequestCertificate|cloudfront:List(Distributions|CachePolicies)"
                  r"|lambda:(ListFunctions|GetAccountSettings)|route53:ListHostedZones.*|route53:GetHostedZoneCount"
                  r"|s3:ListAllMyBuckets|wafv2:List(WebACLs|IPSets|LoggingConfigurations)|iam:ListRoles"
                  r"|ses:.*|sns:(ListTopics|Unsubscribe)|events:ListRules|logs:(DescribeLogGroups|CreateLogDelivery"
                  r"|DeleteLogDelivery|GetLogDelivery|ListLogDeliveries|UpdateLogDelivery|PutResourcePolicy"
                  r"|DescribeResourcePolicies|DeleteResourcePolicy|DescribeDeliveries|DescribeDeliverySources"
                  r"|DescribeDeliveryDestinations)"
                  r"|rds:DescribeDBEngineVersions|tag:GetResources|pricing:GetProducts)$")

# The lease's item calls, each keyed by the stack's name or, for the account's short leases on shared things
# (lease.account_held), by theirs (DynamoDB's fine-grained access control).
LEASE_ITEM_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    commands: tuple[str, ...]
    variants: tuple[str, ...]


def variant(validation: str, hosted_zone_id: str | None) -> str:
    """Which recorded config variant a config is: "dns", "dns+zone", "email", "email+zone"."""
    return f"{validation}+zone" if hosted_zone_id else validation


# The config choices that change which calls a run makes, each recorded (maintainer/recording.py): every
# validation mode, with and without a hosted zone for the toolkit to write the records in.
VARIANTS: tuple[tuple[str, bool], ...] = tuple((validation, zone) for validation in VALIDATIONS for zone in (True, False))


def load_catalog(path: Path = CATALOG) -> list[Call]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [Call(c["service"], c["operation"], tuple(c["commands"]), tuple(c["variants"])) for c in data["calls"]]


def actions(service: str, operation: str) -> tuple[str, ...]:
    """The IAM action(s) AWS checks for one API call: its own, then those of ``permissions.BEYOND``."""
    own = permissions.own_actions(service, operation, lambda op: _apigateway_http(op, service)[0])
    extra = tuple(a for b in permissions.beyond(service, operation) for a in b.actions)
    return tuple(dict.fromkeys(own + extra))


_MODELS: dict[str, ServiceModel] = {}


def _apigateway_http(operation: str, service: str = "apigateway") -> tuple[str, str]:
    """(HTTP method, resource path up to the first id) of an API Gateway operation, from botocore's model:
    /restapis/{restapi_id}/resources/{resource_id} -> /restapis/*; apigatewayv2's /v2/apis/{apiId} -> /apis/*."""
    if service not in _MODELS:
        _MODELS[service] = botocore.session.get_session().get_service_model(service)
    http = _MODELS[service].operation_model(operation).http
    path = re.sub(r"\{[^}]+\}", "*", http["requestUri"].split("?")[0].removeprefix("/v2"))
    return http["method"], path[:path.index("*") + 1] if "*" in path else path


@dataclass(frozen=True)
class Network:
    """The database's VPC and security group (the operator's), which the EC2 grants name by id."""
    vpc_id: str
    database_group_id: str


@dataclass(frozen=True)
class Names:
    """What the stack's resources are called: the ARNs and conditions the policy narrows to."""
    config: Config
    account: str
    network: Network

    def arn(self, service: str, region: str, resource: str) -> str:
        return f"arn:{partition(self.config.stack.region)}:{service}:{region}:{self.account}:{resource}"

    def unowned_arn(self, service: str, resource: str) -> str:
        return f"arn:{partition(self.config.stack.region)}:{service}:::{resource}"

    def resources(self, action: str, service: str, operation: str) -> list[str]:
        """The narrowest resources AWS supports for this action in this call and this stack."""
        if STAR.match(action):
            return ["*"]
        types = permissions.resource_types(action, service, operation)
        if types:
            return [arn for kind in types for arn in self._of_type(kind, action, operation)]
        return self._usual(action, service, operation)

    def grants(self, action: str, service: str, operation: str) -> list[tuple[list[str], dict | None]]:
        """(resources, condition) of each statement granting the action: one, and with [database] proxy a
        second for the inbound rules on the proxy's group (steps/proxy.py), any group tagged as the stack's."""
        found = [(self.resources(action, service, operation), self.condition(action, service, operation))]
        if self.config.database.proxy and action in ("ec2:AuthorizeSecurityGroupIngress",
                                                     "ec2:RevokeSecurityGroupIngress"):
            tags = stack_tags(self.config.stack.name)
            found.append(([self.arn("ec2", self.config.stack.region, "security-group/*")],
                          {"StringEquals": {f"aws:ResourceTag/{k}": v for k, v in sorted(tags.items())}}))
        return found

    def _of_type(self, kind: str, action: str, operation: str) -> list[str]:
        """The stack's ARNs of one Service Authorization Reference resource type that ``permissions`` names."""
        region = self.config.stack.region
        apigateway = f"arn:{partition(region)}:apigateway:{region}::"
        return {"security-group": lambda: self._security_groups(action, operation),
                "security-group-rule": lambda: [self.arn("ec2", region, "security-group-rule/*")],
                "Tags": lambda: [f"{apigateway}/tags/*"],
                "Stage": lambda: [f"{apigateway}/restapis/*"]}[kind]()

    def _security_groups(self, action: str, operation: str) -> list[str]:
        """The database's group by id (the inbound rule), the function's by tag (see ``condition``)."""
        region = self.config.stack.region
        if action in ("ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"):
            return [self.arn("ec2", region, f"security-group/{self.network.database_group_id}")]
        if action == "ec2:CreateSecurityGroup":
            return [self.arn("ec2", region, "security-group/*"), self.arn("ec2", region, f"vpc/{self.network.vpc_id}")]
        return [self.arn("ec2", region, "security-group/*")]

    def _usual(self, action: str, service: str, operation: str) -> list[str]:
        """The action's resources for this stack, by service; "*" for a service named nowhere here (the
        reference test then fails if the action takes a resource type)."""
        if action == "iam:PassRole" and service == "apigateway":  # UpdateAccount: the account's logging role
            return [apigateway_account.role_arn(self)]
        if action == "iam:PassRole" and service == "lambda":  # the function's role, never the proxy's
            return [self.arn("iam", "", f"role/{role_name(self.config.stack.name)}")]
        if action == "iam:PassRole" and service == "rds":  # CreateDBProxy: the proxy's role
            return [self.arn("iam", "", f"role/{proxy.role_name(self.config.stack.name)}")]
        if action in boundary.POLICY_ACTIONS:  # the roles' permissions boundary, made once per account
            return [boundary.arn(partition(self.config.stack.region), self.account)]
        if action.split(":")[0] == "apigateway":  # ids are API Gateway's: the region, the kind, one id or none
            region = self.config.stack.region
            return [f"arn:{partition(region)}:apigateway:{region}::{_apigateway_http(operation, service)[1]}"]
        if action.split(":")[0] == "ec2":
            return self._security_groups(action, operation)
        if action == "iam:SimulatePrincipalPolicy":  # the caller itself, whose name the policy cannot know:
            # no policy variable names the role behind a session (${aws:username} is for users only)
            return [f"arn:{partition(self.config.stack.region)}:iam::{self.account}:{kind}/*" for kind in ("user", "role")]
        if action.split(":")[0] == "rds":  # the operator's database, which no step makes
            return self._rds(action)
        if action.split(":")[0] == "dynamodb":  # the lease table the account's stacks share (provision/lease.py),
            # in the stack's region and, for the shared receipt rule set's lease, the mail region
            regions = [self.config.stack.region] + ([self.config.domain.mail_region]
                                                    if self.config.domain.receives_mail else [])
            return [self.arn("dynamodb", region, f"table/{lease.TABLE}") for region in dict.fromkeys(regions)]
        owned = registry.arns(STEPS, self, action)
        return owned if owned is not None else ["*"]

    def _rds(self, action: str) -> list[str]:
        region = self.config.stack.region
        if action == "rds:RegisterDBProxyTargets":  # the proxy's default target group (its id is AWS's)
            return [self.arn("rds", region, "target-group:*")]
        if action == "rds:DescribeDBProxyTargets":
            return [self.arn("rds", region, "db-proxy:*"), self.arn("rds", region, "target-group:*")]
        if "DBProx" in action or action in ("rds:ListTagsForResource", "rds:AddTagsToResource"):
            return [self.arn("rds", region, "db-proxy:*")]  # a proxy's ARN ends in its prx- id, AWS's choice
        if "Subnet" in action:
            return [self.arn("rds", self.config.stack.region, "subgrp:*")]
        if action == "rds:DescribeDBClusters":  # Aurora: the instance's cluster, not named in the config
            return [self.arn("rds", self.config.stack.region, "cluster:*")]
        return [self.arn("rds", self.config.stack.region, f"db:{self.config.database.instance_id}")]

    def condition(self, action: str, service: str, operation: str) -> dict | None:
        """What narrows the grant beyond its resources, where AWS supports a condition for it."""
        if action == "iam:PassRole":  # the function's role to Lambda only; the logging role to API Gateway only
            to = {"apigateway": "apigateway.amazonaws.com", "rds": "rds.amazonaws.com"}.get(service,
                                                                                           "lambda.amazonaws.com")
            return {"StringEquals": {"iam:PassedToService": to}}
        ceiling = boundary.condition(partition(self.config.stack.region), self.account)
        if action == "iam:AttachRolePolicy":  # no AdministratorAccess on a role the operator can run code as
            attached = [managed.format(partition=partition(self.config.stack.region))
                        for managed in (LAMBDA_VPC_POLICY, apigateway_account.POLICY)]
            return {"ArnEquals": {"iam:PolicyARN": attached}, **ceiling}
        if action in boundary.BOUNDED_ACTIONS:  # only on a role that carries the boundary, or gets it
            return ceiling
        if action == "ec2:CreateTags":  # tags only in the creating call (EC2's tag-on-create condition key)
            return {"StringEquals": {"ec2:CreateAction": operation}}
        if action in LEASE_ITEM_ACTIONS:  # the stack's own lease item and the account leases it takes, by key
            keys = [self.config.stack.name, lease.ACCOUNT + apigateway_account.LEASE]
            keys += [lease.ACCOUNT + mail.SHARED_LEASE] if self.config.domain.receives_mail else []
            return {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": keys}}
        if action in ("ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress", "ec2:DeleteSecurityGroup"):
            tags = stack_tags(self.config.stack.name)
            return {"StringEquals": {f"aws:ResourceTag/{k}": v for k, v in sorted(tags.items())}}
        return None


def document(config: Config, account: str, network: Network, calls: list[Call] | None = None) -> dict:
    """The policy document for this config: every recorded call of its variant that the config needs, one
    statement per service, resource set and condition."""
    name = variant(config.domain.validation, config.domain.hosted_zone_id)
    names = Names(config, account, network)
    grouped: dict[tuple[str, tuple[str, ...], str], set[str]] = {}
    for call in calls if calls is not None else load_catalog():
        if name not in call.variants or not permissions.needed(call.service, call.operation, config):
            continue
        for action in actions(call.service, call.operation):
            for granted, narrowed in names.grants(action, call.service, call.operation):
                resources = tuple(sorted(granted))
                condition = json.dumps(narrowed, sort_keys=True)
                grouped.setdefault((action.split(":")[0], resources, condition), set()).add(action)
    statements: list[dict] = []
    for (service, resources, condition), acts in sorted(grouped.items()):
        sid = re.sub(r"[^A-Za-z0-9]", "", service.title()) + ("Any" if resources == ("*",) else "Stack")
        statement = {"Sid": f"{sid}{len(statements) + 1}", "Effect": "Allow", "Action": sorted(acts),
                     "Resource": list(resources) if len(resources) > 1 else resources[0]}
        if json.loads(condition):
            statement["Condition"] = json.loads(condition)
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}
