"""Aurora MySQL (issue 16): IAM database auth is the cluster's, and rds-db:connect names the cluster's
DbClusterResourceId ("arn:aws:rds-db:region:account-id:dbuser:DbClusterResourceId/db-user-name", Aurora
user guide, "Creating and using an IAM policy for IAM database access"); for Aurora "mapping AWS IAM
accounts to database accounts is managed by the DB cluster" (RDS API reference, CreateDBInstance).

No rule here: the check AWS makes is at sign-in, when RDS takes the token, outside any API call moto
could answer. The test reads the policy back and compares it with the resource id RDS reports.
"""
import io
import json

import boto3
import pytest
from rich.console import Console

from provision import cli, config as config_module
from provision.aws import database
from provision.output import Output
from provision.steps import iam_role
from tests.support import quiet_context

REGION = "eu-west-1"
IAM = ({"database": {"auth": "iam"}}, ("database.password_env",))


def seed_aurora(cluster_iam: bool) -> dict:
    """The operator's Aurora MySQL cluster 'orders' with its instance 'orders-db' (the config's instance_id).

    moto leaves an Aurora instance's DBSubnetGroup out unless it is given, where AWS reports the
    cluster's: the instance is given the same group.
    """
    ec2, rds = boto3.client("ec2", region_name=REGION), boto3.client("rds", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24",
                                 AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
               for i, zone in enumerate("ab", start=1)]
    group = ec2.create_security_group(GroupName="orders-db", VpcId=vpc, Description="db")["GroupId"]
    rds.create_db_subnet_group(DBSubnetGroupName="orders-subnets", DBSubnetGroupDescription="db",
                               SubnetIds=subnets)
    cluster = rds.create_db_cluster(
        DBClusterIdentifier="orders", Engine="aurora-mysql", MasterUsername="admin",
        MasterUserPassword="emulator-only-password", DatabaseName="shop", DBSubnetGroupName="orders-subnets",
        VpcSecurityGroupIds=[group], EnableIAMDatabaseAuthentication=cluster_iam)["DBCluster"]
    instance = rds.create_db_instance(DBInstanceIdentifier="orders-db", DBInstanceClass="db.r6g.large",
                                      Engine="aurora-mysql", DBClusterIdentifier="orders",
                                      DBSubnetGroupName="orders-subnets")["DBInstance"]
    return {"cluster_resource_id": cluster["DbClusterResourceId"], "instance_resource_id": instance["DbiResourceId"],
            "group": group, "vpc": vpc}


@pytest.mark.iam
def test_connect_policy_names_the_clusters_resource_id(aws, write_config):
    seeded = seed_aurora(cluster_iam=True)
    cfg = config_module.load(write_config(*IAM))
    ctx = quiet_context(cfg)
    database.preflight(ctx)
    iam_role.ensure(ctx)

    document = boto3.client("iam").get_role_policy(RoleName="demo-fn", PolicyName=iam_role.CONNECT_POLICY)
    document = document["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    [statement] = document["Statement"]
    assert statement["Action"] == "rds-db:connect"
    assert statement["Resource"] == (f"arn:aws:rds-db:{REGION}:123456789012:dbuser:"
                                     f"{seeded['cluster_resource_id']}/api_reader")
    assert seeded["cluster_resource_id"].startswith("cluster-")
    assert seeded["instance_resource_id"] not in statement["Resource"]

    db = database.lookup(ctx)
    assert (db.cluster_id, db.vpc_id, db.security_group_id) == ("orders", seeded["vpc"], seeded["group"])
    assert db.endpoint.startswith("orders-db.")  # the named instance's endpoint, as for RDS MySQL


@pytest.mark.parametrize("plan", [False, True], ids=["deploy", "plan"])
def test_aurora_without_cluster_iam_auth_stops_before_any_change(aws, write_config, capsys, plan):
    seed_aurora(cluster_iam=False)
    session = boto3.Session()
    calls = []
    session.events.register("before-call.*.*", lambda model, **kw: calls.append(model.name))
    out = Output(Console(file=io.StringIO(), width=300, force_terminal=False))
    code = cli.main(["deploy", "--config", str(write_config(*IAM)), *(["--plan"] if plan else [])],
                    session=session, out=out)
    assert code == 1
    said = [line for line in (out.console.file.getvalue() + capsys.readouterr().err).splitlines()
            if "IAM database authentication" in line]
    assert len(said) == 1
    assert "Aurora DB cluster 'orders' (of instance 'orders-db')" in said[0]
    assert ("aws rds modify-db-cluster --db-cluster-identifier orders --enable-iam-database-authentication "
            "--apply-immediately") in said[0]
    assert "DescribeDBClusters" in calls
    assert [c for c in calls if not c.startswith(("Describe", "Get", "List"))] == []
    assert boto3.client("iam").list_roles()["Roles"] == []


def test_password_auth_on_aurora_needs_no_cluster_iam(aws, write_config):
    seed_aurora(cluster_iam=False)
    ctx = quiet_context(config_module.load(write_config()))
    database.preflight(ctx)
    assert database.lookup(ctx).cluster_id == "orders"
