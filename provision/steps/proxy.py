"""Step "proxy" (``[database] proxy = true``): an RDS Proxy before the instance, so connections are pooled.

Every concurrent Lambda container holds its own MySQL connection; a proxy
multiplexes them onto a pool the instance can bear. What the step makes, all
tagged and removed at teardown or when ``proxy`` is switched off:
- the role ``<stack>-proxy`` (trust: rds.amazonaws.com, for this account only;
  the toolkit's permissions boundary, provision/aws/boundary.py) with one inline policy,
  ``rds-db:connect`` as the configured user on the
  instance: with end-to-end IAM authentication (``DefaultAuthScheme``
  ``IAM_AUTH``) the proxy connects to the database with IAM tokens of its own
  role, and no Secrets Manager secret exists (RDS user guide, "Configuring IAM
  authentication for RDS Proxy");
- the security group ``<stack>-proxy`` in the database's VPC: MySQL in from the
  function's group, MySQL out to the database's group only; plus one inbound
  rule on the database's group (from the proxy's) and one outbound rule on the
  function's group (to the proxy's), each marked by its description;
- the proxy ``<stack>-proxy`` (EngineFamily MYSQL, RequireTLS, the database's
  subnets), its default target group registered with the instance (Aurora:
  its cluster), waited for until the target is AVAILABLE.
The function's ``DB_HOST`` is then the proxy's endpoint, and its role's
``rds-db:connect`` names the proxy's resource id (``prx-...``, the last part
of its ARN), not the instance's: the function's token is checked by the proxy.
RDS Proxy keeps no tags in DescribeDBProxies: it is found by name, and its
tags (ListTagsForResource) say whether it is this stack's.

A proxy takes minutes to become available and to be deleted on AWS: both
are waited for visibly (provision/waits.py); teardown's other chains go on
meanwhile (the runner walks the graph backwards, this step after the function).
"""
from __future__ import annotations

import json

import boto3

from .. import waits
from ..aws import boundary, database
from ..aws.arns import partition
from ..aws_errors import (
    DB_PROXY_NOT_FOUND_FAULT,
    DEPENDENCY_VIOLATION,
    INVALID_PARAMETER_VALUE,
    INVALID_PARAMETER_VALUE_EXCEPTION,
    NO_SUCH_ENTITY,
)
from ..config import Config
from ..context import UNKNOWN, Context
from ..errors import DeployError, is_code, or_none
from ..registry import Account, Beyond, Names, OnlyWhen, Step
from ..tags import as_dict, is_ours
from . import iam_role
from .security_groups import (
    GROUP_TAGGED,
    RULE_TAGGED,
    _described,
    _has_pair,
    _mysql_permission,
    _units,
    group_name as lambda_group_name,
)

NAME = "proxy"
AVAILABLE_TIMEOUT = 30 * 60  # creation: AWS says "can take several minutes"; seen up to about 15
TARGET_TIMEOUT = 15 * 60
DELETE_TIMEOUT = 30 * 60
ENI_RELEASE_TIMEOUT = 45 * 60  # the proxy's network interfaces outlive it, as a VPC function's do
CONNECT_POLICY = "rds-db-connect"


def proxy_name(stack: str) -> str:
    return f"{stack}-proxy"


def role_name(stack: str) -> str:
    return f"{stack}-proxy"


def group_name(stack: str) -> str:
    return f"{stack}-proxy"


def enabled(config: Config) -> bool:
    return config.database.proxy


def to_database_description(stack: str) -> str:
    return f"rds-edge-api {stack}: RDS Proxy to MySQL"


def to_proxy_description(stack: str) -> str:
    """The function's outbound rule to the proxy (security_groups keeps it, by this description)."""
    return f"rds-edge-api {stack}: Lambda to RDS Proxy"


def trust_policy(account_id: str) -> dict:
    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "rds.amazonaws.com"},
                           "Action": "sts:AssumeRole",
                           "Condition": {"StringEquals": {"aws:SourceAccount": account_id}}}]}


def resource_id(proxy_arn: str) -> str:
    """The proxy's resource id (prx-...), what rds-db:connect names for connections through it."""
    return proxy_arn.rsplit(":", 1)[-1]


def proxy_connect_arn(ctx: Context, proxy_arn: str) -> str:
    return (f"arn:{partition(ctx.region)}:rds-db:{ctx.region}:{ctx.account_id}:dbuser:"
            f"{resource_id(proxy_arn)}/{ctx.config.database.user}")


def _connect_document(resource: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "rds-db:connect",
                                                    "Resource": resource}]}


# --- finding ------------------------------------------------------------------

def find(ctx: Context) -> dict | None:
    found = or_none(ctx.client("rds").describe_db_proxies, DB_PROXY_NOT_FOUND_FAULT, DBProxyName=proxy_name(ctx.stack))
    return next(iter((found or {}).get("DBProxies", [])), None)


def _tags(ctx: Context, proxy: dict) -> list[dict]:
    return ctx.client("rds").list_tags_for_resource(ResourceName=proxy["DBProxyArn"])["TagList"]


def _find_role(ctx: Context) -> dict | None:
    found = or_none(ctx.client("iam").get_role, NO_SUCH_ENTITY, RoleName=role_name(ctx.stack))
    return found and found["Role"]


def _groups(ctx: Context) -> list[dict]:
    return ctx.client("ec2").describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [group_name(ctx.stack)]},
        {"Name": "tag:stack", "Values": [ctx.stack]}])["SecurityGroups"]


def _group(ctx: Context, group_id: str) -> dict:
    return ctx.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]


def _target_ok(db: database.Database, instance_id: str, target: dict) -> bool:
    if db.cluster_id:
        return target.get("TrackedClusterId") == db.cluster_id or target.get("RdsResourceId") == db.cluster_id
    return target.get("Type") == "RDS_INSTANCE" and target.get("RdsResourceId") == instance_id


# --- ensure -------------------------------------------------------------------

def ensure(ctx: Context) -> None:
    if not enabled(ctx.config):
        destroy(ctx)
        return
    db = database.lookup(ctx)
    role_arn = _ensure_role(ctx, db)
    group_id = _ensure_group(ctx, db)
    proxy = _ensure_proxy(ctx, db, role_arn, group_id)
    if proxy is None:  # a plan: nothing made
        ctx.state.put(NAME, {"name": proxy_name(ctx.stack), "endpoint": UNKNOWN, "resource_id": UNKNOWN})
        _ensure_function_connect(ctx, UNKNOWN)
        return
    _ensure_target(ctx, db, proxy)
    _ensure_function_connect(ctx, proxy_connect_arn(ctx, proxy["DBProxyArn"]))
    ctx.state.put(NAME, {"name": proxy["DBProxyName"], "arn": proxy["DBProxyArn"], "endpoint": proxy["Endpoint"],
                         "resource_id": resource_id(proxy["DBProxyArn"]), "group_id": group_id,
                         "role_arn": role_arn})
    ctx.outputs["RDS Proxy"] = proxy["Endpoint"]


def _ensure_role(ctx: Context, db: database.Database) -> str:
    iam, name = ctx.client("iam"), role_name(ctx.stack)
    trust = trust_policy(ctx.account_id)
    role = _find_role(ctx)
    ceiling = boundary.arn(partition(ctx.region), ctx.account_id)  # made by iam_role, which this needs
    if role is None:
        arn = boundary.create_role(ctx, name, "assumed by RDS Proxy", trust, ceiling,
                                   f"rds-edge-api stack {ctx.stack}: RDS Proxy's role",
                                   find=lambda: (found := _find_role(ctx)) and {"Role": found})
        current = None
    else:
        arn = role["Arn"]
        tags = role.get("Tags") or iam.list_role_tags(RoleName=name)["Tags"]
        if not is_ours(tags, ctx.stack):
            raise DeployError(f"IAM role {name} exists and is not tagged as this stack's ({as_dict(tags)}); "
                              "remove or rename it")
        boundary.ensure_on(ctx, role, ceiling)
        boundary.keep_trust(ctx, role, trust)
        found = or_none(iam.get_role_policy, NO_SUCH_ENTITY, RoleName=name, PolicyName=CONNECT_POLICY)
        current = found and found["PolicyDocument"]
        if isinstance(current, str):
            current = json.loads(current)
    wanted = _connect_document(database.connect_arn(ctx, db, partition(ctx.region)))
    if current != wanted:
        ctx.change("create" if current is None else "update",
                   f"inline policy {CONNECT_POLICY} of {name}: rds-db:connect as {ctx.config.database.user} "
                   f"on the instance", iam.put_role_policy, RoleName=name, PolicyName=CONNECT_POLICY,
                   PolicyDocument=json.dumps(wanted))
    return arn


def _ensure_group(ctx: Context, db: database.Database) -> str:
    """The proxy's group (in from the function's, out to the database's) and the two rules it adds elsewhere."""
    ec2, name = ctx.client("ec2"), group_name(ctx.stack)
    lambda_group = ctx.state.get("security_groups").get("lambda_group_id", UNKNOWN)
    if lambda_group == UNKNOWN and not ctx.planning:
        raise DeployError("security_groups: the function's group is unknown; run deploy again")
    group = next((g for g in _groups(ctx) if g.get("VpcId") == db.vpc_id), None)
    if group is None:
        created = ctx.change(
            "create", f"security group {name} in {db.vpc_id}", ec2.create_security_group, GroupName=name,
            VpcId=db.vpc_id, Description=f"rds-edge-api {ctx.stack}: RDS Proxy, MySQL from the function only",
            TagSpecifications=[{"ResourceType": "security-group", "Tags": ctx.tag_list}],
            find=lambda: next((g for g in _groups(ctx) if g.get("VpcId") == db.vpc_id), None))
        if created is None:
            return UNKNOWN
        group = _described(ctx, created["GroupId"])  # waits out EC2's InvalidGroup.NotFound for a new group
    group_id = group["GroupId"]
    others = [unit for p in group.get("IpPermissionsEgress", []) for unit in _units(p)
              if not _has_pair([unit], db.port, db.security_group_id)]
    if others:
        ctx.change("update", f"outbound of {name}: remove rules other than MySQL", ec2.revoke_security_group_egress,
                   GroupId=group_id, IpPermissions=others)
    if not _has_pair(group.get("IpPermissionsEgress", []), db.port, db.security_group_id):
        ctx.change("update", f"outbound of {name}: MySQL to {db.security_group_id}",
                   ec2.authorize_security_group_egress, GroupId=group_id,
                   IpPermissions=[_mysql_permission(db.port, db.security_group_id,
                                                    to_database_description(ctx.stack))])
    if not _has_pair(group.get("IpPermissions", []), db.port, lambda_group):
        ctx.change("update", f"inbound on {name}: TCP {db.port} from {lambda_group_name(ctx.stack)}",
                   ec2.authorize_security_group_ingress, GroupId=group_id,
                   IpPermissions=[_mysql_permission(db.port, lambda_group, to_proxy_description(ctx.stack))],
                   TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": ctx.tag_list}])
    if lambda_group == UNKNOWN:  # a plan where the function's group is still to be made
        return group_id
    database_group, function_group = _group(ctx, db.security_group_id), _group(ctx, lambda_group)
    if not _has_pair(database_group.get("IpPermissions", []), db.port, group_id):
        ctx.change("update", f"inbound on the database's group {db.security_group_id}: TCP {db.port} from {name}",
                   ec2.authorize_security_group_ingress, GroupId=db.security_group_id,
                   IpPermissions=[_mysql_permission(db.port, group_id, to_database_description(ctx.stack))],
                   TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": ctx.tag_list}])
    if not _has_pair(function_group.get("IpPermissionsEgress", []), db.port, group_id):
        ctx.change("update", f"outbound of {lambda_group_name(ctx.stack)}: MySQL to {name}",
                   ec2.authorize_security_group_egress, GroupId=lambda_group,
                   IpPermissions=[_mysql_permission(db.port, group_id, to_proxy_description(ctx.stack))])
    return group_id


def _role_not_ready_yet(exc: BaseException) -> bool:
    """A brand-new role takes seconds before RDS may assume it: the refusal worth waiting out."""
    return is_code(exc, INVALID_PARAMETER_VALUE, INVALID_PARAMETER_VALUE_EXCEPTION) and "role" in str(exc).lower()


def _ensure_proxy(ctx: Context, db: database.Database, role_arn: str, group_id: str) -> dict | None:
    rds, name = ctx.client("rds"), proxy_name(ctx.stack)
    proxy = find(ctx)
    if proxy is not None:
        tags = _tags(ctx, proxy)
        if not is_ours(tags, ctx.stack):
            raise DeployError(f"RDS Proxy {name} exists and is not tagged as this stack's ({as_dict(tags)}); "
                              "remove or rename it")
        if proxy.get("Status") != "available":
            return _wait_available(ctx, name)
        return proxy
    created = ctx.change(
        "create", f"RDS Proxy {name} (MySQL, IAM authentication end to end, TLS required)", waits.retry_while, ctx,
        f"IAM role {role_name(ctx.stack)} to become usable by RDS",
        lambda: rds.create_db_proxy(
            DBProxyName=name, EngineFamily="MYSQL", DefaultAuthScheme="IAM_AUTH", RoleArn=role_arn,
            VpcSubnetIds=list(db.subnet_ids), VpcSecurityGroupIds=[group_id], RequireTLS=True, Tags=ctx.tag_list),
        _role_not_ready_yet, timeout=120, interval=2, max_interval=10,
        find=lambda: (found := find(ctx)) and {"DBProxy": found})
    if created is None:
        return None
    return _wait_available(ctx, name)


def _wait_available(ctx: Context, name: str) -> dict:
    seen: dict = {}

    def available() -> bool:
        proxy = find(ctx)
        if proxy is None:
            raise DeployError(f"RDS Proxy {name} disappeared while it was being created; run deploy again")
        if proxy.get("Status") in ("incompatible-network", "insufficient-resource-limits"):
            raise DeployError(f"RDS Proxy {name} is {proxy['Status']}: see the RDS console's proxy page for why")
        seen["proxy"] = proxy
        return proxy.get("Status") == "available"
    waits.wait_until(ctx, f"RDS Proxy {name} to be available (minutes on AWS)", available,
                     timeout=AVAILABLE_TIMEOUT, interval=10)
    return seen["proxy"]


def targets(ctx: Context, name: str) -> list[dict]:
    found = or_none(ctx.client("rds").describe_db_proxy_targets, DB_PROXY_NOT_FOUND_FAULT, DBProxyName=name)
    return (found or {}).get("Targets", [])


def _ensure_target(ctx: Context, db: database.Database, proxy: dict) -> None:
    """The default target group holds the instance (Aurora: its cluster); waited for until AVAILABLE."""
    rds, name, instance_id = ctx.client("rds"), proxy["DBProxyName"], ctx.config.database.instance_id
    if not any(_target_ok(db, instance_id, t) for t in targets(ctx, name)):
        which = {"DBClusterIdentifiers": [db.cluster_id]} if db.cluster_id else {"DBInstanceIdentifiers": [instance_id]}
        registered = ctx.change(
            "update", f"register {db.cluster_id or instance_id} as the target of RDS Proxy {name}",
            lambda: rds.register_db_proxy_targets(DBProxyName=name, TargetGroupName="default", **which),
            find=lambda: {} if any(_target_ok(db, instance_id, t) for t in targets(ctx, name)) else None)
        if registered is None:
            return
    if ctx.planning:
        return

    def available() -> bool:
        mine = [t for t in targets(ctx, name) if _target_ok(db, instance_id, t)]
        health = mine[0].get("TargetHealth", {}) if mine else {}
        if health.get("State") == "UNAVAILABLE" and health.get("Reason") in ("AUTH_FAILURE", "INVALID_REPLICATION_STATE"):
            raise DeployError(f"RDS Proxy {name} cannot reach {instance_id}: {health.get('Reason')}: "
                              f"{health.get('Description', 'no description')}; the database user must be "
                              f"IDENTIFIED WITH AWSAuthenticationPlugin (docs/database.md), then run deploy again")
        return health.get("State") == "AVAILABLE"
    waits.wait_until(ctx, f"RDS Proxy {name}'s target {instance_id} to be AVAILABLE", available,
                     timeout=TARGET_TIMEOUT, interval=10)


def _ensure_function_connect(ctx: Context, resource: str) -> None:
    """The function's role may connect through the proxy only (iam_role leaves this policy to this step
    while the proxy is on)."""
    iam, name = ctx.client("iam"), ctx.state.get("iam_role").get("name", iam_role.role_name(ctx.stack))
    found = or_none(iam.get_role_policy, NO_SUCH_ENTITY, RoleName=name, PolicyName=iam_role.CONNECT_POLICY)
    current = found and found["PolicyDocument"]
    if isinstance(current, str):
        current = json.loads(current)
    wanted = _connect_document(resource)
    if current != wanted:
        ctx.change("update", f"inline policy {iam_role.CONNECT_POLICY} of {name}: rds-db:connect as "
                             f"{ctx.config.database.user} through RDS Proxy {proxy_name(ctx.stack)}",
                   iam.put_role_policy, RoleName=name, PolicyName=iam_role.CONNECT_POLICY,
                   PolicyDocument=json.dumps(wanted))


def reached_through(ctx: Context) -> tuple[bool, str]:
    """For verify: whether the function's DB_HOST is the proxy's endpoint and the proxy's target AVAILABLE."""
    name = proxy_name(ctx.stack)
    proxy = find(ctx)
    if proxy is None:
        return False, f"RDS Proxy {name}: not found ([database] proxy = true; run deploy)"
    env = ctx.client("lambda").get_function_configuration(FunctionName=f"{ctx.stack}-api").get(
        "Environment", {}).get("Variables", {})
    health = [t.get("TargetHealth", {}).get("State", "?") for t in targets(ctx, name)]
    if env.get("DB_HOST") != proxy["Endpoint"]:
        return False, f"RDS Proxy {name}: the function connects to {env.get('DB_HOST')}, not the proxy; run deploy"
    if "AVAILABLE" not in health:
        return False, f"RDS Proxy {name}: its target is {', '.join(health) or 'not registered'}, not AVAILABLE"
    return True, f"RDS Proxy {name}: the function connects through it ({proxy['Endpoint']}), its target AVAILABLE"


# --- destroy ------------------------------------------------------------------

def destroy(ctx: Context) -> None:
    """The proxy (waited out: its group is in use until it is gone), then the rules naming its group, the group
    and the role. The function's connect policy is the iam_role step's again."""
    rds, ec2, name = ctx.client("rds"), ctx.client("ec2"), proxy_name(ctx.stack)
    proxy = find(ctx)
    if proxy is not None:
        tags = _tags(ctx, proxy)
        if not is_ours(tags, ctx.stack):
            ctx.out.note(f"Leaving RDS Proxy {name}: not tagged as this stack's ({as_dict(tags)})")
        else:
            if proxy.get("Status") != "deleting":
                ctx.change("delete", f"RDS Proxy {name}", rds.delete_db_proxy, DBProxyName=name,
                           find=lambda: {} if (p := find(ctx)) is None or p.get("Status") == "deleting" else None)
            if not ctx.planning:
                waits.wait_until(ctx, f"RDS Proxy {name} to be deleted (minutes on AWS)", lambda: find(ctx) is None,
                                 timeout=DELETE_TIMEOUT, interval=10)
    for group in _groups(ctx):
        _revoke_rules_naming(ctx, group["GroupId"])
        ctx.change("delete", f"security group {group_name(ctx.stack)} ({group['GroupId']})", waits.retry_while,
                   ctx, f"RDS Proxy's network interfaces to leave security group {group['GroupId']}",
                   lambda gid=group["GroupId"]: ec2.delete_security_group(GroupId=gid),
                   lambda exc: is_code(exc, DEPENDENCY_VIOLATION),
                   timeout=ENI_RELEASE_TIMEOUT, interval=10, max_interval=30)
    _destroy_role(ctx)
    ctx.state.drop(NAME)


def _revoke_rules_naming(ctx: Context, group_id: str) -> None:
    """Our rules on the database's group (inbound) and the function's (outbound) that name the proxy's group."""
    ec2 = ctx.client("ec2")
    described = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [
        _group(ctx, group_id)["VpcId"]]}])["SecurityGroups"]
    for other in described:
        if other["GroupId"] == group_id:
            continue
        for key, revoke in (("IpPermissions", ec2.revoke_security_group_ingress),
                            ("IpPermissionsEgress", ec2.revoke_security_group_egress)):
            for permission in other.get(key, []):
                for pair in permission.get("UserIdGroupPairs", []):
                    if pair.get("GroupId") != group_id:
                        continue
                    rule = {k: permission[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in permission}
                    rule["UserIdGroupPairs"] = [{k: pair[k] for k in ("GroupId", "Description") if k in pair}]
                    ctx.change("update", f"revoke {'inbound' if key == 'IpPermissions' else 'outbound'} TCP "
                                         f"{permission.get('FromPort')} naming {group_name(ctx.stack)} on "
                                         f"{other['GroupId']}", revoke, GroupId=other["GroupId"], IpPermissions=[rule])


def _destroy_role(ctx: Context) -> None:
    iam, name = ctx.client("iam"), role_name(ctx.stack)
    role = _find_role(ctx)
    if role is None:
        return
    if not boundary.removable(ctx, role):
        return
    for inline in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        ctx.change("update", f"delete inline policy {inline} of {name}", iam.delete_role_policy, RoleName=name,
                   PolicyName=inline)
    ctx.change("delete", f"IAM role {name}", iam.delete_role, RoleName=name)


# --- the step, declared (provision/registry.py) ---------------------------------

def inventory(config: Config) -> list[str]:
    """The stack's proxies (by tag), read back with plain boto3; its role, group and rules are in the IAM and
    security group listers (by tag and rule description)."""
    rds = boto3.client("rds", region_name=config.stack.region)
    return [f"rds proxy {p['DBProxyName']}" for p in rds.describe_db_proxies()["DBProxies"]
            if is_ours(rds.list_tags_for_resource(ResourceName=p["DBProxyArn"])["TagList"], config.stack.name)]


def _iam_arns(names: Names, action: str) -> list[str]:
    return [names.arn("iam", "", f"role/{role_name(names.config.stack.name)}")]


BEYOND = (
    Beyond("rds", "CreateDBProxy", ("iam:PassRole", "rds:AddTagsToResource"),
           "Service Authorization Reference, Amazon RDS: CreateDBProxy depends on iam:PassRole (the proxy's role); "
           "RDS user guide, 'Tagging Amazon RDS resources': tags given at creation need rds:AddTagsToResource"),
    boundary.ROLE_TAGGED,
    GROUP_TAGGED,
    RULE_TAGGED,
)
PROXY_CREATES = ("the RDS Proxy is made and given its target only with [database] proxy = true; without it, "
                 "the proxy step only finds and deletes one")
ONLY_WITH_PROXY = {call: OnlyWhen(lambda cfg: cfg.database.proxy, PROXY_CREATES)
                   for call in (("rds", "CreateDBProxy"), ("rds", "RegisterDBProxyTargets"))}


def leaves(config: Config, account: Account) -> list[str]:
    """With [database] proxy: the proxy, its role and group, the group's rule from the function's and its rule
    on the database's group."""
    if not enabled(config):
        return []
    stack, group = config.stack.name, group_name(config.stack.name)
    return [f"rds proxy {proxy_name(stack)}", f"role {role_name(stack)}", f"security group {group}",
            f"rule on {group} from {lambda_group_name(stack)}", f"rule on {account.database_group} from {group}"]


STEP = Step(NAME, "RDS Proxy", ensure, destroy, needs=("iam_role", "security_groups"), loose=("iam_role",),
            inventory=(inventory,), leaves=leaves, arns={"iam": _iam_arns},
            creates=("CreateRole", "CreateSecurityGroup", "CreateDBProxy", "RegisterDBProxyTargets"),
            removes=("DeleteDBProxy", "DeleteSecurityGroup", "DeleteRole"), beyond=BEYOND, only_when=ONLY_WITH_PROXY)
