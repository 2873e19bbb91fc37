"""The permissions boundary of every IAM role the toolkit makes: what those roles can ever do, whatever policy
is later put on them.

The operator's policy lets it write the function's role (its rds-db:connect
policy, its trust policy) and change the function's code. Without a ceiling,
that is a way to any permission: give the role more, run code as it. So
(IAM user guide, "Permissions boundaries for IAM entities", the example of
delegating role management):
- every role the toolkit makes carries the managed policy ``BOUNDARY`` as its
  permissions boundary; its effective permissions are what its own policies
  and the boundary both allow;
- the operator's policy grants the role-changing actions that take the
  ``iam:PermissionsBoundary`` condition key (CreateRole, PutRolePolicy,
  AttachRolePolicy, PutRolePermissionsBoundary) only with it equal to this
  policy's ARN, and never grants DeleteRolePermissionsBoundary, nor
  CreatePolicyVersion, SetDefaultPolicyVersion, DeletePolicyVersion or
  DeletePolicy on the boundary: the operator cannot lift the ceiling or
  rewrite it. UpdateAssumeRolePolicy takes no such key; it names only the
  toolkit's roles, which carry the boundary from their creation on.

One boundary for the account (IAM is global), the same document for every
stack, fixed by partition and account: what Lambda needs of a VPC function's
role (AWSLambdaVPCAccessExecutionRole's actions), rds-db:connect as a database
user of the account (auth = "iam"; the role's own policy narrows it to one
user), and, for the API Gateway logging roles only, what
AmazonAPIGatewayPushToCloudWatchLogs allows. The first deploy creates it;
every deploy reads it back and stops if its default version says anything
else. Teardown leaves it: other stacks' roles use it, and the operator holds
no iam:DeletePolicy, which would let it delete the boundary and create
another of that name.
"""
from __future__ import annotations

import json
from urllib.parse import unquote

from botocore.exceptions import ClientError

from ..aws_errors import ENTITY_ALREADY_EXISTS, NO_SUCH_ENTITY
from ..context import UNKNOWN, Context
from ..errors import DeployError, is_code, or_none
from ..registry import Beyond
from ..tags import MANAGED_BY, as_dict, is_ours

NAME = "rds-edge-api-role-boundary"
# The role-changing IAM actions that take the iam:PermissionsBoundary condition key (Service Authorization
# Reference, IAM) and could widen a role: granted only with the boundary set.
BOUNDED_ACTIONS = ("iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary")
# What the operator reads and creates of the boundary; never its versions' changes or its deletion.
POLICY_ACTIONS = ("iam:CreatePolicy", "iam:TagPolicy", "iam:GetPolicy", "iam:GetPolicyVersion")
WIDENING_ACTIONS = ("iam:DeleteRolePermissionsBoundary",)
REWRITING_ACTIONS = ("iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicyVersion",
                     "iam:DeletePolicy")
# AWSLambdaVPCAccessExecutionRole's actions (its current version, AWS managed policy reference)
FUNCTION_ACTIONS = ["ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface",
                    "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:UnassignPrivateIpAddresses",
                    "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
# AmazonAPIGatewayPushToCloudWatchLogs's actions (AWS managed policy reference)
API_GATEWAY_LOG_ACTIONS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogGroups",
                           "logs:DescribeLogStreams", "logs:FilterLogEvents", "logs:GetLogEvents", "logs:PutLogEvents"]
LOGGING_ROLES = "rds-edge-api-apigateway-logs-*"  # apigateway_account.role_name's, every region


def arn(partition: str, account: str) -> str:
    return f"arn:{partition}:iam::{account}:policy/{NAME}"


def document(partition: str, account: str) -> dict:
    """The boundary: a ceiling, so each statement is as narrow as the roles' work allows."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "VpcFunction", "Effect": "Allow", "Action": FUNCTION_ACTIONS, "Resource": "*"},
        {"Sid": "DatabaseUser", "Effect": "Allow", "Action": "rds-db:connect",
         "Resource": f"arn:{partition}:rds-db:*:{account}:dbuser:*/*"},
        {"Sid": "ApiGatewayLogging", "Effect": "Allow", "Action": API_GATEWAY_LOG_ACTIONS, "Resource": "*",
         "Condition": {"ArnLike": {"aws:PrincipalArn": f"arn:{partition}:iam::{account}:role/{LOGGING_ROLES}"}}},
    ]}


def observe(ctx: Context, partition: str) -> dict | None:
    """The boundary's default version's document as IAM holds it; None when there is no such policy."""
    iam = ctx.client("iam")
    found = or_none(iam.get_policy, NO_SUCH_ENTITY, PolicyArn=arn(partition, ctx.account_id))
    return None if found is None else current_document(iam, found["Policy"])


def ensure(ctx: Context, partition: str, seen: dict | None) -> str:
    """The boundary's ARN, the policy made if ``seen`` (``observe``'s answer) says there is none; DeployError
    if it holds another document."""
    iam, wanted_arn = ctx.client("iam"), arn(partition, ctx.account_id)
    wanted = document(partition, ctx.account_id)
    if seen is None:
        try:
            ctx.change("create", f"IAM policy {NAME} (the permissions boundary of the toolkit's roles, "
                                 "account-wide)", iam.create_policy, PolicyName=NAME, PolicyDocument=json.dumps(wanted),
                       Description="rds-edge-api: the most any role the toolkit makes may do", Tags=[
                           {"Key": "managed-by", "Value": MANAGED_BY}],
                       find=lambda: or_none(iam.get_policy, NO_SUCH_ENTITY, PolicyArn=wanted_arn))
            return wanted_arn
        except ClientError as exc:  # made meanwhile: by this deploy's other role, or another stack's run
            if not is_code(exc, ENTITY_ALREADY_EXISTS):
                raise
        seen = observe(ctx, partition)
    if seen != wanted:
        raise DeployError(f"IAM policy {NAME}, the permissions boundary of the toolkit's roles, allows something "
                          "other than the toolkit's boundary; an administrator must restore it (rds-edge-api "
                          "policy --check shows the difference) or delete it, then run again")
    return wanted_arn


def current_document(iam, policy: dict) -> dict:
    version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])["PolicyVersion"]
    text = version["Document"]
    return json.loads(unquote(text)) if isinstance(text, str) else text


def condition(partition: str, account: str) -> dict:
    """The condition the operator's grants of ``BOUNDED_ACTIONS`` carry."""
    return {"StringEquals": {"iam:PermissionsBoundary": arn(partition, account)}}


def ensure_on(ctx: Context, role: dict, ceiling: str) -> None:
    """Put the toolkit's boundary on a role that has none or another (made before it, or changed by hand)."""
    if (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn") != ceiling:
        ctx.change("update", f"permissions boundary of IAM role {role['RoleName']} ({NAME})",
                   ctx.client("iam").put_role_permissions_boundary, RoleName=role["RoleName"],
                   PermissionsBoundary=ceiling)


def create_role(ctx: Context, name: str, what: str, trust: dict, ceiling: str, description: str,
                find=None) -> str:
    """Make a role the toolkit's way: tagged as the stack's and bounded from its creation (the operator's
    policy allows CreateRole only with this boundary); its ARN, or UNKNOWN while planning."""
    created = ctx.change("create", f"IAM role {name}{f' ({what})' if what else ''}", ctx.client("iam").create_role,
                         RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), Tags=ctx.tag_list,
                         PermissionsBoundary=ceiling, Description=description,
                         **({"find": find} if find else {}))
    return created["Role"]["Arn"] if created else UNKNOWN


def keep_trust(ctx: Context, role: dict, trust: dict) -> None:
    """Put a role's trust policy back when it was changed (IAM returns it URL-encoded JSON, boto3 decoded)."""
    doc = role.get("AssumeRolePolicyDocument", {})
    if (json.loads(doc) if isinstance(doc, str) else doc) != trust:
        ctx.change("update", f"trust policy of IAM role {role['RoleName']}", ctx.client("iam").update_assume_role_policy,
                   RoleName=role["RoleName"], PolicyDocument=json.dumps(trust))


ROLE_TAGGED = Beyond("iam", "CreateRole", ("iam:TagRole",),
                     "IAM user guide, 'Tagging IAM roles': to create a role with tags you need iam:CreateRole and iam:TagRole")
POLICY_TAGGED = Beyond("iam", "CreatePolicy", ("iam:TagPolicy",),
                       "IAM user guide, 'Tagging customer managed policies': to create a policy with tags you need "
                       "iam:CreatePolicy and iam:TagPolicy")


def removable(ctx: Context, role: dict) -> bool:
    """Whether teardown may remove this role: tagged as the stack's; otherwise it says it leaves it."""
    iam, name = ctx.client("iam"), role["RoleName"]
    tags = role.get("Tags") or iam.list_role_tags(RoleName=name)["Tags"]
    if is_ours(tags, ctx.stack):
        return True
    ctx.out.note(f"Leaving IAM role {name}: it is not tagged as this stack's ({as_dict(tags)})")
    return False
