"""Whether the caller holds the stack's least-privilege policy (``policy --check``, and deploy first with
``[stack] check_permissions = true``).

``iam:SimulatePrincipalPolicy`` on the caller (an IAM user, or the role behind
an assumed-role session) for every statement's actions and resources of the
policy (provision/iam/policy.py), with the statement's condition values as context;
then that the caller has no way past the roles' permissions boundary
(provision/aws/boundary.py): no role-changing action allowed with another
boundary or none, no removal of a role's boundary, no rewriting or deletion
of the boundary policy, and the boundary, where it exists, the toolkit's.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from botocore.exceptions import ClientError
from rich.table import Table

from ..aws import boundary
from ..aws.arns import partition
from ..aws_errors import ACCESS_DENIED, ACCESS_DENIED_EXCEPTION, NO_SUCH_ENTITY
from ..errors import error_code, is_code, or_none
from .policy import Network, document


def stack_network(ctx) -> Network:
    """The database's VPC and security group, as the deploy finds them (rds:DescribeDBInstances)."""
    from ..aws import database

    db = database.lookup(ctx)
    return Network(db.vpc_id, db.security_group_id)


@dataclass(frozen=True)
class Denial:
    action: str
    resource: str
    why: str


def principal_of(caller_arn: str) -> str | None:
    """The IAM principal to simulate for the caller: a user as it is; an assumed-role session -> its role
    (the path, which the session's ARN does not carry, is looked up on NoSuchEntity); None otherwise."""
    head, _, rest = caller_arn.partition(":assumed-role/")
    if rest:
        return f"{head.replace(':sts:', ':iam:')}:role/{rest.split('/')[0]}"
    return caller_arn if re.match(r"^arn:[^:]+:iam::\d{12}:user/", caller_arn) else None


def check_caller(ctx) -> bool:
    """Whether the caller holds every permission of this config's policy; prints the denials and why."""
    config, out = ctx.config, ctx.out
    identity = ctx.client("sts").get_caller_identity()
    principal = principal_of(identity["Arn"])
    if principal is None:
        out.error(f"cannot check the permissions of {identity['Arn']}: IAM simulates users and roles only "
                  "(run as an IAM user or an assumed role)")
        return False
    doc = document(config, identity["Account"], stack_network(ctx))
    iam = ctx.client("iam")
    try:
        principal, denials = _simulate_caller(iam, principal, doc)
    except ClientError as exc:
        if not is_code(exc, ACCESS_DENIED, ACCESS_DENIED_EXCEPTION):
            raise
        out.error(f"{principal} may not simulate its own permissions (iam:SimulatePrincipalPolicy: "
                  f"{error_code(exc)}), so they cannot be checked")
        return False
    count = sum(len(s["Action"]) for s in doc["Statement"])
    if not denials:
        out.console.print(f"Permissions checked: all {count} actions of the policy are allowed for {principal}.")
        return _bounded(ctx, iam, principal, doc, identity["Account"])
    table = Table(title=f"Denied to {principal} ({len(denials)} of the policy's action and resource pairs)")
    for column in ("Action", "Resource", "Why"):
        table.add_column(column, overflow="fold")
    for denial in denials:
        table.add_row(denial.action, denial.resource, denial.why)
    out.console.print(table)
    out.error("the caller lacks permissions the stack needs: grant them (rds-edge-api policy prints the policy)")
    return False


def _bounded(ctx, iam, principal: str, doc: dict, account: str) -> bool:
    """Whether the caller has no way to give a role more than the boundary allows; prints the ways it has."""
    ceiling_arn = boundary.arn(partition(ctx.config.stack.region), account)
    ways = ways_past_the_boundary(iam, principal, doc, ceiling_arn)
    wanted = boundary.document(partition(ctx.config.stack.region), account)
    found = or_none(iam.get_policy, NO_SUCH_ENTITY, PolicyArn=ceiling_arn)
    if found is not None and boundary.current_document(iam, found["Policy"]) != wanted:
        ways.append(Denial("(the boundary itself)", ceiling_arn, "its default version allows other than the "
                                                                 "toolkit's boundary: restore or delete it"))
    if not ways:
        ctx.out.console.print(f"No way past the roles' permissions boundary {boundary.NAME}: every role-changing "
                              "action needs it, and it can be neither removed nor rewritten.")
        return True
    table = Table(title=f"Ways past the roles' permissions boundary {boundary.NAME} ({len(ways)})")
    for column in ("Action", "Resource", "Why"):
        table.add_column(column, overflow="fold")
    for way in ways:
        table.add_row(way.action, way.resource, way.why)
    ctx.out.console.print(table)
    ctx.out.error("the caller could give the toolkit's roles more than their boundary allows: remove those grants")
    return False


def ways_past_the_boundary(iam, principal: str, doc: dict, ceiling_arn: str) -> list[Denial]:
    """Each allowed request that would widen a role past the boundary: the bounded actions on the policy's roles
    with another boundary named, or with none; the boundary's removal; the boundary policy's rewriting."""
    roles = sorted({r for s in doc["Statement"] if any(a.startswith("iam:") for a in s["Action"])
                    for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
                    if ":role/" in r})
    other = ceiling_arn.rsplit("/", 1)[0] + "/another-boundary"
    probes = [(list(boundary.BOUNDED_ACTIONS), roles, [_entry("iam:PermissionsBoundary", other)],
               f"allowed with another boundary ({other})"),
              (list(boundary.BOUNDED_ACTIONS), roles, [], "allowed with no boundary"),
              (list(boundary.WIDENING_ACTIONS), roles, [], "removes the boundary"),
              (list(boundary.REWRITING_ACTIONS), [ceiling_arn], [], "rewrites or deletes the boundary")]
    ways = []
    for actions, resources, context, why in probes:
        if not resources:
            continue
        pages = iam.get_paginator("simulate_principal_policy").paginate(
            PolicySourceArn=principal, ActionNames=actions, ResourceArns=resources, ContextEntries=context)
        for result in (r for page in pages for r in page["EvaluationResults"]):
            for specific in result.get("ResourceSpecificResults") or [result]:
                if (specific.get("EvalResourceDecision") or specific.get("EvalDecision")) == "allowed":
                    ways.append(Denial(result["EvalActionName"],
                                       specific.get("EvalResourceName") or result.get("EvalResourceName", "*"), why))
    return ways


def _entry(key: str, value: str) -> dict:
    return {"ContextKeyName": key, "ContextKeyValues": [value], "ContextKeyType": "string"}


def _simulate_caller(iam, principal: str, doc: dict) -> tuple[str, list[Denial]]:
    """(the principal simulated, its denials); a role with a path is found by name first (iam:GetRole)."""
    try:
        return principal, _simulate(iam, principal, doc)
    except ClientError as exc:
        if not (is_code(exc, NO_SUCH_ENTITY) and ":role/" in principal):
            raise
    principal = iam.get_role(RoleName=principal.rsplit("/", 1)[1])["Role"]["Arn"]
    return principal, _simulate(iam, principal, doc)


def _simulate(iam, principal: str, doc: dict) -> list[Denial]:
    denials = []
    for statement in doc["Statement"]:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        pages = iam.get_paginator("simulate_principal_policy").paginate(
            PolicySourceArn=principal, ActionNames=statement["Action"], ResourceArns=resources,
            ContextEntries=_context(statement.get("Condition", {})))
        for result in (r for page in pages for r in page["EvaluationResults"]):
            for specific in result.get("ResourceSpecificResults") or [result]:
                decision = specific.get("EvalResourceDecision") or specific.get("EvalDecision")
                if decision != "allowed":
                    denials.append(Denial(result["EvalActionName"],
                                          specific.get("EvalResourceName") or result.get("EvalResourceName", "*"),
                                          _why(decision, result, specific)))
    return denials


def _context(condition: dict) -> list[dict]:
    """The statement's condition values as the simulation's request context, so that a grant with the same
    condition evaluates as it will for the real call."""
    return [{"ContextKeyName": key, "ContextKeyValues": [value] if isinstance(value, str) else list(value),
             "ContextKeyType": "string" if isinstance(value, str) else "stringList"}
            for values in condition.values() for key, value in values.items()]


def _why(decision: str, result: dict, specific: dict) -> str:
    """IAM's reason, in words: an explicit deny (naming the policy), an SCP, a permissions boundary, no allow."""
    if decision == "explicitDeny":
        sources = sorted({m.get("SourcePolicyId", "?") for m in specific.get("MatchedStatements") or
                          result.get("MatchedStatements") or []})
        return "explicitly denied" + (f" by {', '.join(sources)}" if sources else "")
    if (result.get("OrganizationsDecisionDetail") or {}).get("AllowedByOrganizations") is False:
        return "denied by a service control policy (AWS Organizations)"
    boundary = specific.get("PermissionsBoundaryDecisionDetail") or result.get("PermissionsBoundaryDecisionDetail")
    if (boundary or {}).get("AllowedByPermissionsBoundary") is False:
        return "not allowed by the caller's permissions boundary"
    missing = specific.get("MissingContextValues") or result.get("MissingContextValues") or []
    return "no policy allows it" + (f" (the simulation lacked {', '.join(missing)})" if missing else "")
