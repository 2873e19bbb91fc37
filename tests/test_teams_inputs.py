"""Issue 29, items 8 and 9: every wrong input one line (regions, a closed prompt), documents alone on stdout,
SIGTERM as Ctrl-C, and teardown asking before it locks, leases or makes anything."""
import json
import os
import signal
from pathlib import Path

import boto3
import pytest

from provision import cli, lease
from tests.support import Run, merged, write_toml


@pytest.fixture
def no_aws(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an AWS session was made before the region was checked")

    monkeypatch.setattr("boto3.Session", refuse)


@pytest.mark.parametrize("argv", [
    ["list", "--region", "xx-nowhere-9"],
    ["list", "--region", "EU-WEST-1"],
    ["list", "--region", ""],
    ["list", "--region", "eu-west-1", "--region", "eu-west-99"],
    ["outputs", "--stack", "shop", "--region", "xx-nowhere-9"],
    ["teardown", "--stack", "shop", "--region", "xx-nowhere-9", "--yes"],
    ["unlock", "--stack", "shop", "--region", "mars-north-1", "--yes"],
])
def test_a_region_botocore_does_not_know_is_one_line_naming_region_before_any_aws_call(argv, no_aws, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: --region ") and "is not an AWS region" in lines[0]
    if "EU-WEST-1" in argv:
        assert "lower case: eu-west-1" in lines[0]


def test_end_of_input_at_teardowns_prompt_is_no(load_seeded, monkeypatch):
    cfg = load_seeded()
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)

    def closed(prompt):
        raise EOFError

    monkeypatch.setattr("builtins.input", closed)
    run = Run("teardown", cfg.path)
    assert run.code == 2 and "teardown cancelled; nothing was changed" in run.text, run.text
    assert "Traceback" not in run.text
    assert run.changing == [] and not any(op.endswith("Table") or op.endswith("Item") for op in run.calls), run.calls
    assert lease.TABLE not in boto3.client("dynamodb", region_name="eu-west-1").list_tables()["TableNames"]


def test_teardown_asks_before_it_takes_the_lease(load_seeded, monkeypatch):
    """The prompt waits with no lease held (another machine's run is not kept waiting by an open prompt) and
    no table made: a teardown never makes the lease table."""
    cfg = load_seeded()
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    seen = []

    def answer(prompt):
        seen.append(boto3.client("dynamodb", region_name="eu-west-1").list_tables()["TableNames"])
        return "demo"

    monkeypatch.setattr("builtins.input", answer)
    run = Run("teardown", cfg.path)
    assert run.code == 0, run.text
    assert seen == [[]]  # nothing leased, no table, while asked
    assert lease.TABLE not in boto3.client("dynamodb", region_name="eu-west-1").list_tables()["TableNames"]
    assert "no lease table" in run.text


def test_policy_writes_only_the_policy_to_stdout(write_config, capsys):
    path = write_config({"access": {"authorization_env": "TEST_SHORT_VALUE"}})
    code = cli.main(["policy", "--config", str(path), "--account", "123456789012", "--vpc-id", "vpc-1",
                     "--database-group", "sg-1"])
    captured = capsys.readouterr()
    assert code == 0, captured
    assert json.loads(captured.out)["Version"] == "2012-10-17"
    assert "config warning: access.authorization_env" in captured.err


def test_outputs_json_writes_only_the_json_to_stdout(aws, capsys):
    logs = boto3.client("logs", region_name="eu-west-1")  # a stack that is not complete: outputs notes it
    logs.create_log_group(logGroupName="/aws/lambda/shop-api", tags={"managed-by": "rds-edge-api", "stack": "shop"})
    code = cli.main(["outputs", "--stack", "shop", "--region", "eu-west-1", "--json"], session=boto3.Session())
    captured = capsys.readouterr()
    assert code == 0, captured
    assert json.loads(captured.out)["stack"] == "shop"
    assert "stack shop is not complete" in captured.err


def test_outputs_region_without_stack_does_not_mention_local(capsys):
    assert cli.main(["outputs", "--region", "eu-west-1"]) == 2
    text = capsys.readouterr().out
    assert "--region goes with --stack" in text and "--local" not in text


def test_sigterm_ends_a_run_as_ctrl_c_and_gives_the_lease_back(load_seeded, tmp_path):
    """SIGTERM mid-deploy: exit 130 saying how to go on, the lease given back (not left to name a dead pid)."""
    cfg = load_seeded()
    session = boto3.Session()
    sent = []

    def terminate(model, **_):
        if model.name == "CreateRole" and not sent:
            sent.append(model.name)
            os.kill(os.getpid(), signal.SIGTERM)

    session.events.register("before-call", terminate)
    run = Run("deploy", cfg.path, session=session)
    assert sent and run.code == 130, run.text
    assert "run the same command again to continue" in run.text
    item = boto3.client("dynamodb", region_name="eu-west-1").get_item(
        TableName=lease.TABLE, Key={"stack": {"S": "demo"}}, ConsistentRead=True)
    assert "Item" not in item
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is the run's only


def test_a_config_region_unknown_to_botocore_is_a_config_error(secrets, tmp_path, capsys):
    path = write_toml(tmp_path / "stack.toml", merged({"stack": {"region": "xx-nowhere-9"}}))
    assert cli.main(["outputs", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("config error: stack.region") and "xx-nowhere-9" in err[0]


@pytest.mark.parametrize("command", ["outputs", "cost"])
def test_an_aws_profile_that_does_not_exist_is_one_line_not_a_traceback(secrets, tmp_path, capsys, monkeypatch,
                                                                        command):
    """The region check reads botocore's endpoint data only; the missing profile is named where the session
    is made, as boto3 words it (ProfileNotFound), exit 1."""
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    path = write_toml(tmp_path / "stack.toml", merged({}))
    assert cli.main([command, "--config", str(path)]) == 1
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).strip().splitlines()
    assert lines[-1] == "error: The config profile (no-such-profile) could not be found", lines
    assert "Traceback" not in captured.err


def doc_section(page: str, heading: str) -> str:
    text = (Path(__file__).resolve().parent.parent / page).read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return text[start:end if end != -1 else len(text)]


def test_the_quick_start_says_what_to_do_when_the_ca_bundle_cannot_be_downloaded(write_config, monkeypatch):
    """Where the operator meets it (step 5, deploy --plan): the error deploy prints, and the key that fixes it."""
    from provision import config as config_module
    from provision.aws import ca_bundle
    from provision.errors import DeployError

    def unreachable(url):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(ca_bundle, "fetch", unreachable)
    with pytest.raises(DeployError) as failed:
        ca_bundle.load(config_module.load(write_config()))
    quick_start = doc_section("README.md", "## Using it on your AWS account")
    assert "could not download AWS's RDS CA bundle" in str(failed.value) and \
        "could not download AWS's RDS CA bundle" in quick_start
    assert "ca_bundle = " in quick_start and ca_bundle.RDS_GLOBAL_BUNDLE_URL in quick_start


def test_the_teams_section_says_how_to_clear_a_stuck_lease():
    teams = doc_section("docs/operating.md", "## Teams: many stacks, many operators")
    assert "rds-edge-api unlock --stack" in teams and "force-unlock" in teams
