"""The permissions boundary of the toolkit's roles (issue 24, escalation with auth = "iam"): every role carries
it, the operator's policy changes roles only under it and can neither remove nor rewrite it, and policy --check
says so, all read back from IAM (moto) rather than from the toolkit's report."""
import json

import boto3
import pytest

from provision.aws import apigateway_account, boundary
from provision.errors import DeployError
from provision.iam import policy
from provision.iam.caller_check import stack_network
from provision.steps import iam_role
from tests.aws_rules import made_meanwhile
from tests.support import changing_ops, quiet_context
from tests.test_policy_check import (
    ACCOUNT,
    CHECK,
    operator as operator,  # noqa: F401 (a fixture, used by name)
    run,
)

pytestmark = pytest.mark.iam

BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/rds-edge-api-role-boundary"
IAM_AUTH = {"database": {"auth": "iam"}}
WITHOUT_PASSWORD = ("database.password_env",)


def iam():
    return boto3.client("iam")


def boundary_of(role_name):
    return (iam().get_role(RoleName=role_name)["Role"].get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")


def stored_document(arn):
    found = iam().get_policy(PolicyArn=arn)["Policy"]
    return boundary.current_document(iam(), found), found


def test_both_roles_carry_the_boundary_and_teardown_leaves_it(cfg):
    ctx = quiet_context(cfg)
    iam_role.ensure(ctx)
    apigateway_account.claim(ctx)
    assert boundary_of("demo-fn") == BOUNDARY
    assert boundary_of(apigateway_account.role_name(cfg.stack.region)) == BOUNDARY
    document, found = stored_document(BOUNDARY)
    assert document == boundary.document("aws", ACCOUNT)
    assert {"Key": "managed-by", "Value": "rds-edge-api"} in iam().list_policy_tags(PolicyArn=BOUNDARY)["Tags"]
    assert changing_ops(ctx).count("CreatePolicy") == 1  # one boundary for both roles

    iam_role.destroy(quiet_context(cfg))
    assert "demo-fn" not in [r["RoleName"] for r in iam().list_roles()["Roles"]]
    assert iam().get_policy(PolicyArn=BOUNDARY)["Policy"]["PolicyName"] == boundary.NAME  # other roles use it


def test_a_role_made_before_the_boundary_gets_it(cfg):
    trust = json.dumps(iam_role.trust_policy(ACCOUNT))
    iam().create_role(RoleName="demo-fn", AssumeRolePolicyDocument=trust,
                      Tags=[{"Key": "stack", "Value": "demo"}, {"Key": "managed-by", "Value": "rds-edge-api"}])
    iam().attach_role_policy(RoleName="demo-fn", PolicyArn=iam_role.POLICY.format(partition="aws"))
    ctx = quiet_context(cfg)
    iam_role.ensure(ctx)
    assert changing_ops(ctx) == ["CreatePolicy", "PutRolePermissionsBoundary"]
    assert boundary_of("demo-fn") == BOUNDARY
    again = quiet_context(cfg)
    iam_role.ensure(again)
    assert changing_ops(again) == []


def test_a_boundary_made_meanwhile_is_used(cfg, aws_rules):
    """The function's role and the logging role are made at once, and two stacks may deploy at once: a
    CreatePolicy refused for the name means the boundary was just made; it is read back and used."""
    aws_rules(made_meanwhile("iam", "CreatePolicy", "PolicyName", boundary.NAME))
    iam_role.ensure(quiet_context(cfg))
    assert boundary_of("demo-fn") == BOUNDARY


def test_a_boundary_that_allows_more_stops_before_the_role_is_made(cfg):
    everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam().create_policy(PolicyName=boundary.NAME, PolicyDocument=json.dumps(everything))
    ctx = quiet_context(cfg)
    with pytest.raises(DeployError, match="allows something other than the toolkit's boundary"):
        iam_role.ensure(ctx)
    assert changing_ops(ctx) == [] and iam().list_roles()["Roles"] == []


@pytest.mark.parametrize("overrides", [{}, IAM_AUTH], ids=["password", "iam-auth"])
def test_the_operator_policy_read_back_changes_roles_only_under_the_boundary(load_seeded, overrides):
    """The policy as IAM stores it: every widening role change needs iam:PermissionsBoundary = the boundary;
    nothing removes a boundary or rewrites, versions or deletes the boundary policy."""
    cfg = load_seeded(overrides, WITHOUT_PASSWORD if overrides else ())
    doc = policy.document(cfg, ACCOUNT, stack_network(quiet_context(cfg)))
    made = iam().create_policy(PolicyName="rds-edge-api-operator", PolicyDocument=json.dumps(doc))["Policy"]
    stored, _ = stored_document(made["Arn"])
    granted = {a for s in stored["Statement"] for a in s["Action"]}
    assert "iam:CreateRole" in granted and ("iam:PutRolePolicy" in granted) == bool(overrides)
    for statement in stored["Statement"]:
        widening = set(statement["Action"]) & set(boundary.BOUNDED_ACTIONS)
        if widening:
            assert statement["Condition"]["StringEquals"] == {"iam:PermissionsBoundary": BOUNDARY}, statement
        assert not set(statement["Action"]) & {*boundary.WIDENING_ACTIONS, *boundary.REWRITING_ACTIONS}
        assert all(not a.endswith("*") for a in statement["Action"])
        if set(statement["Action"]) & set(boundary.POLICY_ACTIONS):
            assert statement["Resource"] == BOUNDARY


def test_policy_check_finds_no_way_past_the_boundary(operator):
    path, session, simulator = operator(overrides=CHECK)
    code, text = run(path, "policy", "--check", session=session)
    assert code == 0, text
    assert "No way past the roles' permissions boundary rds-edge-api-role-boundary" in text
    probed = {a for p in simulator.asked for a in p["ActionNames"]}
    assert {"iam:DeleteRolePermissionsBoundary", "iam:CreatePolicyVersion", "iam:CreateRole"} <= probed


def test_policy_check_names_a_grant_that_escapes_the_boundary(operator):
    """An operator policy edited by hand: PutRolePolicy on the function's role without the condition."""
    def edit(doc):
        return {**doc, "Statement": [*doc["Statement"], {
            "Sid": "Loose", "Effect": "Allow", "Action": ["iam:PutRolePolicy", "iam:DeleteRolePermissionsBoundary"],
            "Resource": f"arn:aws:iam::{ACCOUNT}:role/demo-fn"}]}
    path, session, _ = operator(edit, CHECK)
    code, text = run(path, "policy", "--check", session=session)
    assert code == 1
    lines = text.splitlines()
    assert any("iam:PutRolePolicy" in line and "with no boundary" in line for line in lines), text
    assert any("iam:DeleteRolePermissionsBoundary" in line and "removes the boundary" in line for line in lines)
    assert "more than their boundary allows" in text


def test_policy_check_names_a_boundary_rewritten_by_hand(operator):
    path, session, _ = operator(overrides=CHECK)
    wide = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam().create_policy(PolicyName=boundary.NAME, PolicyDocument=json.dumps(wide))
    code, text = run(path, "policy", "--check", session=session)
    assert code == 1 and "(the boundary itself)" in text
