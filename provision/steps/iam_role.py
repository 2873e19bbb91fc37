"""The Lambda function's IAM role: assumable by Lambda only, with the managed VPC-access policy.

The trust policy names this account (``aws:SourceAccount``): only Lambda
acting for a function of this account may assume the role (the confused-deputy
guard AWS recommends for service roles).

AWSLambdaVPCAccessExecutionRole is the narrowest AWS policy that lets a VPC
function create its network interfaces and write its logs. Nothing else is
attached; policies attached by hand are left alone. With auth = "iam" the role
also holds one inline policy, rds-db:connect for exactly the configured
database user on this instance (its DbiResourceId, not its name: AWS's ARN
format), removed when auth goes back to "password" and at teardown.

The role carries the toolkit's permissions boundary (provision/aws/boundary.py)
from its creation on, put on a role made before it existed: whatever policy
it is later given, it can do no more than that boundary allows.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import boto3

from ..aws import boundary, database
from ..aws.arns import partition
from ..aws_errors import NO_SUCH_ENTITY
from ..config import Config
from ..context import Context
from ..errors import or_none
from ..registry import Account, Names, OnlyWhen, Step
from ..tags import is_ours
from ..together import together

NAME = "iam_role"
POLICY = "arn:{partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"


def trust_policy(account_id: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                       "Action": "sts:AssumeRole",
                       "Condition": {"StringEquals": {"aws:SourceAccount": account_id}}}],
    }


def role_name(stack: str) -> str:
    return f"{stack}-fn"


def _find(ctx: Context) -> dict | None:
    found = or_none(ctx.client("iam").get_role, NO_SUCH_ENTITY, RoleName=role_name(ctx.stack))
    return found and found["Role"]


@dataclass(frozen=True)
class Seen:
    """The role (None: none), its attached policies and its inline rds-db:connect policy, as IAM answered."""
    role: dict | None
    attached: list[dict] | None  # None: no role to list them of
    connect: dict | None         # GetRolePolicy's answer; None: no such inline policy
    boundary: dict | None        # the permissions boundary's document; None: no such policy yet


def observe(ctx: Context) -> Seen:
    """The role, its attached and its inline policy, read at once (the database too, with auth = "iam")."""
    iam, name = ctx.client("iam"), role_name(ctx.stack)
    pieces = [_find,
              lambda c: or_none(iam.list_attached_role_policies, NO_SUCH_ENTITY, RoleName=name),
              lambda c: or_none(iam.get_role_policy, NO_SUCH_ENTITY, RoleName=name, PolicyName=CONNECT_POLICY),
              lambda c: boundary.observe(c, partition(c.region))]
    if ctx.config.database.auth == "iam":
        pieces.append(database.lookup)  # for the connect policy's resource
    role, attached, connect, ceiling = together(ctx, *pieces)[:4]
    return Seen(role, attached and attached["AttachedPolicies"], connect, ceiling)


def ensure(ctx: Context, seen: Seen | None = None) -> None:
    seen = seen or observe(ctx)
    iam, name = ctx.client("iam"), role_name(ctx.stack)
    policy = POLICY.format(partition=partition(ctx.region))
    trust = trust_policy(ctx.account_id)
    role = seen.role
    ceiling = boundary.ensure(ctx, partition(ctx.region), seen.boundary)
    if role is None:
        arn = boundary.create_role(ctx, name, "", trust, ceiling,
                                   f"rds-edge-api stack {ctx.stack}: Lambda execution role",
                                   find=lambda: (found := _find(ctx)) and {"Role": found})
        ctx.change("update", f"attach {policy.rsplit('/', 1)[1]} to {name}", iam.attach_role_policy,
                   RoleName=name, PolicyArn=policy)
    else:
        arn = role["Arn"]
        boundary.ensure_on(ctx, role, ceiling)
        boundary.keep_trust(ctx, role, trust)
        if not is_ours(role.get("Tags"), ctx.stack):
            ctx.change("update", f"tags of IAM role {name}", iam.tag_role, RoleName=name, Tags=ctx.tag_list)
        if policy not in {p["PolicyArn"] for p in seen.attached or []}:
            ctx.change("update", f"attach {policy.rsplit('/', 1)[1]} to {name}", iam.attach_role_policy,
                       RoleName=name, PolicyArn=policy)
    _ensure_connect_policy(ctx, name, seen.connect)
    ctx.state.put(NAME, {"name": name, "arn": arn})
    ctx.outputs["IAM role"] = arn


CONNECT_POLICY = "rds-db-connect"


def connect_policy(ctx: Context) -> dict:
    """rds-db:connect for the one database user the function signs tokens for."""
    arn = database.connect_arn(ctx, database.lookup(ctx), partition(ctx.region))
    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "rds-db:connect", "Resource": arn}]}


def _ensure_connect_policy(ctx: Context, name: str, found: dict | None) -> None:
    """The inline policy with auth = "iam"; none with "password" (a switch back removes it). With
    [database] proxy the proxy step writes it (naming the proxy), so it is left alone here."""
    iam = ctx.client("iam")
    if ctx.config.database.proxy:  # the proxy step writes it: rds-db:connect names the proxy, made after this
        return
    if ctx.config.database.auth != "iam":
        if found is not None:
            ctx.change("delete", f"inline policy {CONNECT_POLICY} of {name} (auth is not iam)",
                       iam.delete_role_policy, RoleName=name, PolicyName=CONNECT_POLICY)
        return
    wanted = connect_policy(ctx)
    current = found and found["PolicyDocument"]
    if isinstance(current, str):
        current = json.loads(current)
    if current != wanted:
        user = ctx.config.database.user
        ctx.change("create" if found is None else "update",
                   f"inline policy {CONNECT_POLICY} of {name}: rds-db:connect as {user}", iam.put_role_policy,
                   RoleName=name, PolicyName=CONNECT_POLICY, PolicyDocument=json.dumps(wanted))


def destroy(ctx: Context) -> None:
    """Every policy off the role, then the role: what is there read at once, the changes one by one
    (IAM may refuse changes to one role at once: ConcurrentModification, terraform-provider-aws#34371)."""
    iam, name = ctx.client("iam"), role_name(ctx.stack)
    role, attached, inline = together(
        ctx, _find, lambda c: or_none(iam.list_attached_role_policies, NO_SUCH_ENTITY, RoleName=name),
        lambda c: or_none(iam.list_role_policies, NO_SUCH_ENTITY, RoleName=name))
    if role is None:
        return
    if not boundary.removable(ctx, role):
        return
    for policy in (attached or {}).get("AttachedPolicies", []):
        ctx.change("update", f"detach {policy['PolicyName']} from {name}", iam.detach_role_policy,
                   RoleName=name, PolicyArn=policy["PolicyArn"])
    for inline_name in (inline or {}).get("PolicyNames", []):
        ctx.change("update", f"delete inline policy {inline_name} of {name}", iam.delete_role_policy,
                   RoleName=name, PolicyName=inline_name)
    ctx.change("delete", f"IAM role {name}", iam.delete_role, RoleName=name)


# --- the step, declared (provision/registry.py) ---------------------------------



def inventory(config: Config) -> list[str]:
    """The stack's roles (by tag), read back with plain boto3 (IAM is global)."""
    iam = boto3.client("iam")
    return [f"role {role['RoleName']}" for role in iam.list_roles()["Roles"]
            if is_ours(iam.list_role_tags(RoleName=role["RoleName"])["Tags"], config.stack.name)]


def _arns(names: Names, action: str) -> list[str]:
    return [names.arn("iam", "", f"role/{role_name(names.config.stack.name)}")]


def drift(session: boto3.Session, config: Config) -> None:
    """Behind the stack's back: the role's stack tag removed, its trust policy handed to EC2, its permissions
    boundary removed (deploy puts the three back), and an inline policy added (deploy leaves it; teardown
    removes it to delete the role)."""
    iam, name = session.client("iam"), role_name(config.stack.name)
    iam.untag_role(RoleName=name, TagKeys=["stack"])
    iam.delete_role_permissions_boundary(RoleName=name)
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))
    iam.put_role_policy(RoleName=name, PolicyName="added", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}))


ONLY_WITH_IAM_AUTH = {("iam", "PutRolePolicy"): OnlyWhen(
    lambda cfg: cfg.database.auth == "iam",
    "the role's one inline policy (rds-db:connect) exists only with auth = \"iam\"; the grant lets its holder write "
    "any inline policy on the function's role, so it is left out where it is not needed")}


def leaves(config: Config, account: Account) -> list[str]:
    """The function's role (the boundary policy is the account's, shared by every stack's roles)."""
    return [f"role {role_name(config.stack.name)}"]


STEP = Step(NAME, "IAM role", ensure, destroy, observe=observe,
            inventory=(inventory,), leaves=leaves, arns={"iam": _arns},
            creates=("CreatePolicy", "CreateRole", "AttachRolePolicy"),
            removes=("DeleteRole",), drift=(drift,),
            beyond=(boundary.ROLE_TAGGED, boundary.POLICY_TAGGED), only_when=ONLY_WITH_IAM_AUTH)
