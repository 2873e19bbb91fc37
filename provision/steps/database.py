"""The operator's RDS instance: looked up, never changed (its endpoint, VPC, subnets, security group)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import DeployError, is_code


@dataclass(frozen=True)
class Database:
    endpoint: str
    port: int
    vpc_id: str
    subnet_ids: tuple[str, ...]
    security_group_id: str


def lookup(ctx) -> Database:
    """Describe the instance once per run; a missing or unsuitable one stops the run with what to fix."""
    if "database" in ctx.lookups:
        return ctx.lookups["database"]
    instance_id = ctx.config.database.instance_id
    try:
        found = ctx.client("rds").describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"][0]
    except Exception as exc:
        if is_code(exc, "DBInstanceNotFound", "DBInstanceNotFoundFault"):
            raise DeployError(f"database.instance_id: no RDS instance {instance_id!r} in {ctx.region}; "
                              "check the id and [stack] region") from None
        raise
    if "mysql" not in found.get("Engine", "") and "mariadb" not in found.get("Engine", ""):
        raise DeployError(f"database.instance_id: {instance_id!r} runs {found.get('Engine')}, not MySQL")
    groups = [g["VpcSecurityGroupId"] for g in found.get("VpcSecurityGroups", [])]
    endpoint = found.get("Endpoint") or {}
    if not groups or not endpoint.get("Address"):
        raise DeployError(f"database.instance_id: {instance_id!r} has no endpoint or security group yet "
                          f"(status {found.get('DBInstanceStatus')}); re-run once it is available")
    subnet_group = found["DBSubnetGroup"]
    database = Database(
        endpoint=endpoint["Address"], port=int(endpoint.get("Port", 3306)), vpc_id=subnet_group["VpcId"],
        subnet_ids=tuple(sorted(s["SubnetIdentifier"] for s in subnet_group["Subnets"])),
        security_group_id=groups[0])
    ctx.lookups["database"] = database
    return database
