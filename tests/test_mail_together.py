"""Two email-validated stacks of one account deployed and torn down at the same time (issue 24): their edits of
the shared receipt rule set are ordered by the account's lease on it, so each stack's rule is in the ACTIVE set
while the stack exists (SES delivers its mail) and nothing is left once both are gone, whichever order the
calls meet in. The dangerous points are made to happen with tests/aws_rules.py's pauses."""
import threading
import time

import boto3
import pytest

from provision import config as config_module
from provision.context import make_context
from provision.steps import mail
from tests.aws_rules import made_meanwhile, pause_at
from tests.support import TEST_TIME, moto_evaluates_secure_transport, printed, quiet_output

SHARED = mail.SHARED_RULE_SET
STACKS = {"orders": "orders.example.com", "eu": "eu.example.com"}


@pytest.fixture(autouse=True)
def tls_requests(monkeypatch):
    moto_evaluates_secure_transport(monkeypatch)


@pytest.fixture
def stacks(aws, write_config, hosted_zone):
    return {name: config_module.load(write_config({"stack": {"name": name}, "domain": {
        "name": domain, "validation": "email", "hosted_zone_id": hosted_zone}}, name=f"{name}.toml"))
        for name, domain in STACKS.items()}


def sleep(seconds: float) -> None:
    """Waits a little for real (a run waiting for the account's lease polls it while the other run works), and
    moves the suite's time on by the whole of it, as the strict rules count time (SES's once a second)."""
    TEST_TIME.passes(seconds)
    time.sleep(min(seconds, 0.01))


def context(cfg):
    return make_context(cfg, sleep=sleep, out=quiet_output(200))


def ses():
    return boto3.client("ses", region_name="us-east-1")


def active_rules():
    """The rules of the ACTIVE set, by name: those SES applies to incoming mail."""
    return sorted(r["Name"] for r in ses().describe_active_receipt_rule_set().get("Rules", []))


def nothing_left():
    assert ses().describe_active_receipt_rule_set().get("Metadata") is None
    assert ses().list_receipt_rule_sets().get("RuleSets", []) == []
    assert ses().list_identities()["Identities"] == []
    assert boto3.client("s3").list_buckets()["Buckets"] == []


class Run(threading.Thread):
    """One stack's ensure or destroy in a thread named after the stack; its error kept for the test."""

    def __init__(self, stack: str, action, cfg):
        super().__init__(name=stack)
        self.action, self.ctx, self.error = action, context(cfg), None

    def run(self):
        try:
            self.action(self.ctx)
        except BaseException as exc:  # noqa: BLE001 (asserted by the test)
            self.error = exc


def in_thread(stack, action, cfg):
    run = Run(stack, action, cfg)
    run.start()
    return run


def finish(*runs):
    for run in runs:
        run.join(60)
        assert not run.is_alive() and run.error is None, (run.name, run.error)


def interleaved(aws_rules, stacks, paused: tuple, at: str, then: tuple, joined: float = 1.0) -> None:
    """``paused`` (a stack's name and mail function) stops at its first ``at`` call; ``then`` runs meanwhile,
    given ``joined`` seconds (it may wait on the account lease the paused one holds); then both finish."""
    (first, first_action), (second, second_action) = paused, then
    pause = pause_at(lambda call: call.operation == at and threading.current_thread().name == first)
    aws_rules(pause.rule)
    a = in_thread(first, first_action, stacks[first])
    assert pause.reached.wait(30)
    b = in_thread(second, second_action, stacks[second])
    b.join(joined)
    pause.go.set()
    finish(a, b)


@pytest.mark.parametrize("first, second", [("orders", "eu"), ("eu", "orders")])
def test_two_first_deploys_at_once_make_one_set_with_both_rules(aws_rules, stacks, first, second):
    pause = pause_at(lambda call: call.operation == "CreateReceiptRuleSet")
    aws_rules(pause.rule)
    a = in_thread(first, mail.ensure, stacks[first])
    assert pause.reached.wait(30)  # the first is about to create the set, holding the account's lease
    b = in_thread(second, mail.ensure, stacks[second])
    b.join(1.0)
    assert b.is_alive()  # waiting for the lease, not creating the set too
    pause.go.set()
    finish(a, b)
    assert active_rules() == ["eu-acm-approval", "orders-acm-approval"]
    assert "CreateReceiptRuleSet" not in b.ctx.clients.calls.changing_ops
    assert "the account's lease on ses-rule-set:rds-edge-api-shared-acm" in printed(b.ctx)

    finish(in_thread(first, mail.destroy, stacks[first]), in_thread(second, mail.destroy, stacks[second]))
    nothing_left()


@pytest.mark.parametrize("point", ["DeleteReceiptRule", "SetActiveReceiptRuleSet"])
@pytest.mark.parametrize("leaving, coming", [("orders", "eu"), ("eu", "orders")])
def test_a_first_deploy_during_the_last_teardown_keeps_its_rule_active(aws_rules, stacks, point, leaving, coming):
    """The last stack's teardown removes its rule, reads the set again (empty), deactivates and deletes it; the
    other stack's first deploy comes in between. Its rule must end in the active set."""
    mail.ensure(context(stacks[leaving]))
    interleaved(aws_rules, stacks, (leaving, mail.destroy), point, (coming, mail.ensure))
    assert active_rules() == [f"{coming}-acm-approval"]

    mail.destroy(context(stacks[coming]))
    nothing_left()


def test_without_the_account_lease_the_other_stacks_rule_is_deleted_with_the_set(aws_rules, stacks, monkeypatch):
    """The danger the lease removes, shown: the same interleaving with the lease taken away."""
    monkeypatch.setattr(mail, "_shared_edit", lambda ctx, region, rule_set: mail.nullcontext())
    mail.ensure(context(stacks["orders"]))
    interleaved(aws_rules, stacks, ("orders", mail.destroy), "SetActiveReceiptRuleSet", ("eu", mail.ensure), joined=30)
    assert active_rules() == []  # eu's deploy succeeded, yet its rule went with the deleted set


@pytest.mark.parametrize("first, second", [("orders", "eu"), ("eu", "orders")])
def test_two_teardowns_at_once_leave_nothing(aws_rules, stacks, first, second):
    mail.ensure(context(stacks[first]))
    mail.ensure(context(stacks[second]))
    assert active_rules() == ["eu-acm-approval", "orders-acm-approval"]
    interleaved(aws_rules, stacks, (first, mail.destroy), "DeleteReceiptRule", (second, mail.destroy))
    nothing_left()


def test_a_set_made_by_another_stack_meanwhile_is_used(aws_rules, stacks):
    """CreateReceiptRuleSet answered AlreadyExists (a run without the account's lease made it): adopted."""
    aws_rules(made_meanwhile("ses", "CreateReceiptRuleSet", "RuleSetName", SHARED))
    ctx = context(stacks["orders"])
    mail.ensure(ctx)
    assert active_rules() == ["orders-acm-approval"]
    assert "was made by another stack meanwhile" in printed(ctx)


@pytest.mark.iam  # AWS's managed AmazonAPIGatewayPushToCloudWatchLogs
def test_the_api_gateway_logging_role_is_claimed_under_the_account_lease(stacks):
    """The other account-wide thing: a claim waits while another run holds the account's lease on it."""
    from provision import lease
    from provision.aws import apigateway_account

    holder = context(stacks["orders"])
    with lease.account_held(holder, holder.region, apigateway_account.LEASE, "test: another stack's release"):
        claim = in_thread("eu", apigateway_account.claim, stacks["eu"])
        deadline = time.monotonic() + 30  # the claim reaches the lease after its reads (seconds on a loaded machine)
        while "the account's lease on apigateway-logging-role" not in printed(claim.ctx) and claim.is_alive() \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert claim.is_alive()
        assert boto3.client("apigateway", region_name=holder.region).get_account().get("cloudwatchRoleArn") is None
    finish(claim)
    setting = boto3.client("apigateway", region_name=holder.region).get_account()["cloudwatchRoleArn"]
    assert setting.endswith(f"role/{apigateway_account.role_name(holder.region)}")
    assert "the account's lease on apigateway-logging-role" in printed(claim.ctx)
