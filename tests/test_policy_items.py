"""Each permission AWS checks beyond a call's own action, and each narrowing, read from the generated document
(issue 15): removing one from provision/iam/permissions.py or provision/iam/policy.py fails its test here."""
import fnmatch

import pytest

from maintainer.every_step import every_step_on
from provision import config as config_module
from provision.iam import permissions, policy

ACCOUNT = "123456789012"
WEST = f"eu-west-1:{ACCOUNT}"
EAST = f"us-east-1:{ACCOUNT}"
NETWORK = policy.Network("vpc-0123456789abcdef0", "sg-0db0db0db0db0db00")
FUNCTION = f"arn:aws:lambda:{WEST}:function:demo-api"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/demo-fn"
ALERTS = {"alerts": {"email": "ops@example.com"}}


def grants(doc, action, arn="*"):
    """The statements allowing the action on the ARN (IAM's * and ? wildcards), with their conditions."""
    found = []
    for statement in doc["Statement"]:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if action in statement["Action"] and any(fnmatch.fnmatchcase(arn, r) for r in resources):
            found.append(statement.get("Condition"))
    return found


@pytest.fixture
def doc_for(write_config):
    def build(overrides=None, drop=(), network=NETWORK):
        return policy.document(config_module.load(write_config(overrides, drop)), ACCOUNT, network)
    return build


def test_getfunction_s_tags_need_lambda_list_tags(doc_for):
    assert grants(doc_for(), "lambda:ListTags", FUNCTION) == [None]


@pytest.mark.parametrize("action", ["ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:DescribeSecurityGroups"])
def test_lambda_checks_the_vpc_configuration_with_the_caller_s_permissions(doc_for, action):
    assert grants(doc_for(), action) == [None]  # Describe* take no resource: "*"
    assert action in policy.actions("lambda", "CreateFunction")
    assert action in policy.actions("lambda", "UpdateFunctionConfiguration")


def test_tagging_on_create_sns_and_eventbridge(doc_for):
    doc = doc_for(ALERTS)
    assert grants(doc, "sns:CreateTopic", f"arn:aws:sns:{EAST}:demo-certificate-alerts") == [None]
    assert grants(doc, "sns:TagResource", f"arn:aws:sns:{EAST}:demo-certificate-alerts") == [None]
    assert grants(doc, "events:PutRule", f"arn:aws:events:{EAST}:rule/demo-certificate-alerts") == [None]
    assert grants(doc, "events:TagResource", f"arn:aws:events:{EAST}:rule/demo-certificate-alerts") == [None]


def test_the_tagged_ingress_rule_is_a_security_group_rule_resource(doc_for):
    doc, rule = doc_for(), f"arn:aws:ec2:{WEST}:security-group-rule/sgr-0123456789abcdef0"
    assert grants(doc, "ec2:AuthorizeSecurityGroupIngress", rule) == [None]
    assert grants(doc, "ec2:CreateTags", rule) == [{"StringEquals": {"ec2:CreateAction":
                                                                     "AuthorizeSecurityGroupIngress"}}]


BOUNDED = {"StringEquals": {"iam:PermissionsBoundary": f"arn:aws:iam::{ACCOUNT}:policy/rds-edge-api-role-boundary"}}


def test_attach_role_policy_only_for_the_managed_policies_the_toolkit_attaches(doc_for):
    vpc_access = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
    push_logs = "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"  # the logging role's
    assert grants(doc_for(), "iam:AttachRolePolicy", ROLE) == [{"ArnEquals": {"iam:PolicyARN": [vpc_access,
                                                                                               push_logs]},
                                                                **BOUNDED}]


def test_put_role_policy_only_with_iam_database_auth(doc_for):
    assert grants(doc_for(), "iam:PutRolePolicy", ROLE) == []
    iam_auth = doc_for({"database": {"auth": "iam"}}, drop=("database.password_env",))
    assert grants(iam_auth, "iam:PutRolePolicy", ROLE) == [BOUNDED]  # only on a role the boundary caps
    assert grants(doc_for(), "iam:DeleteRolePolicy", ROLE) == [None]  # a switch back to password removes it


def test_ec2_writes_name_the_two_groups_only(doc_for):
    doc = doc_for()
    database = f"arn:aws:ec2:{WEST}:security-group/{NETWORK.database_group_id}"
    other = f"arn:aws:ec2:{WEST}:security-group/sg-0someone0else0000"
    for action in ("ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"):
        assert grants(doc, action, database) == [None]
        assert grants(doc, action, other) == []
    ours = {"StringEquals": {"aws:ResourceTag/stack": "demo", "aws:ResourceTag/managed-by": "rds-edge-api"}}
    for action in ("ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress", "ec2:DeleteSecurityGroup"):
        assert grants(doc, action, other) == [ours]  # any group, but only one tagged as this stack's
    assert grants(doc, "ec2:CreateTags", other) == [{"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}}]
    assert grants(doc, "ec2:CreateSecurityGroup", f"arn:aws:ec2:{WEST}:vpc/{NETWORK.vpc_id}") == [None]
    assert grants(doc, "ec2:CreateSecurityGroup", f"arn:aws:ec2:{WEST}:vpc/vpc-0another0000000") == []


def test_sns_and_eventbridge_patterns_are_exact(write_config, doc_for):
    doc = doc_for(ALERTS)
    for action, arn in (("sns:DeleteTopic", f"arn:aws:sns:{EAST}:demo-eu-certificate-alerts"),
                        ("sns:DeleteTopic", f"arn:aws:sns:{EAST}:demo-certificate-alerts-old"),
                        ("events:DeleteRule", f"arn:aws:events:{EAST}:rule/demo-eu-certificate-alerts")):
        assert grants(doc, action, arn) == [], (action, arn)
    assert grants(doc, "sns:DeleteTopic", f"arn:aws:sns:{EAST}:demo-certificate-alerts") == [None]


def test_without_alerts_only_finding_and_deleting_them_is_granted(doc_for):
    doc = doc_for()
    assert grants(doc, "sns:CreateTopic", f"arn:aws:sns:{EAST}:demo-certificate-alerts") == []
    assert grants(doc, "events:PutRule", f"arn:aws:events:{EAST}:rule/demo-certificate-alerts") == []
    assert grants(doc, "sns:DeleteTopic", f"arn:aws:sns:{EAST}:demo-certificate-alerts") == [None]


def test_simulating_the_caller_only_with_check_permissions(doc_for):
    user = f"arn:aws:iam::{ACCOUNT}:user/operator"
    assert grants(doc_for(), "iam:SimulatePrincipalPolicy", user) == []
    assert grants(doc_for({"stack": {"check_permissions": True}}), "iam:SimulatePrincipalPolicy", user) == [None]


def test_every_row_of_the_table_is_granted_where_its_call_is(doc_for):
    """The table is what the builder uses: each extra action of each recorded call is in the policy."""
    doc = doc_for(*every_step_on("Z0123456789ABC"))
    granted = {a for s in doc["Statement"] for a in s["Action"]}
    recorded = {(c.service, c.operation) for c in policy.load_catalog()}
    for row in permissions.BEYOND:
        assert (row.service, row.operation) in recorded, f"{row.operation}: not a call the toolkit makes"
        assert set(row.actions) <= granted, (row.operation, set(row.actions) - granted)
        assert row.source


def test_a_newly_recorded_call_maps_to_its_own_action(doc_for, write_config):
    """A call another engineer adds (a DynamoDB lease, a log delivery) gets <prefix>:<Operation>, and the
    reference test then checks it exists and takes the resources given."""
    cfg = config_module.load(write_config())
    calls = [policy.Call("dynamodb", "PutItem", ("deploy",), ("dns",)),
             policy.Call("apigateway", "UpdateStage", ("deploy",), ("dns",))]
    doc = policy.document(cfg, ACCOUNT, NETWORK, calls=calls)
    assert {a for s in doc["Statement"] for a in s["Action"]} == {"dynamodb:PutItem", "apigateway:PATCH"}


def test_the_lease_table_is_made_with_its_tags(doc_for):
    """CreateTable with Tags is also authorized as dynamodb:TagResource (hashicorp/terraform-provider-aws#10943)."""
    table = f"arn:aws:dynamodb:{WEST}:table/rds-edge-api-leases"
    assert grants(doc_for(), "dynamodb:CreateTable", table) == [None]
    assert grants(doc_for(), "dynamodb:TagResource", table) == [None]


def test_the_proxy_role_may_be_passed_to_rds_only_and_the_proxy_made_only_with_the_proxy(doc_for):
    """CreateDBProxy passes the proxy's role (to RDS only) and tags the proxy; without [database] proxy
    neither the proxy nor its target can be made, while teardown may still find and delete one."""
    proxied = doc_for({"database": {"auth": "iam", "proxy": True}}, drop=("database.password_env",))
    [passing] = [s for s in proxied["Statement"] if "iam:PassRole" in s["Action"]
                 and s["Resource"] == "arn:aws:iam::123456789012:role/demo-proxy"]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "rds.amazonaws.com"}}
    granted = {a for s in proxied["Statement"] for a in s["Action"]}
    assert {"rds:CreateDBProxy", "rds:RegisterDBProxyTargets", "rds:AddTagsToResource"} <= granted
    direct = {a for s in doc_for()["Statement"] for a in s["Action"]}
    assert not {"rds:CreateDBProxy", "rds:RegisterDBProxyTargets"} & direct
    assert {"rds:DescribeDBProxies", "rds:DeleteDBProxy"} <= direct


@pytest.mark.parametrize("validation", ["dns", "email"])
def test_a_stack_switched_from_the_other_validation_mode_is_cleaned_up_with_this_modes_policy(doc_for, validation):
    """Deploy and teardown run the mail step and the certificate step whatever [domain] validation says now
    (steps/__init__.py: a stack that switched modes leaves nothing behind), so a dns config's policy grants
    removing the email mode's bucket, rule and identity (the recorder deploys the other mode first: maintainer/
    recording.py), and an email config's the dns mode's validation record."""
    doc = doc_for({"domain": {"validation": validation, "hosted_zone_id": "Z0123456789ABCDEFGHIJ"}})
    bucket = f"arn:aws:s3:::demo-mail-{ACCOUNT}"
    for action in ("s3:GetBucketTagging", "s3:ListBucketVersions", "s3:DeleteBucket"):
        assert grants(doc, action, bucket), f"{validation}: {action} on the mail bucket"
    assert grants(doc, "s3:DeleteObject", f"{bucket}/acm/x"), f"{validation}: the bucket's mail"
    for action in ("ses:DeleteReceiptRule", "ses:DeleteIdentity", "route53:ChangeResourceRecordSets"):
        assert grants(doc, action) or grants(doc, action, "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ"), \
            f"{validation}: {action}"
