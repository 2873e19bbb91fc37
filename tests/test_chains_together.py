"""The function's and the certificate's chains: independent calls go out together, and the order AWS needs
still holds (issue 18).

Nothing here is timed. Reads that must overlap meet at a ``threading.Barrier`` (it breaks, failing the
run, unless all of them are in flight at once); orders are checked on the sequence in which calls
started and ended (``Calls``), never on the clock.
"""
import threading
from dataclasses import dataclass, field

import boto3
import pytest
from botocore.client import BaseClient

from provision import runner
from provision.aws import database
from provision.steps import STEPS, certificate, function, iam_role, mail, security_groups
from tests.support import changing_ops, moto_evaluates_secure_transport, quiet_context, run_steps

CHAIN = ("iam_role", "security_groups", "proxy", "function")  # the proxy: off here, a look and nothing more
MEET_TIMEOUT = 20  # a bound for a barrier that is never met (the calls ran one after another), not a measure


@dataclass
class Calls:
    """Every AWS call's start and end, as positions in one sequence; ``meet`` makes the next calls of the
    named operations (an operation named twice: its next two) wait until all of them are in flight."""
    events: list[tuple[str, str]] = field(default_factory=list)  # ("start" | "end", operation)
    _waiting: list[tuple[str, threading.Barrier]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def meet(self, *operations: str) -> None:
        barrier = threading.Barrier(len(operations), timeout=MEET_TIMEOUT)
        self._waiting += [(operation, barrier) for operation in operations]

    def around(self, operation: str, call):
        with self._lock:
            self.events.append(("start", operation))
            barrier = next((b for op, b in self._waiting if op == operation), None)
            if barrier is not None:
                self._waiting.remove((operation, barrier))
        if barrier is not None:
            barrier.wait()
        try:
            return call()
        finally:
            with self._lock:
                self.events.append(("end", operation))

    def before(self, first: str, then: str) -> bool:
        """Every ``first`` ended before any ``then`` started."""
        ends = [i for i, event in enumerate(self.events) if event == ("end", first)]
        starts = [i for i, event in enumerate(self.events) if event == ("start", then)]
        return bool(ends) and bool(starts) and max(ends) < min(starts)

    def most_in_flight(self, operations: set[str]) -> int:
        flying, most = 0, 0
        for edge, operation in self.events:
            if operation in operations:
                flying += 1 if edge == "start" else -1
                most = max(most, flying)
        return most


@pytest.fixture
def calls(aws, monkeypatch):
    recorded = Calls()
    original = BaseClient._make_api_call

    def make_api_call(client, operation_name, api_params):
        return recorded.around(operation_name, lambda: original(client, operation_name, api_params))

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)
    return recorded


def chain_steps():
    return tuple(step for step in STEPS if step.name in CHAIN)


# --- each step's observe: its reads at once -------------------------------------------------------

def test_the_roles_reads_go_out_together(cfg, calls):
    calls.meet("GetRole", "ListAttachedRolePolicies", "GetRolePolicy")
    seen = iam_role.observe(quiet_context(cfg))
    assert seen.role is None and seen.attached is None and seen.connect is None


def test_the_groups_reads_go_out_together(cfg, calls):
    calls.meet("DescribeDBInstances", "DescribeSecurityGroups")  # ours, beside the database's lookup
    seen = security_groups.observe(quiet_context(cfg))
    assert seen.groups == [] and seen.database_group["GroupId"] == seen.database.security_group_id


def test_the_functions_reads_go_out_together(cfg, calls):
    calls.meet("DescribeLogGroups", "GetFunction", "DescribeDBInstances")
    seen = function.observe(quiet_context(cfg))
    assert seen.function is None and seen.log_group.group is None
    assert seen.subnets.used == database.lookup(quiet_context(cfg)).subnet_ids


def test_the_database_is_described_once_when_observes_ask_at_once(cfg, calls):
    ctx = quiet_context(cfg)
    pieces = [threading.Thread(target=observe, args=(ctx,))
              for observe in (iam_role.observe, security_groups.observe, function.observe)]
    for piece in pieces:
        piece.start()
    for piece in pieces:
        piece.join()
    assert [event for event in calls.events if event == ("start", "DescribeDBInstances")] == [
        ("start", "DescribeDBInstances")]


# --- the run: a no-op's reads at the start, a deploy's order kept ---------------------------------

@pytest.mark.iam  # attaches AWS's managed policy: moto loads them
def test_a_no_op_reads_the_three_steps_at_once_and_changes_nothing(cfg, calls):
    runner.deploy(quiet_context(cfg), chain_steps())
    calls.events.clear()
    # The function's reads meet the role's and the groups': none waits for the steps it needs.
    calls.meet("GetRole", "DescribeSecurityGroups", "GetFunction", "DescribeLogGroups")
    again = quiet_context(cfg)
    runner.deploy(again, chain_steps())
    assert changing_ops(again) == []
    assert ("start", "GetFunctionConfiguration") not in calls.events  # GetFunction said Active already


@pytest.mark.iam  # attaches AWS's managed policy: moto loads them
def test_a_deploy_keeps_the_order_aws_needs(cfg, calls):
    ctx = quiet_context(cfg)
    runner.deploy(ctx, chain_steps())
    # The function is made only once its role and its group are (the step's needs) ...
    for made in ("CreateRole", "AttachRolePolicy", "CreateSecurityGroup", "AuthorizeSecurityGroupEgress",
                 "AuthorizeSecurityGroupIngress"):
        assert calls.before(made, "CreateFunction"), made
    # ... in its log group, which has its retention first ...
    assert calls.before("CreateLogGroup", "CreateFunction") and calls.before("PutRetentionPolicy", "CreateFunction")
    # ... and its concurrency is set once it is Active (Lambda refuses calls on a Pending function).
    assert calls.before("GetFunctionConfiguration", "PutFunctionConcurrency")
    # The default outbound rule goes before MySQL is allowed out: never more open than before.
    assert calls.before("RevokeSecurityGroupEgress", "AuthorizeSecurityGroupEgress")
    assert calls.before("CreateSecurityGroup", "AuthorizeSecurityGroupIngress")
    # IAM's changes to the one role go one at a time (ConcurrentModification).
    assert calls.most_in_flight({"CreateRole", "AttachRolePolicy", "PutRolePolicy"}) == 1
    conf = boto3.client("lambda", region_name="eu-west-1").get_function(FunctionName="demo-api")["Configuration"]
    assert conf["Role"] == ctx.state.get("iam_role")["arn"] and conf["State"] == "Active"


def test_a_new_groups_database_rule_goes_out_beside_its_outbound_rules(cfg, calls):
    calls.meet("RevokeSecurityGroupEgress", "AuthorizeSecurityGroupIngress")
    ctx = quiet_context(cfg)
    security_groups.ensure(ctx)
    assert calls.before("RevokeSecurityGroupEgress", "AuthorizeSecurityGroupEgress")
    ec2, db = boto3.client("ec2", region_name="eu-west-1"), database.lookup(ctx)
    ours = ctx.state.get("security_groups")["lambda_group_id"]
    [group] = ec2.describe_security_groups(GroupIds=[ours])["SecurityGroups"]
    assert [(p["IpProtocol"], p["FromPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]], p["IpRanges"])
            for p in group["IpPermissionsEgress"]] == [("tcp", 3306, [db.security_group_id], [])]
    [rds] = ec2.describe_security_groups(GroupIds=[db.security_group_id])["SecurityGroups"]
    assert any(pair["GroupId"] == ours for p in rds["IpPermissions"] for pair in p["UserIdGroupPairs"])


def test_an_existing_groups_outbound_is_narrowed_before_the_database_lets_it_in(cfg, calls):
    first = quiet_context(cfg)
    security_groups.ensure(first)
    ctx = quiet_context(cfg)
    ec2, db = boto3.client("ec2", region_name="eu-west-1"), database.lookup(ctx)
    ours = first.state.get("security_groups")["lambda_group_id"]
    ec2.authorize_security_group_egress(GroupId=ours, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    [rds] = ec2.describe_security_groups(GroupIds=[db.security_group_id])["SecurityGroups"]
    ec2.revoke_security_group_ingress(GroupId=db.security_group_id, IpPermissions=rds["IpPermissions"])
    calls.events.clear()
    security_groups.ensure(ctx)
    assert changing_ops(ctx) == ["RevokeSecurityGroupEgress", "AuthorizeSecurityGroupIngress"]
    assert calls.before("RevokeSecurityGroupEgress", "AuthorizeSecurityGroupIngress")


# --- teardown: reads at once, removals in AWS's order ---------------------------------------------

@pytest.mark.iam  # attaches AWS's managed policy: moto loads them
def test_the_function_goes_before_its_log_group_whose_reads_go_beside_it(cfg, calls):
    run_steps(cfg, iam_role, security_groups, function)
    calls.events.clear()
    calls.meet("GetFunction", "DescribeLogGroups")
    ctx = run_steps(cfg, function, destroy=True)
    assert changing_ops(ctx) == ["DeleteFunction", "DeleteLogGroup"]
    assert calls.before("DeleteFunction", "DeleteLogGroup")  # else its next call would make the group again
    assert boto3.client("logs", region_name="eu-west-1").describe_log_groups()["logGroups"] == []


@pytest.mark.iam  # attaches AWS's managed policy: moto loads them
def test_the_roles_teardown_reads_at_once_and_changes_one_at_a_time(cfg, calls):
    iam_role.ensure(quiet_context(cfg))
    calls.events.clear()
    calls.meet("GetRole", "ListAttachedRolePolicies", "ListRolePolicies")
    ctx = quiet_context(cfg)
    iam_role.destroy(ctx)
    assert changing_ops(ctx)[-1] == "DeleteRole"
    assert calls.most_in_flight({"DetachRolePolicy", "DeleteRolePolicy", "DeleteRole"}) == 1
    assert all(r["RoleName"] != "demo-fn" for r in boto3.client("iam").list_roles()["Roles"])


def test_the_groups_teardown_revokes_the_database_rule_before_deleting_the_group(cfg, calls):
    security_groups.ensure(quiet_context(cfg))
    calls.events.clear()
    calls.meet("DescribeSecurityGroups", "DescribeDBInstances")
    ctx = quiet_context(cfg)
    security_groups.destroy(ctx)
    assert changing_ops(ctx) == ["RevokeSecurityGroupIngress", "DeleteSecurityGroup"]
    assert calls.before("RevokeSecurityGroupIngress", "DeleteSecurityGroup")


# --- the certificate's chain: mail -> certificate (-> alerts) ---------------------------------------

def test_without_mail_to_receive_the_mail_step_looks_once_at_everything(dns_cfg, calls):
    calls.meet("DescribeReceiptRuleSet", "HeadBucket")  # a rule set beside the bucket
    ctx = quiet_context(dns_cfg)
    mail.ensure(ctx)
    assert changing_ops(ctx) == []
    # the shared set and the old own set: one at a time, SES allowing one a second (provision/clients.py)
    assert calls.most_in_flight({"DescribeReceiptRuleSet"}) == 1


def test_the_mail_steps_reads_go_out_together(email_cfg, calls, monkeypatch):
    moto_evaluates_secure_transport(monkeypatch)
    mail.ensure(quiet_context(email_cfg))
    calls.events.clear()
    calls.meet("DescribeActiveReceiptRuleSet", "GetIdentityVerificationAttributes", "HeadBucket",
               "DescribeReceiptRuleSet")
    calls.meet("GetBucketTagging", "GetBucketPolicy", "GetBucketEncryption")  # the bucket's settings, once found
    again = quiet_context(email_cfg)
    mail.ensure(again, seen=mail.observe(again))
    assert changing_ops(again) == []


def test_a_mail_teardown_removes_the_rule_before_the_bucket_it_writes_to(email_cfg, calls, monkeypatch):
    moto_evaluates_secure_transport(monkeypatch)
    mail.ensure(quiet_context(email_cfg))
    calls.events.clear()
    calls.meet("DescribeReceiptRuleSet", "HeadBucket")  # the sets one a second (SES), beside the bucket
    ctx = quiet_context(email_cfg)
    mail.destroy(ctx)
    assert calls.before("DeleteReceiptRule", "DeleteBucket")
    assert calls.most_in_flight({"DeleteReceiptRule", "DeleteReceiptRuleSet", "DeleteIdentity", "DeleteBucket"}) == 1
    assert not [b for b in boto3.client("s3").list_buckets()["Buckets"] if b["Name"].startswith("demo-mail-")]


def test_the_certificate_is_described_beside_its_tags_and_deleted_after(dns_cfg, calls):
    first = quiet_context(dns_cfg)
    certificate.request(first)
    first.state.save()
    calls.events.clear()
    calls.meet("DescribeCertificate", "ListTagsForCertificate")  # the state's certificate: no listing
    again = quiet_context(dns_cfg)
    certificate.request(again, seen=certificate.observe(again))
    assert changing_ops(again) == []
    calls.events.clear()
    calls.meet("DescribeCertificate", "ListTagsForCertificate")  # teardown: each listed certificate
    down = quiet_context(dns_cfg)
    certificate.destroy(down)
    assert "DeleteCertificate" in changing_ops(down)
    assert calls.before("ListTagsForCertificate", "DeleteCertificate")
    assert calls.before("ChangeResourceRecordSets", "DeleteCertificate")  # the CNAME's name is only the certificate's
    assert boto3.client("acm", region_name="us-east-1").list_certificates()["CertificateSummaryList"] == []
