"""The network path Lambda -> MySQL, and nothing else.

The function gets its own security group in the database's VPC: no inbound
rules, and outbound only MySQL to the database's group. The database's group
belongs to the operator: we add one inbound rule (MySQL from our group) and,
at teardown, revoke exactly that rule; the group itself is never deleted.
"""
from __future__ import annotations

from dataclasses import dataclass

import boto3

from .. import waits
from ..aws import database
from ..aws_errors import DEPENDENCY_VIOLATION, INVALID_GROUP_NOT_FOUND
from ..config import Config
from ..context import UNKNOWN, Context
from ..errors import DeployError, is_code
from ..registry import Account, Beyond, Step
from ..tags import is_ours
from ..together import together

NAME = "security_groups"
# A VPC function's network interfaces outlive it by minutes, up to tens of minutes.
ENI_RELEASE_TIMEOUT = 45 * 60
# A group just made is not yet seen by every call that names it: "InvalidGroup.NotFound" (EC2 developer guide,
# "Eventual consistency in the Amazon EC2 API": retry with exponential backoff, "starting with a couple of
# seconds of wait time, and increasing gradually up to a few minutes").
NEW_GROUP_TIMEOUT = 5 * 60


def group_name(stack: str) -> str:
    return f"{stack}-lambda"


def rule_description(stack: str) -> str:
    """Marks our rule on the operator's group; repeated when revoking (moto matches it, AWS ignores it)."""
    return f"rds-edge-api {stack}: Lambda to MySQL"


def _groups(ctx: Context, vpc_id: str | None) -> list[dict]:
    """Our groups (by name and stack tag), in that VPC or, without one, in any."""
    filters = [{"Name": "group-name", "Values": [group_name(ctx.stack)]},
               {"Name": "tag:stack", "Values": [ctx.stack]}]
    if vpc_id:
        filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    return ctx.client("ec2").describe_security_groups(Filters=filters)["SecurityGroups"]


def _find_group(ctx: Context, vpc_id: str | None) -> dict | None:
    return next(iter(_groups(ctx, vpc_id)), None)


def _mysql_permission(port: int, group_id: str, description: str) -> dict:
    return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
            "UserIdGroupPairs": [{"GroupId": group_id, "Description": description}]}


def _has_pair(permissions: list[dict], port: int, group_id: str) -> bool:
    return any(p.get("IpProtocol") == "tcp" and p.get("FromPort") == port and p.get("ToPort") == port
               and any(pair.get("GroupId") == group_id for pair in p.get("UserIdGroupPairs", []))
               for p in permissions)


@dataclass(frozen=True)
class Seen:
    """The database (its VPC, port, group), its group as EC2 answered, and our groups in any VPC."""
    database: database.Database
    database_group: dict
    groups: list[dict]


def _database_group(ctx: Context) -> tuple[database.Database, dict]:
    db = database.lookup(ctx)
    return db, ctx.client("ec2").describe_security_groups(GroupIds=[db.security_group_id])["SecurityGroups"][0]


def observe(ctx: Context) -> Seen:
    """The database and its group, and ours (found by name and tag in any VPC), read at once."""
    (db, database_group), groups = together(ctx, _database_group, lambda c: _groups(c, None))
    return Seen(db, database_group, groups)


def ensure(ctx: Context, seen: Seen | None = None) -> None:
    seen = seen or observe(ctx)
    ec2, db = ctx.client("ec2"), seen.database
    name, description = group_name(ctx.stack), rule_description(ctx.stack)
    group = next((g for g in seen.groups if g.get("VpcId") == db.vpc_id), None)
    if group is None:
        created = ctx.change(
            "create", f"security group {name} in {db.vpc_id}", ec2.create_security_group, GroupName=name,
            VpcId=db.vpc_id, Description=f"rds-edge-api {ctx.stack}: Lambda function, no inbound",
            TagSpecifications=[{"ResourceType": "security-group", "Tags": ctx.tag_list}],
            find=lambda: _find_group(ctx, db.vpc_id))
        if created is None:
            ctx.change("update", f"outbound of {name}: MySQL to {db.security_group_id} only", lambda: None)
            ctx.change("update", f"inbound on the database's group {db.security_group_id}: "
                                 f"TCP {db.port} from {name}", lambda: None)
            ctx.state.put(NAME, {"lambda_group_id": UNKNOWN, "database_group_id": db.security_group_id})
            return
        group_id = created["GroupId"]
        # A group made just now has no member (the function is made once this step is done), so the
        # database's rule from it opens nothing yet: it goes out beside the outbound rules.
        together(ctx, lambda c: _ensure_egress(c, _described(c, group_id), db, description, new=True),
                 lambda c: _ensure_ingress(c, seen.database_group, db, group_id, new=True))
    else:
        group_id = group["GroupId"]
        _ensure_egress(ctx, group, db, description)  # outbound narrowed first: a member may be running
        _ensure_ingress(ctx, seen.database_group, db, group_id)
    ctx.state.put(NAME, {"lambda_group_id": group_id, "database_group_id": db.security_group_id,
                         "port": db.port})
    ctx.outputs["Lambda security group"] = group_id


def _once_seen(ctx: Context, group_id: str, new: bool, call, /, **kwargs):
    """``call(**kwargs)``, a call naming our group; for a group made in this run, retried while EC2 does not
    see it yet (``NEW_GROUP_TIMEOUT``, said on the spinner)."""
    if not new:
        return call(**kwargs)
    return waits.retry_while(ctx, f"EC2 to show the new security group {group_id} (eventual consistency)",
                             lambda: call(**kwargs), lambda exc: is_code(exc, INVALID_GROUP_NOT_FOUND),
                             timeout=NEW_GROUP_TIMEOUT, interval=2, max_interval=30)


def _described(ctx: Context, group_id: str) -> dict:
    """A new group as EC2 made it: with the default outbound rule(s) that ``_ensure_egress`` revokes."""
    return _once_seen(ctx, group_id, True, ctx.client("ec2").describe_security_groups,
                      GroupIds=[group_id])["SecurityGroups"][0]


def _ensure_ingress(ctx: Context, database_group: dict, db, group_id: str, new: bool = False) -> None:
    """MySQL from our group on the database's group, unless there already."""
    if not _has_pair(database_group.get("IpPermissions", []), db.port, group_id):
        ctx.change("update", f"inbound on the database's group {db.security_group_id}: TCP {db.port} from "
                             f"{group_name(ctx.stack)}",
                   _once_seen, ctx, group_id, new, ctx.client("ec2").authorize_security_group_ingress,
                   GroupId=db.security_group_id,
                   IpPermissions=[_mysql_permission(db.port, group_id, rule_description(ctx.stack))],
                   TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": ctx.tag_list}])


def _ensure_egress(ctx: Context, group: dict, db, description: str, new: bool = False) -> None:
    """Outbound: exactly MySQL to the database's group (the default allow-all rule is revoked)."""
    ec2, group_id = ctx.client("ec2"), group["GroupId"]
    wanted = _mysql_permission(db.port, db.security_group_id, description)
    others = [unit for p in group.get("IpPermissionsEgress", []) for unit in _units(p)
              if not (_has_pair([unit], db.port, db.security_group_id) or _to_proxy(ctx, unit))]
    if others:
        ctx.change("update", f"outbound of {group_name(ctx.stack)}: remove rules other than MySQL",
                   _once_seen, ctx, group_id, new, ec2.revoke_security_group_egress, GroupId=group_id,
                   IpPermissions=others)
    if not _has_pair(group.get("IpPermissionsEgress", []), db.port, db.security_group_id):
        ctx.change("update", f"outbound of {group_name(ctx.stack)}: MySQL to {db.security_group_id}",
                   _once_seen, ctx, group_id, new, ec2.authorize_security_group_egress, GroupId=group_id,
                   IpPermissions=[wanted])


def _units(permission: dict) -> list[dict]:
    """A described permission as one permission per group, range or prefix list: EC2 answers the rules of one
    protocol and port together, and one of them may be wanted while another is not."""
    base = {k: permission[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in permission}
    return [{**base, key: [item]} for key in ("UserIdGroupPairs", "IpRanges", "Ipv6Ranges", "PrefixListIds")
            for item in permission.get(key, [])]


def _to_proxy(ctx: Context, unit: dict) -> bool:
    """The outbound rule to the RDS Proxy's group: the proxy step's (steps/proxy.py), kept here, by its description."""
    return any(pair.get("Description") == f"rds-edge-api {ctx.stack}: Lambda to RDS Proxy"
               for pair in unit.get("UserIdGroupPairs", []))


def destroy(ctx: Context) -> None:
    """Our rule on the database's group, then every group of ours, in whichever VPC (the database may have moved)."""
    groups, database_group = together(ctx, lambda c: _groups(c, None), _database_group_if_any)
    _revoke_rule(ctx, groups[0]["GroupId"] if groups else None, database_group)
    for group in groups:  # after the rule: EC2 refuses to delete a group another group's rule names
        if is_ours(group.get("Tags"), ctx.stack):
            _delete_group(ctx, group)
        else:
            ctx.out.note(f"Leaving security group {group['GroupId']}: not tagged as this stack's")


def _database_group_if_any(ctx: Context) -> dict | None:
    try:
        return _database_group(ctx)[1]
    except DeployError:
        return None  # the database is gone, and our rule with it


def _delete_group(ctx: Context, group: dict) -> None:
    ec2 = ctx.client("ec2")
    ctx.change("delete", f"security group {group_name(ctx.stack)} ({group['GroupId']})", waits.retry_while,
               ctx, f"the deleted function's network interfaces to leave security group {group['GroupId']}",
               lambda: ec2.delete_security_group(GroupId=group["GroupId"]),
               lambda exc: is_code(exc, DEPENDENCY_VIOLATION),
               timeout=ENI_RELEASE_TIMEOUT, interval=10, max_interval=30)


def _revoke_rule(ctx: Context, lambda_group_id: str | None, database_group: dict | None) -> None:
    """Revoke our inbound rule on the database's group: found by our group id or by its description."""
    if database_group is None:
        return
    ec2, description, group_id = ctx.client("ec2"), rule_description(ctx.stack), database_group["GroupId"]
    for permission in database_group.get("IpPermissions", []):
        for pair in permission.get("UserIdGroupPairs", []):
            if pair.get("GroupId") == lambda_group_id or pair.get("Description") == description:
                revoke = {k: permission[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in permission}
                revoke["UserIdGroupPairs"] = [{k: pair[k] for k in ("GroupId", "Description") if k in pair}]
                ctx.change("update", f"revoke inbound TCP {permission.get('FromPort')} from {pair['GroupId']} "
                                     f"on the database's group {group_id}",
                           ec2.revoke_security_group_ingress, GroupId=group_id, IpPermissions=[revoke])


# --- the step, declared (provision/registry.py) ---------------------------------


def inventory(config: Config) -> list[str]:
    """The stack's security groups (by tag) and its inbound rules, on its own groups and the database's, from
    one of its groups (by description), read back with plain boto3 in every region the stack uses."""
    found = []
    for region in config.regions:
        groups = boto3.client("ec2", region_name=region).describe_security_groups()["SecurityGroups"]
        names = {group["GroupId"]: group["GroupName"] for group in groups}
        for group in groups:
            if is_ours(group.get("Tags"), config.stack.name):
                found.append(f"security group {group['GroupName']}")
            found += [f"rule on {group['GroupName']} from {names.get(pair['GroupId'], pair['GroupId'])}"
                      for permission in group.get("IpPermissions", []) for pair in permission.get("UserIdGroupPairs", [])
                      if pair.get("Description", "").startswith(f"rds-edge-api {config.stack.name}:")]
    return found


GROUP_TAGGED = Beyond("ec2", "CreateSecurityGroup", ("ec2:CreateTags",),
                      "EC2 user guide, 'Grant permission to tag Amazon EC2 resources during creation': CreateTags with "
                      "ec2:CreateAction = CreateSecurityGroup; Service Authorization Reference: dependent action")
RULE_TAGGED = Beyond("ec2", "AuthorizeSecurityGroupIngress", ("ec2:CreateTags",),
                     "Service Authorization Reference, Amazon EC2, AuthorizeSecurityGroupIngress: 'Policies using the "
                     "security-group-rule resource-level permission are only enforced when the API request includes "
                     "TagSpecifications' (the toolkit tags its rule): the action and ec2:CreateTags on "
                     "security-group-rule/*",
                     resources={"ec2:AuthorizeSecurityGroupIngress": ("security-group", "security-group-rule"),
                                "ec2:CreateTags": ("security-group-rule",)})


def leaves(config: Config, account: Account) -> list[str]:
    """The function's group and its rule on the database's group."""
    group = group_name(config.stack.name)
    return [f"security group {group}", f"rule on {account.database_group} from {group}"]


STEP = Step(NAME, "Security groups", ensure, destroy, observe=observe,
            inventory=(inventory,), leaves=leaves, creates=("CreateSecurityGroup", "AuthorizeSecurityGroupIngress"),
            removes=("DeleteSecurityGroup",), beyond=(GROUP_TAGGED, RULE_TAGGED))
