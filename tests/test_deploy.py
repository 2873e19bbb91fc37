"""The whole stack through the commands' entry point: deploy, re-deploy, change, plan, teardown."""
import io
import json
import stat

import boto3
import pytest

from tests.support import SECRETS, Run, aws_error, expected, inventory, kinds

pytestmark = pytest.mark.iam

ALERTS = {"alerts": {"email": "ops@example.com"}}


def first_kind(found, prefix):
    return [f for f in found if f.startswith(prefix)]


@pytest.fixture
def stack(load_seeded, hosted_zone, write_config):
    """(config, path) for a DNS-validated stack whose records go to the test zone, with alerts."""
    overrides = {"domain": {"hosted_zone_id": hosted_zone}, **ALERTS}
    cfg = load_seeded(overrides)
    return cfg, write_config(overrides)


def test_full_deploy_builds_every_resource_once(stack):
    cfg, path = stack
    run = Run("deploy", path)
    assert run.code == 0, run.text
    found = inventory(cfg)
    assert kinds(found) == expected(cfg)
    assert len(first_kind(found, "distribution")) == 1
    assert "Outputs" in run.text and "https://api.example.com/items" in run.text
    assert 'curl -H "Authorization: $TEST_AUTHORIZATION"' in run.text
    assert run.text.rstrip().splitlines()[-1].endswith("changing)")


def test_secrets_never_reach_output_or_state(stack):
    cfg, path = stack
    run = Run("deploy", path)
    state_file = cfg.state_dir / "demo.json"
    api_key_id = json.loads(state_file.read_text())["resources"]["api"]["api_key_id"]
    key_value = boto3.client("apigateway", region_name="eu-west-1").get_api_key(
        apiKey=api_key_id, includeValue=True)["value"]
    for secret in (*SECRETS.values(), key_value):
        assert secret not in run.text
        assert secret not in state_file.read_text()
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600


def test_second_deploy_makes_no_changing_call(stack):
    cfg, path = stack
    assert Run("deploy", path).code == 0
    again = Run("deploy", path)
    assert again.code == 0
    assert again.text.rstrip().endswith("(0 changing)")
    assert "created" not in again.text and "updated" not in again.text


def test_changed_columns_touch_only_the_function(stack, write_config, hosted_zone):
    cfg, path = stack
    assert Run("deploy", path).code == 0
    changed = write_config({"domain": {"hosted_zone_id": hosted_zone}, **ALERTS,
                            "database": {"columns": ["order_id", "total"]}})
    calls = []
    session = boto3.Session()
    session.events.register("before-call", lambda model, **_: calls.append(model.name)
                            if model.service_model.service_name != "dynamodb" else None)  # the lease's own
    run = Run("deploy", changed, session=session)
    assert run.code == 0
    changing = [c for c in calls if not c.startswith(("Get", "List", "Describe", "Head"))]
    assert changing == ["UpdateFunctionConfiguration"]
    assert run.text.rstrip().endswith("(1 changing)")


def test_plan_changes_nothing_and_says_what_it_would_do(stack):
    cfg, path = stack
    plan = Run("deploy", path, "--plan")
    assert plan.code == 0, plan.text
    assert plan.text.rstrip().endswith("(0 changing)")
    assert "would create Lambda function demo-api" in plan.text
    assert "would create REST API demo" in plan.text
    capacity = " ".join(plan.text.split())  # the table wraps long values
    assert "one caller stops first at the per-caller limit (6.7/s), all callers at the usage plan (10.0/s)" in capacity
    assert "the database 64 connections (db.t4g.micro), the function holds at most 10" in capacity
    assert inventory(cfg) == []
    assert not (cfg.state_dir / "demo.json").exists()


def test_plan_after_a_change_names_the_drift(stack, write_config, hosted_zone):
    cfg, path = stack
    assert Run("deploy", path).code == 0
    changed = write_config({"domain": {"hosted_zone_id": hosted_zone}, **ALERTS, "api": {"throttle_rate": 3}})
    plan = Run("deploy", changed, "--plan")
    assert "would change: usage plan demo: /throttle/rateLimit" in plan.text
    assert plan.text.rstrip().endswith("(0 changing)")


def test_teardown_leaves_nothing_tagged_in_any_region(stack):
    cfg, path = stack
    assert Run("deploy", path).code == 0
    down = Run("teardown", path, "--yes")
    assert down.code == 0, down.text
    assert inventory(cfg) == []
    assert not (cfg.state_dir / "demo.json").exists()
    again = Run("teardown", path, "--yes")
    assert again.code == 0 and again.text.rstrip().endswith("(0 changing)")


def test_email_validation_stack_with_mail_in_another_region(load_seeded, hosted_zone, write_config):
    overrides = {"domain": {"hosted_zone_id": hosted_zone, "validation": "email", "mail_region": "us-west-2"}}
    cfg = load_seeded(overrides)
    path = write_config(overrides)
    run = Run("deploy", path)
    assert run.code == 0, run.text
    found = inventory(cfg)
    assert any(f.startswith("bucket demo-mail-") for f in found), found
    assert "dns MX api.example.com." in found  # kept beside the alias records: renewal mail needs it
    assert any(f.startswith("dns A api.example.com.") for f in found)
    again = Run("deploy", path)
    assert again.code == 0 and again.text.rstrip().endswith("(0 changing)"), again.text
    assert Run("teardown", path, "--yes").code == 0
    assert inventory(cfg) == []


def test_teardown_without_a_terminal_needs_yes(stack, monkeypatch):
    cfg, path = stack
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    run = Run("teardown", path)
    assert run.code == 2
    assert "--yes" in run.text


def test_an_aws_failure_is_one_line_naming_the_step(stack):
    cfg, path = stack
    session = boto3.Session()

    def deny(**_):
        raise aws_error("CreateRole", "AccessDenied", "not allowed to iam:CreateRole")

    session.events.register("before-call.iam.CreateRole", deny)
    run = Run("deploy", path, session=session)
    assert run.code == 1
    error = [line for line in run.text.splitlines() if line.startswith("error:")]
    assert error == ["error: IAM role: CreateRole: AccessDenied: not allowed to iam:CreateRole"]
    assert "Traceback" not in run.text


def test_a_held_lock_stops_a_second_run(stack):
    import subprocess
    import sys
    cfg, path = stack
    holds = ("import sys, time; from pathlib import Path; from provision.lock import stack_lock\n"
             "with stack_lock(Path(sys.argv[1]), 'deploy'):\n    print('held', flush=True); time.sleep(60)")
    other = subprocess.Popen([sys.executable, "-c", holds, str(cfg.state_dir / "demo.lock")], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        run = Run("deploy", path)
        assert run.code == 1
        assert f"pid {other.pid}" in run.text and "holds the lock" in run.text
        assert inventory(cfg) == []
    finally:
        other.kill()
        other.wait()
