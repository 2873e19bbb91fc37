"""The operator's RDS instance: looked up, never changed (its endpoint, VPC, subnets, security group).

auth = "iam" needs IAM database authentication enabled on the instance; that
is the operator's change to make (it touches their instance), so deploy
checks it before any changing call and says how, rather than doing it.

Aurora MySQL is supported: an Aurora instance belongs to a DB cluster, and
for Aurora "mapping AWS IAM accounts to database accounts is managed by the
DB cluster" (RDS API reference, CreateDBInstance). So with auth = "iam" the
switch is read from the cluster, and rds-db:connect names the cluster's
DbClusterResourceId ("arn:aws:rds-db:region:account-id:dbuser:
DbClusterResourceId/db-user-name", Aurora user guide, "Creating and using an
IAM policy for IAM database access"), never the instance's DbiResourceId:
a policy naming the instance lets no token in. The function still connects
to the named instance's endpoint.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from ..aws_errors import DB_CLUSTER_NOT_FOUND, DB_CLUSTER_NOT_FOUND_FAULT, DB_INSTANCE_NOT_FOUND, DB_INSTANCE_NOT_FOUND_FAULT
from ..context import Context
from ..errors import DeployError, is_code


@dataclass(frozen=True)
class Database:
    endpoint: str
    port: int
    vpc_id: str
    subnet_ids: tuple[str, ...]
    security_group_id: str
    resource_id: str = ""          # what rds-db:connect ARNs name: DbiResourceId, or Aurora's DbClusterResourceId
    iam_auth: bool = False         # IAMDatabaseAuthenticationEnabled (the cluster's, for Aurora)
    cluster_id: str = ""           # the Aurora DB cluster the instance belongs to; "" for RDS MySQL/MariaDB
    instance_class: str = ""       # db.t4g.micro...: what the connection limit follows (provision/capacity.py)
    engine: str = ""               # mysql, mariadb, aurora-mysql: what RDS Proxy supports follows it
    engine_version: str = ""


_LOOKING = threading.Lock()  # the steps' observes look at once: one describes, the others take its answer


def lookup(ctx: Context) -> Database:
    """Describe the instance once per run; a missing or unsuitable one stops the run with what to fix."""
    with _LOOKING:
        if "database" not in ctx.lookups:
            ctx.lookups["database"] = _describe(ctx)
        return ctx.lookups["database"]


def _describe(ctx: Context) -> Database:
    instance_id = ctx.config.database.instance_id
    try:
        found = ctx.client("rds").describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"][0]
    except Exception as exc:
        if is_code(exc, DB_INSTANCE_NOT_FOUND, DB_INSTANCE_NOT_FOUND_FAULT):
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
    resource_id, iam_auth = found.get("DbiResourceId", ""), bool(found.get("IAMDatabaseAuthenticationEnabled"))
    cluster_id = found.get("DBClusterIdentifier") or ""
    if cluster_id:
        cluster = _cluster(ctx, instance_id, cluster_id)
        resource_id = cluster.get("DbClusterResourceId", "")
        iam_auth = bool(cluster.get("IAMDatabaseAuthenticationEnabled"))
    return Database(
        endpoint=endpoint["Address"], port=int(endpoint.get("Port", 3306)), vpc_id=subnet_group["VpcId"],
        subnet_ids=tuple(sorted(s["SubnetIdentifier"] for s in subnet_group["Subnets"])),
        security_group_id=groups[0], resource_id=resource_id, iam_auth=iam_auth, cluster_id=cluster_id,
        instance_class=found.get("DBInstanceClass", ""), engine=found.get("Engine", ""),
        engine_version=found.get("EngineVersion", ""))


def _cluster(ctx: Context, instance_id: str, cluster_id: str) -> dict:
    """The Aurora cluster of the instance: it holds the IAM switch and the resource id rds-db:connect names."""
    try:
        return ctx.client("rds").describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]
    except Exception as exc:
        if is_code(exc, DB_CLUSTER_NOT_FOUND_FAULT, DB_CLUSTER_NOT_FOUND):
            raise DeployError(f"database.instance_id: {instance_id!r} names DB cluster {cluster_id!r}, which "
                              f"{ctx.region} does not have; check the instance") from None
        raise


def _enable_iam_command(cfg, db: Database) -> str:
    if db.cluster_id:
        return (f"aws rds modify-db-cluster --db-cluster-identifier {db.cluster_id} "
                "--enable-iam-database-authentication --apply-immediately")
    return (f"aws rds modify-db-instance --db-instance-identifier {cfg.instance_id} "
            "--enable-iam-database-authentication --apply-immediately")


def preflight(ctx: Context) -> None:
    """Before any step: stop if auth = "iam" cannot work on this instance; say where a password goes."""
    cfg = ctx.config.database
    if cfg.auth == "password" and cfg.password is not None:  # the config check requires one with password
        ctx.out.note(f"auth = \"password\": the database password is read from ${cfg.password.env} and stored in "
                     "the function's environment (DB_PASSWORD), readable by anyone allowed "
                     "lambda:GetFunctionConfiguration; auth = \"iam\" keeps it out of the function")
        return
    db = lookup(ctx)
    holder = f"Aurora DB cluster {db.cluster_id!r} (of instance {cfg.instance_id!r})" if db.cluster_id \
        else f"RDS instance {cfg.instance_id!r}"
    if not db.iam_auth:
        raise DeployError(f"database.auth: {holder} does not have IAM database authentication enabled; "
                          f"enable it with: {_enable_iam_command(cfg, db)}")
    if not db.resource_id:
        raise DeployError(f"database.auth: {holder} reports no "
                          f"{'DbClusterResourceId' if db.cluster_id else 'DbiResourceId'}")


def connect_arn(ctx: Context, db: Database, partition: str) -> str:
    """The one database user the function may connect as with a token (rds-db:connect)."""
    return (f"arn:{partition}:rds-db:{ctx.region}:{ctx.account_id}:dbuser:{db.resource_id}/"
            f"{ctx.config.database.user}")
