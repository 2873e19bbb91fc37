"""The operator's RDS instance: looked up, never changed (its endpoint, VPC, subnets, security group).

auth = "iam" needs IAM database authentication enabled on the instance; that
is the operator's change to make (it touches their instance), so deploy
checks it before any changing call and says how, rather than doing it.
"""
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
    resource_id: str = ""          # DbiResourceId: names the instance in rds-db:connect ARNs
    iam_auth: bool = False         # IAMDatabaseAuthenticationEnabled


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
        security_group_id=groups[0], resource_id=found.get("DbiResourceId", ""),
        iam_auth=bool(found.get("IAMDatabaseAuthenticationEnabled")))
    ctx.lookups["database"] = database
    return database


def preflight(ctx) -> None:
    """Before any step: stop if auth = "iam" cannot work on this instance; say where a password goes."""
    cfg = ctx.config.database
    if cfg.auth == "password":
        ctx.out.note(f"auth = \"password\": the database password is read from ${cfg.password.env} and stored in "
                     "the function's environment (DB_PASSWORD), readable by anyone allowed "
                     "lambda:GetFunctionConfiguration; auth = \"iam\" keeps it out of the function")
        return
    db = lookup(ctx)
    if not db.iam_auth:
        raise DeployError(
            f"database.auth: RDS instance {cfg.instance_id!r} does not have IAM database authentication "
            f"enabled; enable it with: aws rds modify-db-instance --db-instance-identifier {cfg.instance_id} "
            "--enable-iam-database-authentication --apply-immediately")
    if not db.resource_id:
        raise DeployError(f"database.auth: RDS instance {cfg.instance_id!r} reports no DbiResourceId")


def connect_arn(ctx, db: Database, partition: str) -> str:
    """The one database user the function may connect as with a token (rds-db:connect)."""
    return (f"arn:{partition}:rds-db:{ctx.region}:{ctx.account_id}:dbuser:{db.resource_id}/"
            f"{ctx.config.database.user}")
