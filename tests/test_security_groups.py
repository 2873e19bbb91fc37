import dataclasses

import boto3
import pytest

from provision.aws import database
from provision.errors import DeployError
from provision.steps import security_groups
from tests.support import changing_ops, inject, printed, quiet_context


def groups(ctx):
    ec2 = boto3.client("ec2", region_name="eu-west-1")
    db = database.lookup(ctx)
    ours = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["demo-lambda"]}])["SecurityGroups"]
    rds = ec2.describe_security_groups(GroupIds=[db.security_group_id])["SecurityGroups"][0]
    return db, ours, rds


def mysql_sources(permissions):
    return [(p["FromPort"], pair["GroupId"]) for p in permissions if p.get("IpProtocol") == "tcp"
            for pair in p.get("UserIdGroupPairs", [])]


def test_lambda_group_has_no_inbound_and_only_mysql_out(cfg):
    ctx = quiet_context(cfg)
    security_groups.ensure(ctx)
    db, ours, rds = groups(ctx)
    assert len(ours) == 1
    group = ours[0]
    assert group["VpcId"] == db.vpc_id
    assert group["IpPermissions"] == []
    assert mysql_sources(group["IpPermissionsEgress"]) == [(3306, db.security_group_id)]
    assert all(not p.get("IpRanges") for p in group["IpPermissionsEgress"])
    assert {t["Key"]: t["Value"] for t in group["Tags"]} == {"stack": "demo", "managed-by": "rds-edge-api"}
    assert mysql_sources(rds["IpPermissions"]) == [(3306, group["GroupId"])]


def test_second_ensure_changes_nothing(cfg):
    security_groups.ensure(quiet_context(cfg))
    again = quiet_context(cfg)
    security_groups.ensure(again)
    assert changing_ops(again) == []


def test_revoked_rule_is_restored(cfg):
    ctx = quiet_context(cfg)
    security_groups.ensure(ctx)
    db, ours, rds = groups(ctx)
    boto3.client("ec2", region_name="eu-west-1").revoke_security_group_ingress(
        GroupId=db.security_group_id, IpPermissions=rds["IpPermissions"])
    again = quiet_context(cfg)
    security_groups.ensure(again)
    assert changing_ops(again) == ["AuthorizeSecurityGroupIngress"]
    assert mysql_sources(groups(again)[2]["IpPermissions"]) == [(3306, ours[0]["GroupId"])]


def test_destroy_revokes_our_rule_and_keeps_the_operators_group(cfg):
    ctx = quiet_context(cfg)
    security_groups.ensure(ctx)
    security_groups.destroy(quiet_context(cfg))
    db, ours, rds = groups(ctx)
    assert ours == []
    assert rds["GroupId"] == db.security_group_id
    assert mysql_sources(rds["IpPermissions"]) == []
    twice = quiet_context(cfg)
    security_groups.destroy(twice)
    assert changing_ops(twice) == []


def test_destroy_waits_out_lingering_network_interfaces(cfg):
    security_groups.ensure(quiet_context(cfg))
    ctx = quiet_context(cfg)
    attempts = inject(ctx.clients.session, "before-call.ec2.DeleteSecurityGroup", 3, "DependencyViolation",
                      "resource sg-1 has a dependent object")
    security_groups.destroy(ctx)
    assert len(attempts) == 4
    assert len(ctx.sleep) == 3
    assert "network interfaces" in printed(ctx)
    assert groups(ctx)[1] == []


def test_destroy_gives_up_after_a_bounded_wait(cfg):
    security_groups.ensure(quiet_context(cfg))
    ctx = quiet_context(cfg)
    attempts = inject(ctx.clients.session, "before-call.ec2.DeleteSecurityGroup", 10_000, "DependencyViolation")
    with pytest.raises(DeployError, match="gave up waiting for the deleted function's network interfaces"):
        security_groups.destroy(ctx)
    assert 1 < len(attempts) <= security_groups.ENI_RELEASE_TIMEOUT / 10 + 1


def test_missing_database_is_a_clear_error(cfg):
    cfg = dataclasses.replace(cfg, database=dataclasses.replace(cfg.database, instance_id="no-such-db"))
    with pytest.raises(DeployError, match="database.instance_id: no RDS instance 'no-such-db'"):
        security_groups.ensure(quiet_context(cfg))


def test_a_new_group_unseen_at_first_by_the_calls_naming_it_is_waited_for(cfg, aws_rules):
    """"InvalidGroup.NotFound" for a group just made (EC2 developer guide, "Eventual consistency in the Amazon
    EC2 API": retry with backoff); moto sees it at once. The first call of each kind naming it is refused."""
    from tests import aws_rules as rules

    refused: set[str] = set()

    def names_the_new_group(call) -> bool:
        made = [c for c in created.seen if c.operation == "CreateSecurityGroup"]
        return (call.service == "ec2" and bool(made) and call.operation not in refused
                and call.operation != "CreateSecurityGroup" and new_group[0] in str(call.params))

    def refuse(call):
        refused.add(call.operation)
        raise rules.aws_error(call.operation, "InvalidGroup.NotFound",
                              f"The security group '{new_group[0]}' does not exist")

    def remember(call):
        answer = call.send()
        new_group[0] = answer["GroupId"]
        return answer

    new_group = [""]
    created = rules.Rule("CreateSecurityGroup", "test", rules.operation("ec2", "CreateSecurityGroup"), remember)
    unseen = rules.Rule("a new group unseen at first", "EC2 API: eventual consistency", names_the_new_group, refuse)
    aws_rules(created, unseen)
    ctx = quiet_context(cfg)
    security_groups.ensure(ctx)
    db, ours, rds = groups(ctx)
    assert refused >= {"DescribeSecurityGroups", "AuthorizeSecurityGroupIngress"}, refused
    assert mysql_sources(ours[0]["IpPermissionsEgress"]) == [(3306, db.security_group_id)]
    assert mysql_sources(rds["IpPermissions"]) == [(3306, ours[0]["GroupId"])]
    assert f"EC2 to show the new security group {ours[0]['GroupId']}" in printed(ctx)
