"""The stack's lease in the account (DynamoDB, conditional writes): one run at a time across machines."""
import os
import threading
import time

import boto3
import pytest

from provision import config as config_module, lease
from provision.errors import LockedError
from provision.steps import mail
from tests.support import merged, printed, quiet_context, write_toml


def item(stack="demo"):
    found = boto3.client("dynamodb", region_name="eu-west-1").get_item(
        TableName=lease.TABLE, Key={"stack": {"S": stack}}, ConsistentRead=True)
    return {k: v.get("S", v.get("N")) for k, v in found.get("Item", {}).items()}


def test_a_lease_is_held_with_its_owner_and_given_back(cfg):
    ctx = quiet_context(cfg)
    with lease.held(ctx, "deploy"):
        held = item()
        assert held["command"] == "deploy" and f"pid {os.getpid()}" in held["where"]
        assert "arn:aws:sts::123456789012:" in held["who"] and "(user " in held["who"]
        assert held["since"].endswith("Z") and float(held["expires"]) > time.time() + 50
        assert ctx.clients.calls.changing == 0  # the lease is bookkeeping, not a change to the stack
    assert item() == {}
    dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
    table = dynamodb.describe_table(TableName=lease.TABLE)["Table"]
    tags = dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"managed-by": "rds-edge-api", "shared": "all stacks"}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_a_second_run_names_the_holder_and_a_lapsed_lease_is_taken_over(cfg):
    with lease.held(quiet_context(cfg), "teardown"):
        with pytest.raises(LockedError, match=rf"held by .* on .* pid {os.getpid()} \(teardown, since"):
            with lease.held(quiet_context(cfg), "deploy"):
                pass
    dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
    dynamodb.put_item(TableName=lease.TABLE, Item={  # a crashed run's lease, lapsed a second ago
        "stack": {"S": "demo"}, "token": {"S": "crashed"}, "who": {"S": "ci"}, "where": {"S": "runner pid 1"},
        "command": {"S": "deploy"}, "since": {"S": "earlier"}, "expires": {"N": str(int(time.time()) - 1)}})
    with lease.held(quiet_context(cfg), "deploy"):
        assert item()["token"] != "crashed"
    assert item() == {}


def test_stacks_named_as_prefixes_hold_their_own_leases(load_seeded):
    cfg = load_seeded()
    other = config_module.load(write_toml(cfg.path.with_name("eu.toml"), merged({"stack": {"name": "demo-eu"}})))
    with lease.held(quiet_context(cfg), "deploy"), lease.held(quiet_context(other), "deploy"):
        assert item("demo")["command"] == item("demo-eu")["command"] == "deploy"


def test_the_lease_is_renewed_while_the_run_lasts(load_seeded):
    cfg = load_seeded({"lease": {"expiry_s": 5}})
    ctx = quiet_context(cfg)
    with lease.held(ctx, "deploy"):
        first = float(item()["expires"])
        time.sleep(3.5)  # two renewals (every 5/3 s), real time: the renewer is a thread with the real clock
        assert float(item()["expires"]) > first
    assert "lapses 5s after" in printed(ctx)


def test_the_wait_option_waits_for_the_holder(load_seeded):
    cfg = load_seeded({"lease": {"expiry_s": 5}})
    dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
    with lease.held(quiet_context(cfg), "deploy"):
        pass  # makes the table
    dynamodb.put_item(TableName=lease.TABLE, Item={
        "stack": {"S": "demo"}, "token": {"S": "other"}, "expires": {"N": str(int(time.time()) + 3600)}})
    ctx = quiet_context(cfg)
    slept = []

    def holder_finishes(seconds):  # the injected sleep: the other run gives its lease back meanwhile
        slept.append(seconds)
        dynamodb.delete_item(TableName=lease.TABLE, Key={"stack": {"S": "demo"}})

    ctx.sleep = holder_finishes
    with lease.held(ctx, "deploy", wait=True):
        assert item()["command"] == "deploy"
    assert len(slept) == 1


@pytest.mark.parametrize("value", [0, 4, 3601])
def test_expiry_is_checked(write_config, value):
    with pytest.raises(config_module.ConfigError, match="lease.expiry_s"):
        config_module.load(write_config({"lease": {"expiry_s": value}}))


def account_item(name, region="us-east-1"):
    found = boto3.client("dynamodb", region_name=region).get_item(
        TableName=lease.TABLE, Key={"stack": {"S": f"account:{name}"}}, ConsistentRead=True)
    return {k: v.get("S", v.get("N")) for k, v in found.get("Item", {}).items()}


def test_an_account_lease_is_waited_for_by_a_second_holder_then_taken(email_cfg):
    """Two runs editing one account-wide thing (two threads): the second waits, saying for what, and gets the
    lease once the first gives it back; the table is made in the region asked for (the mail region: a stack
    that receives mail, whose policy grants the lease table there)."""
    cfg = email_cfg
    shared = mail.SHARED_LEASE  # the mail step's own lease: the policy grants the item by its key
    first_in, first_out, order = threading.Event(), threading.Event(), []
    first, second = quiet_context(cfg), quiet_context(cfg)

    def hold_first():
        with lease.account_held(first, "us-east-1", shared, "edit the shared rule set"):
            order.append("first in")
            first_in.set()
            assert first_out.wait(30)
            order.append("first out")

    def second_sleeps(seconds):  # the second run's poll: the first lets go meanwhile
        first_out.set()
        thread.join(30)

    thread = threading.Thread(target=hold_first)
    thread.start()
    assert first_in.wait(30)
    second.sleep = second_sleeps
    with lease.account_held(second, "us-east-1", shared, "edit the shared rule set"):
        order.append("second in")
        assert account_item(shared)["command"] == "stack demo: edit the shared rule set"
    assert order == ["first in", "first out", "second in"]
    assert account_item(shared) == {}
    assert f"waiting for the account's lease on {shared} (edit the shared rule set" in printed(second)
    assert lease.TABLE in boto3.client("dynamodb", region_name="us-east-1").list_tables()["TableNames"]


def test_a_crashed_holders_lapsed_account_lease_is_taken_over_at_once(email_cfg):
    cfg = email_cfg  # leases in us-east-1, the mail region, which its policy grants
    ctx = quiet_context(cfg)
    with lease.account_held(ctx, "us-east-1", "apigateway-logging-role", "set the logging role"):
        pass  # makes the table
    boto3.client("dynamodb", region_name="us-east-1").put_item(TableName=lease.TABLE, Item={
        "stack": {"S": "account:apigateway-logging-role"}, "token": {"S": "crashed"}, "who": {"S": "ci"},
        "where": {"S": "runner pid 1"}, "command": {"S": "deploy"}, "since": {"S": "earlier"},
        "expires": {"N": str(int(time.time()) - 1)}})
    ctx = quiet_context(cfg)
    with lease.account_held(ctx, "us-east-1", "apigateway-logging-role", "set the logging role"):
        assert account_item("apigateway-logging-role")["token"] != "crashed"
    assert ctx.sleep == []  # not waited for
    assert account_item("apigateway-logging-role") == {}
