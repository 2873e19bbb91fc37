"""The README's first command: the example stack deployed into the embedded emulator, no AWS account."""
import io
import os

import pytest
from rich.console import Console

from provision import cli
from provision.output import Output

EXAMPLE = "stack.example.toml"


@pytest.fixture
def example_secrets(monkeypatch):
    monkeypatch.setenv("RDS_EDGE_DB_PASSWORD", "local-password-NEVER-SHOWN")
    monkeypatch.setenv("RDS_EDGE_AUTHORIZATION", "Bearer local-NEVER-SHOWN")


def run(command, *args):
    out = Output(Console(file=io.StringIO(), width=250, force_terminal=False))
    code = cli.main([command, "--config", EXAMPLE, "--local", *args], out=out)
    return code, out.console.file.getvalue()


def test_deploy_local_builds_the_example_stack_and_prints_outputs(example_secrets):
    endpoint_before = os.environ.get("AWS_ENDPOINT_URL")
    code, text = run("deploy")
    assert code == 0, text
    assert "AWS emulator (moto) at http://127.0.0.1:" in text
    for title in ("Mail for certificate approval", "Certificate request", "IAM role", "Security groups",
                  "Lambda function", "API Gateway", "WAF web ACL", "CloudFront distribution"):
        assert f"created  {title}" in text
    assert "https://api.example.com/items" in text and "$RDS_EDGE_AUTHORIZATION" in text
    assert "NEVER-SHOWN" not in text
    assert os.environ.get("AWS_ENDPOINT_URL") == endpoint_before  # the emulator leaves no trace
    assert not os.path.exists(".state/orders-api.json")  # local state lives in a temporary directory


def test_plan_local_changes_nothing(example_secrets):
    code, text = run("deploy", "--plan")
    assert code == 0, text
    assert "would create Lambda function orders-api-api" in text
    assert text.rstrip().endswith("(0 changing)")


def test_teardown_local_removes_what_it_deployed(example_secrets):
    code, text = run("teardown")
    assert code == 0, text
    for title in ("CloudFront distribution", "WAF web ACL", "API Gateway", "Lambda function", "Security groups",
                  "IAM role", "Certificate request", "Mail for certificate approval"):
        assert f"deleted  {title}" in text
