"""The lease under fire (issue 29 items 3, 4, 6, 7; issue 24's lease items; issue 27's order of its calls):
a run that cannot prove it holds its lease stops changing AWS, a holder of this machine whose process is gone
is taken over at once, an item's fields are data, a bad item is named with how to clear it (unlock), and the
first run in a region waits out DescribeTable's not-found right after CreateTable."""
import os
import subprocess
import threading
import time

import boto3
import pytest

from provision import lease
from provision.clients import is_changing
from provision.errors import LeaseLost, LockedError
from tests import aws_rules as rules
from tests.support import Run, aws_error, printed, quiet_context

LEASE_CALLS = ("PutItem", "UpdateItem", "DeleteItem", "CreateTable")
HOSTILE = "ci\n[bold]error:[/bold] forged \x1b]0;pwned\x07\x1b[2J"  # a newline, a title escape, clear screen, markup


def dynamodb(region="eu-west-1"):
    return boto3.client("dynamodb", region_name=region)


def item(stack="demo", region="eu-west-1"):
    found = dynamodb(region).get_item(TableName=lease.TABLE, Key={"stack": {"S": stack}}, ConsistentRead=True)
    return found.get("Item", {})


def make_table(cfg):
    with lease.held(quiet_context(cfg), "deploy"):
        pass


def put(fields, stack="demo"):
    dynamodb().put_item(TableName=lease.TABLE, Item={"stack": {"S": stack}, **fields})


def dead_process() -> tuple[int, str]:
    """A pid of this machine and the start time it had, its process since gone."""
    proc = subprocess.Popen(["sleep", "60"])
    started = lease.process_started(proc.pid)
    proc.kill()
    proc.wait()
    assert started and lease.process_started(proc.pid) is None
    return proc.pid, started


@pytest.fixture
def lost_seen(monkeypatch):
    """An Event set once the run's lease is found lost (the renewer's verdict), for hooks to wait on."""
    seen = threading.Event()
    lose = lease._Lease._lose

    def losing(self, why):
        lose(self, why)
        seen.set()

    monkeypatch.setattr(lease._Lease, "_lose", losing)
    return seen


def after_first(session, event, action):
    """Run ``action`` once, right after the first answer of ``event`` (after-call.<service>.<Operation>)."""
    done = []

    def hook(**_):
        if not done:
            done.append(event)
            action()

    session.events.register(f"after-call.{event}", hook)
    return done


def answered_once_lost(session, lost_seen) -> list[str]:
    """The changing calls, not the lease's own, sent once the lease was found lost and answered by AWS."""
    sent_lost = []

    def before(model, context, **_):
        context["sent once lost"] = lost_seen.is_set()

    def after(model, context, **_):
        if context.get("sent once lost") and is_changing(model.name) and model.name not in LEASE_CALLS:
            sent_lost.append(model.name)

    session.events.register("before-call", before)
    session.events.register("after-call", after)
    return sent_lost


# -- a run that loses its lease stops changing AWS (items 3 and 4) ---------------------------------

@pytest.mark.iam
@pytest.mark.parametrize("how", ["taken over by another machine", "table deleted", "removed with unlock"])
def test_a_run_that_loses_its_lease_changes_nothing_more_and_exits_1(load_seeded, lost_seen, how):
    cfg = load_seeded({"lease": {"expiry_s": 5}})
    session = boto3.Session()

    def lose_it():
        if how == "taken over by another machine":
            put({"token": {"S": "other"}, "who": {"S": "ci"}, "where": {"S": "elsewhere pid 7"},
                 "command": {"S": "teardown"}, "since": {"S": "now"}, "expires": {"N": str(int(time.time()) + 60)}})
        elif how == "table deleted":
            dynamodb().delete_table(TableName=lease.TABLE)
        else:
            dynamodb().delete_item(TableName=lease.TABLE, Key={"stack": {"S": "demo"}})
        assert lost_seen.wait(30)  # the renewer's next try finds it (every expiry_s / 3)

    after_first(session, "iam.CreateRole", lose_it)
    sent_lost = answered_once_lost(session, lost_seen)
    run = Run("deploy", cfg.path, session=session)
    assert run.code == 1, run.text
    errors = [line for line in run.text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "this run stopped before its next change" in errors[0], run.text
    assert "run the same command again" in errors[0] and "run the same command again to continue" not in run.text
    assert sent_lost == []
    if how == "taken over by another machine":
        assert item()["token"]["S"] == "other"  # the new holder's lease is left alone
    if how == "table deleted":
        assert lease.TABLE not in dynamodb().list_tables()["TableNames"]  # never made again mid-run


def test_renewals_that_keep_failing_lose_the_lease_before_it_can_lapse(load_seeded, lost_seen, aws_rules):
    cfg = load_seeded({"lease": {"expiry_s": 5}})
    aws_rules(rules.Rule("renewal refused", "an operator policy without dynamodb:UpdateItem",
                         rules.operation("dynamodb", "UpdateItem"),
                         rules.fail_with("AccessDeniedException", "not authorized to perform dynamodb:UpdateItem")))
    ctx = quiet_context(cfg)
    with lease.held(ctx, "deploy"):
        assert lost_seen.wait(30)
        assert ctx.clients.lost and "could not be renewed in time (UpdateItem: AccessDeniedException" in ctx.clients.lost
        with pytest.raises(LeaseLost):
            ctx.change("create", "a thing", lambda: None)
        with pytest.raises(LeaseLost):  # a read any caller may make: refused by the run, not by IAM
            ctx.client("sts").get_caller_identity()


# -- a crash on this machine resumes at once (issue 24) -------------------------------------------

class Crash(BaseException):
    """The process dies here: nothing after it runs, the lease is not given back."""


@pytest.mark.iam
@pytest.mark.parametrize("crash_at", [1, 4, 12])
def test_a_rerun_right_after_a_crash_on_this_machine_takes_the_lease_over_at_once(load_seeded, monkeypatch,
                                                                                  crash_at):
    cfg = load_seeded()
    session = boto3.Session()
    changes = []

    def crash(model, **_):
        if is_changing(model.name) and model.name not in LEASE_CALLS:
            changes.append(model.name)
            if len(changes) == crash_at:
                raise Crash(model.name)

    session.events.register("before-call", crash)
    give_back = lease._Lease.give_back
    monkeypatch.setattr(lease._Lease, "give_back", lambda self: self.stop.set())  # a dead process gives nothing back
    with pytest.raises(Crash):
        Run("deploy", cfg.path, session=session)
    monkeypatch.setattr(lease._Lease, "give_back", give_back)
    pid, started = dead_process()  # the crashed run's item, as its dead process left it
    dynamodb().update_item(TableName=lease.TABLE, Key={"stack": {"S": "demo"}},
                           UpdateExpression="SET pid = :p, started = :s",
                           ExpressionAttributeValues={":p": {"N": str(pid)}, ":s": {"S": started}})
    assert float(item()["expires"]["N"]) > time.time() + 30  # it has not lapsed

    run = Run("deploy", cfg.path)
    assert run.code == 0, run.text
    assert f"took over stack demo's lease from {lease.socket.gethostname()} pid" in run.text
    assert "that process on this machine is gone" in run.text and "held by another run" not in run.text
    assert item() == {}
    again = Run("deploy", cfg.path)
    assert again.code == 0 and again.changing == ["PutItem", "DeleteItem"], again.changing  # converged


@pytest.mark.parametrize("holder", ["another machine", "this machine, its process alive",
                                    "this machine, its pid reused"])
def test_a_live_or_distant_holder_is_not_taken_over(cfg, holder):
    make_table(cfg)
    pid, started, machine = 1, "1", lease.this_machine()
    if holder == "another machine":
        machine = "elsewhere/" + machine
    elif holder == "this machine, its process alive":
        pid, started = os.getpid(), lease.process_started(os.getpid())
    else:  # the pid is a live process, but not the holder: it started at another time
        pid, started = os.getpid(), "1"
    put({"token": {"S": "theirs"}, "expires": {"N": str(int(time.time()) + 60)}, "machine": {"S": machine},
         "pid": {"N": str(pid)}, "started": {"S": started}, "where": {"S": f"host pid {pid}"}})
    if holder == "this machine, its pid reused":
        with lease.held(quiet_context(cfg), "deploy"):
            assert item()["token"]["S"] != "theirs"
        return
    with pytest.raises(LockedError, match="is held by"):
        with lease.held(quiet_context(cfg), "deploy"):
            pass
    assert item()["token"]["S"] == "theirs"


# -- the item's fields are data (item 6); a bad item is named, with how to clear it (item 7) ----------------

def test_a_holders_fields_reach_the_terminal_escaped(load_seeded):
    cfg = load_seeded()
    make_table(cfg)
    put({"token": {"S": "theirs"}, "who": {"S": HOSTILE}, "where": {"S": HOSTILE}, "command": {"S": HOSTILE},
         "since": {"S": HOSTILE}, "expires": {"N": str(int(time.time()) + 600)}})
    run = Run("deploy", cfg.path)
    assert run.code == 1
    lines = run.text.splitlines()
    assert len([line for line in lines if line.startswith("error:")]) == 1, run.text
    assert "\x1b" not in run.text and "\x07" not in run.text
    assert "[bold]error:[/bold] forged" in run.text and "\\x1b]0;pwned\\x07" in run.text


@pytest.mark.parametrize("bad", [
    {"token": {"S": "t"}},  # no expires
    {"token": {"S": "t"}, "expires": {"S": "tomorrow"}},  # expires of the wrong type
    {"token": {"N": "5"}, "expires": "live"},  # token of the wrong type
    {"expires": "live"},  # no token
])
def test_a_bad_item_is_named_with_how_to_clear_it_and_is_not_waited_for(cfg, bad):
    make_table(cfg)
    put({k: {"N": str(int(time.time()) + 600)} if v == "live" else v for k, v in bad.items()})
    for wait in (False, True):
        ctx = quiet_context(cfg)
        with pytest.raises(LockedError, match="an item that is not a lease") as caught:
            with lease.held(ctx, "deploy", wait=wait):
                pass
        assert "rds-edge-api unlock --stack demo --region eu-west-1" in str(caught.value)
        assert ctx.sleep == []  # --wait does not wait for what never lapses
    found = lease.holder(dynamodb(), "demo")
    assert found is not None and found.problem  # list shows it as bad, not free


def test_an_expiry_beyond_the_longest_lease_counts_as_lapsed(cfg):
    make_table(cfg)
    put({"token": {"S": "t"}, "where": {"S": "x pid 1"}, "expires": {"N": "9" * 126}})
    assert lease.holder(dynamodb(), "demo") is None
    ctx = quiet_context(cfg)
    with lease.held(ctx, "deploy"):
        assert item()["token"]["S"] != "t"
    assert ctx.sleep == []


# -- unlock, as terraform force-unlock -------------------------------------------------------------

def unlock(*args, session=None):
    from provision import cli
    from tests.support import quiet_output

    out = quiet_output()
    code = cli.main(["unlock", "--stack", "demo", *args], session=session or boto3.Session(), out=out)
    return code, out.console.file.getvalue()


def test_unlock_shows_the_holder_escaped_and_removes_the_lease(cfg, monkeypatch):
    make_table(cfg)
    put({"token": {"S": "theirs"}, "who": {"S": HOSTILE}, "where": {"S": "gone pid 9"}, "command": {"S": "deploy"},
         "since": {"S": "then"}, "expires": {"N": str(int(time.time()) + 600)}})
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)

    def closed(prompt):
        raise EOFError

    monkeypatch.setattr("builtins.input", closed)
    code, text = unlock("--region", "eu-west-1")
    assert code == 2 and "unlock cancelled; nothing was changed" in text and item()
    assert "\x1b" not in text and "[bold]error:[/bold] forged" in text
    code, text = unlock("--region", "eu-west-1", "--yes")
    assert code == 0 and "removed demo's lease" in text, text
    assert item() == {}
    code, text = unlock("--region", "eu-west-1", "--yes")
    assert code == 0 and "nothing to remove" in text


def test_unlock_clears_a_bad_item_and_keeps_a_lease_taken_meanwhile(cfg):
    make_table(cfg)
    put({"token": {"S": "t"}})  # no expires: never lapses
    assert unlock("--region", "eu-west-1", "--yes")[0] == 0 and item() == {}

    put({"token": {"S": "old"}, "expires": {"N": str(int(time.time()) + 600)}})
    session = boto3.Session()

    def another_run_takes_it(**_):
        put({"token": {"S": "new"}, "expires": {"N": str(int(time.time()) + 600)}})

    session.events.register("before-call.dynamodb.DeleteItem", another_run_takes_it)
    code, text = unlock("--region", "eu-west-1", "--yes", session=session)
    assert code == 1 and "nothing was removed" in text
    assert item()["token"]["S"] == "new"


# -- the first run in a region (issue 24), and the order of the lease's calls (issue 27) -----------

def test_describe_table_not_found_right_after_create_table_is_waited_out(cfg, aws_rules):
    """"If you issue a DescribeTable request immediately after a CreateTable request, DynamoDB might return a
    ResourceNotFoundException" (DynamoDB API reference, DescribeTable)."""
    created = []

    def answer(call):
        if call.operation == "CreateTable":
            created.append(call.send())
            return created[-1]
        if created and len([c for c in not_yet.seen if c.operation == "DescribeTable"]) <= 3:
            raise aws_error("DescribeTable", "ResourceNotFoundException", "Requested resource not found")
        return call.send()

    not_yet = rules.Rule("new table not yet seen", "DynamoDB API reference, DescribeTable",
                         rules.operation("dynamodb", "CreateTable", "DescribeTable"), answer)
    aws_rules(not_yet)
    ctx = quiet_context(cfg)
    with lease.held(ctx, "deploy"):
        assert item()["command"]["S"] == "deploy"
    assert "waiting for DynamoDB table rds-edge-api-leases (eu-west-1) to become ACTIVE" in printed(ctx)


def test_the_lease_is_taken_with_its_write_first_and_the_table_looked_at_only_when_missing(cfg):
    session = boto3.Session()
    calls = []
    session.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    with lease.held(quiet_context(cfg, session=session), "deploy"):
        pass
    assert calls[:4] == ["PutItem", "DescribeTable", "CreateTable", "DescribeTable"], calls
    calls.clear()
    with lease.held(quiet_context(cfg, session=session), "deploy"):
        pass
    assert calls == ["PutItem", "DeleteItem"]


def test_teardown_does_not_make_the_lease_table(cfg):
    run = Run("teardown", cfg.path, "--yes")
    assert run.code == 0, run.text
    assert lease.TABLE not in dynamodb().list_tables()["TableNames"]
    assert "CreateTable" not in run.calls
