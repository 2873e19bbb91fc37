import json

import boto3
import pytest

from provision.steps import iam_role
from tests.support import changing_ops, printed, quiet_context

pytestmark = pytest.mark.iam

POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
ACCOUNT = "123456789012"  # moto's account


def read_role():
    iam = boto3.client("iam", region_name="eu-west-1")
    role = iam.get_role(RoleName="demo-fn")["Role"]
    attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName="demo-fn")["AttachedPolicies"]]
    return role, attached


def test_ensure_creates_role_trusted_by_lambda_only(cfg):
    ctx = quiet_context(cfg)
    iam_role.ensure(ctx)
    role, attached = read_role()
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"] == [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                   "Action": "sts:AssumeRole",
                                   "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}}]
    assert attached == [POLICY]
    assert {t["Key"]: t["Value"] for t in role["Tags"]} == {"stack": "demo", "managed-by": "rds-edge-api"}
    assert ctx.state.get("iam_role")["arn"] == role["Arn"]


def test_second_ensure_changes_nothing(cfg):
    iam_role.ensure(quiet_context(cfg))
    again = quiet_context(cfg)
    iam_role.ensure(again)
    assert changing_ops(again) == []
    assert again.report.changes == []


def test_detached_policy_is_reattached_and_nothing_else(cfg):
    iam_role.ensure(quiet_context(cfg))
    boto3.client("iam").detach_role_policy(RoleName="demo-fn", PolicyArn=POLICY)
    again = quiet_context(cfg)
    iam_role.ensure(again)
    assert changing_ops(again) == ["AttachRolePolicy"]
    assert read_role()[1] == [POLICY]


def test_a_trust_policy_without_the_account_condition_is_tightened(cfg):
    iam_role.ensure(quiet_context(cfg))
    loose = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
        "Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    boto3.client("iam").update_assume_role_policy(RoleName="demo-fn", PolicyDocument=json.dumps(loose))
    again = quiet_context(cfg)
    iam_role.ensure(again)
    assert changing_ops(again) == ["UpdateAssumeRolePolicy"]
    trust = read_role()[0]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_plan_announces_without_creating(cfg):
    ctx = quiet_context(cfg, planning=True)
    iam_role.ensure(ctx)
    assert [kind for kind, _ in ctx.report.changes] == ["create", "create", "update"]  # boundary, role, attach
    assert "would create IAM role demo-fn" in printed(ctx)
    assert boto3.client("iam").list_roles()["Roles"] == [] or all(
        r["RoleName"] != "demo-fn" for r in boto3.client("iam").list_roles()["Roles"])


def test_destroy_detaches_and_deletes_and_is_safe_twice(cfg):
    iam_role.ensure(quiet_context(cfg))
    iam_role.destroy(quiet_context(cfg))
    names = [r["RoleName"] for r in boto3.client("iam").list_roles()["Roles"]]
    assert "demo-fn" not in names
    twice = quiet_context(cfg)
    iam_role.destroy(twice)
    assert changing_ops(twice) == []


def test_destroy_leaves_a_role_that_is_not_ours(cfg):
    boto3.client("iam").create_role(RoleName="demo-fn",
                                    AssumeRolePolicyDocument=json.dumps(iam_role.trust_policy(ACCOUNT)))
    ctx = quiet_context(cfg)
    iam_role.destroy(ctx)
    assert changing_ops(ctx) == []
    assert "Leaving IAM role demo-fn" in printed(ctx)


IAM = ({"database": {"auth": "iam"}}, ("database.password_env",))


def connect_statements():
    iam = boto3.client("iam", region_name="eu-west-1")
    names = iam.list_role_policies(RoleName="demo-fn")["PolicyNames"]
    return {name: iam.get_role_policy(RoleName="demo-fn", PolicyName=name)["PolicyDocument"]["Statement"]
            for name in names}


def test_iam_auth_allows_rds_db_connect_for_exactly_that_user(load_seeded):
    cfg = load_seeded(*IAM)
    iam_role.ensure(quiet_context(cfg))
    instance = boto3.client("rds", region_name="eu-west-1").describe_db_instances(
        DBInstanceIdentifier="orders-db")["DBInstances"][0]
    account = boto3.client("sts").get_caller_identity()["Account"]
    assert connect_statements() == {"rds-db-connect": [{
        "Effect": "Allow", "Action": "rds-db:connect",
        "Resource": f"arn:aws:rds-db:eu-west-1:{account}:dbuser:{instance['DbiResourceId']}/api_reader"}]}
    again = quiet_context(cfg)
    iam_role.ensure(again)
    assert changing_ops(again) == []


def test_password_auth_has_no_connect_policy_and_a_switch_back_removes_it(cfg, load_seeded, write_config):
    iam_role.ensure(quiet_context(cfg))
    assert connect_statements() == {}
    from provision import config as config_module
    iam_role.ensure(quiet_context(config_module.load(write_config(*IAM))))
    assert set(connect_statements()) == {"rds-db-connect"}
    back = quiet_context(cfg)
    iam_role.ensure(back)
    assert changing_ops(back) == ["DeleteRolePolicy"]
    assert connect_statements() == {}


def test_changed_user_updates_the_connect_policy(load_seeded, write_config):
    cfg = load_seeded(*IAM)
    iam_role.ensure(quiet_context(cfg))
    from provision import config as config_module
    other = config_module.load(write_config({"database": {"auth": "iam", "user": "reporter"}}, IAM[1]))
    ctx = quiet_context(other)
    iam_role.ensure(ctx)
    assert changing_ops(ctx) == ["PutRolePolicy"]
    [statement] = connect_statements()["rds-db-connect"]
    assert statement["Resource"].endswith("/reporter")


def test_teardown_removes_the_connect_policy_with_the_role(load_seeded):
    cfg = load_seeded(*IAM)
    iam_role.ensure(quiet_context(cfg))
    ctx = quiet_context(cfg)
    iam_role.destroy(ctx)
    assert "DeleteRolePolicy" in changing_ops(ctx)
    assert "demo-fn" not in [r["RoleName"] for r in boto3.client("iam").list_roles()["Roles"]]
