"""logs: the function's lines and WAF's records, put into moto's CloudWatch Logs, read back merged by time."""
import json
import time

import boto3
import pytest

from provision import cli
from provision.commands import logs
from tests.support import SECRETS, Run, printed, quiet_context

AUTH = SECRETS["TEST_AUTHORIZATION"]


def now_ms(offset_s: float = 0) -> int:
    return int((time.time() + offset_s) * 1000)


def put(region, group, events):
    client = boto3.client("logs", region_name=region)
    if not client.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
        client.create_log_group(logGroupName=group)
    stream = f"s{len(client.describe_log_streams(logGroupName=group)['logStreams'])}"
    client.create_log_stream(logGroupName=group, logStreamName=stream)
    client.put_log_events(logGroupName=group, logStreamName=stream,
                          logEvents=[{"timestamp": t, "message": m} for t, m in sorted(events)])


def function_line(ip, key_length, ms, outcome):
    return json.dumps({"sourceIp": ip, "keyLength": key_length, "rows": 1, "ms": ms, "outcome": outcome})


def waf_record(at, ip, action, args):
    return json.dumps({"timestamp": at, "formatVersion": 1, "action": action, "terminatingRuleId": "Default_Action",
                       "httpRequest": {"clientIp": ip, "country": "JP", "uri": "/items", "args": args,
                                       "httpMethod": "GET", "headers": [
                                           {"name": "authorization", "value": AUTH},  # were it not redacted
                                           {"name": "host", "value": "api.example.com"}]}})


@pytest.fixture
def path(aws, write_config):
    return write_config()


def seed_both():
    t = now_ms(-60)
    boto3.client("logs", region_name="eu-west-1").create_log_group(logGroupName="/aws/apigateway/demo/access")
    boto3.client("logs", region_name="us-east-1").create_log_group(logGroupName="/aws/cloudfront/demo/access")
    put("eu-west-1", "/aws/lambda/demo-api", [
        (t + 10, "START RequestId: 1 Version: $LATEST"),
        (t + 20, function_line("198.51.100.7", 5, 12.5, "ok")),
        (t + 40, function_line("198.51.100.7", None, 1.25, "bad_request")),
        (t + 60, function_line("198.51.100.7", 300, 2.0, "not_found")),
        (t + 80, function_line("198.51.100.7", 3, 3000.0, "internal")),
        (t + 90, "REPORT RequestId: 1 Duration: 12.50 ms"),
    ])
    put("us-east-1", "aws-waf-logs-demo", [
        (t + 15, waf_record(t + 15, "203.0.113.9", "ALLOW", "key=sku-1")),
        (t + 30, waf_record(t + 30, "192.0.2.66", "BLOCK", "key=abc&x=1")),
        (t + 70, waf_record(t + 70, "192.0.2.66", "BLOCK", "")),
    ])


def test_json_merges_both_sources_by_time_and_never_shows_a_secret(path):
    seed_both()
    run = Run("logs", path, "--json")
    assert run.code == 0, run.text
    rows = [json.loads(line) for line in run.text.splitlines() if line.startswith("{")]
    assert [(r["source"], r["address"], r["outcome"], r["key_length"]) for r in rows] == [
        ("waf", "203.0.113.9", "allowed by WAF", 5),
        ("function", "198.51.100.7", "200", 5),
        ("waf", "192.0.2.66", "blocked by WAF", 3),
        ("function", "198.51.100.7", "400", None),
        ("function", "198.51.100.7", "404", 300),
        ("waf", "192.0.2.66", "blocked by WAF", None),
        ("function", "198.51.100.7", "500", 3),
    ]
    assert [r["ms"] for r in rows if r["source"] == "function"] == [12.5, 1.25, 2.0, 3000.0]
    assert rows == sorted(rows, key=lambda r: r["time"])
    assert AUTH not in run.text and "sku-1" not in run.text and "authorization" not in run.text.lower()


def test_table_has_one_row_per_request(path):
    seed_both()
    run = Run("logs", path)
    assert run.code == 0
    lines = run.text.splitlines()
    assert lines[0].split() == ["time", "(UTC)", "source", "address", "outcome", "key", "length", "ms"]
    assert len(lines) == 1 + 7
    assert "blocked by WAF" in run.text and "3000.0" in run.text and AUTH not in run.text


def test_since_leaves_older_records_out(path):
    put("eu-west-1", "/aws/lambda/demo-api", [(now_ms(-7200), function_line("198.51.100.1", 1, 1, "ok")),
                                               (now_ms(-30), function_line("198.51.100.2", 2, 1, "ok"))])
    run = Run("logs", path, "--json", "--since", "1h")
    assert [json.loads(line)["address"] for line in run.text.splitlines() if line.startswith("{")] == ["198.51.100.2"]
    assert "no log group aws-waf-logs-demo in us-east-1" in run.text  # no WAF log group: the function's lines alone


def test_no_function_log_group_is_exit_1(path):
    run = Run("logs", path)
    assert run.code == 1 and "no log group /aws/lambda/demo-api" in run.text


def test_bad_since_is_a_usage_error(path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["logs", "--config", str(path), "--since", "ten minutes"])
    assert exc.value.code == 2


def test_follow_polls_until_ctrl_c_and_shows_each_record_once(aws, write_config):
    from provision import config as config_module
    cfg = config_module.load(write_config())
    put("eu-west-1", "/aws/lambda/demo-api", [(now_ms(-5), function_line("198.51.100.1", 1, 1, "ok"))])
    ctx = quiet_context(cfg)
    polls = []

    def sleep(seconds):
        polls.append(seconds)
        if len(polls) == 1:  # a request arrives between two polls
            put("eu-west-1", "/aws/lambda/demo-api", [(now_ms(), function_line("198.51.100.2", 2, 1, "not_found"))])
        elif len(polls) == 3:
            raise KeyboardInterrupt

    ctx.sleep = sleep
    with pytest.raises(KeyboardInterrupt):
        logs.show(ctx, since=600, follow=True, as_json=True)
    shown = [json.loads(line) for line in printed(ctx).splitlines() if line.startswith("{")]
    assert [(r["address"], r["outcome"]) for r in shown] == [("198.51.100.1", "200"), ("198.51.100.2", "404")]
    assert polls == [logs.POLL_SECONDS] * 3
