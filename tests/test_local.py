"""The README's first command: the example stack deployed into the embedded emulator, no AWS account."""
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from tests.mariadb import listening_port
from tests.support import EXAMPLE, Run


@pytest.fixture
def example_secrets(monkeypatch):
    monkeypatch.setenv("RDS_EDGE_DB_PASSWORD", "local-password-NEVER-SHOWN")
    monkeypatch.setenv("RDS_EDGE_AUTHORIZATION", "Bearer local-NEVER-SHOWN")


def test_deploy_local_builds_the_example_stack_and_prints_outputs(example_secrets):
    endpoint_before = os.environ.get("AWS_ENDPOINT_URL")
    code, text = Run("deploy", EXAMPLE, "--local")
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
    code, text = Run("deploy", EXAMPLE, "--local", "--plan")
    assert code == 0, text
    assert "would create Lambda function orders-api-api" in text
    assert text.rstrip().endswith("(0 changing)")


def test_teardown_local_removes_what_it_deployed_and_says_what_each_phase_does(example_secrets):
    """One `teardown --local` for both checks (two tests ran the identical command)."""
    code, text = Run("teardown", EXAMPLE, "--local")
    assert code == 0, text
    for title in ("CloudFront distribution", "WAF web ACL", "API Gateway", "Lambda function", "Security groups",
                  "IAM role", "Certificate request", "Mail for certificate approval"):
        assert f"deleted  {title}" in text
    deploying = text.index("Deploying stack orders-api into the empty emulator first")
    tearing = text.index("Tearing down stack orders-api")
    assert deploying < text.index("created  CloudFront distribution") < tearing < text.index("deleted  CloudFront")


def test_local_makes_throwaway_secrets_when_none_are_set(monkeypatch):
    for name in ("RDS_EDGE_DB_PASSWORD", "RDS_EDGE_AUTHORIZATION"):
        monkeypatch.delenv(name, raising=False)
    code, text = Run("deploy", EXAMPLE, "--local")
    assert code == 0, text
    # the example config signs in with IAM, so the Authorization value is its only secret
    assert "RDS_EDGE_AUTHORIZATION not set: throwaway values made for this run only" in text
    assert "Bearer local-" not in text
    assert "RDS_EDGE_DB_PASSWORD" not in os.environ and "RDS_EDGE_AUTHORIZATION" not in os.environ


def test_local_keeps_the_operators_secrets_when_set(example_secrets):
    code, text = Run("deploy", EXAMPLE, "--local", "--plan")
    assert code == 0 and "throwaway" not in text


def test_serve_once_checks_every_wall_and_removes_its_files(monkeypatch):
    for name in ("RDS_EDGE_DB_PASSWORD", "RDS_EDGE_AUTHORIZATION"):
        monkeypatch.delenv(name, raising=False)
    code, text = Run("deploy", EXAMPLE, "--local", "--serve", "--once", "--port", str(listening_port()))
    assert code == 0, text
    # the example deploys DB_AUTH=iam, DB_TLS=verify: the local function verified the local MariaDB's
    # certificate and signed in with the stand-in password, or key 42 would not have answered 200
    assert "every wall holds" in text
    assert "throwaway password: IAM database authentication is RDS's own" in text
    allowed = re.search(r"\n +curl -i -H @(\S+) -H 'X-Forwarded-For: 203\.0\.113\.10' "
                        r"'http://127\.0\.0\.1:\d+/items\?key=42'\n", text)
    blocked = re.search(r"\n +curl -i -H @\S+ -H 'X-Forwarded-For: (?!203\.0\.113\.10)(\S+)'", text)
    assert allowed and blocked and blocked.group(1) == "198.51.100.77", text
    assert not os.path.exists(allowed.group(1))  # the throwaway Authorization's header file is gone
    assert "Bearer local-" not in text


def test_verify_local_deploys_serves_and_checks(example_secrets):
    code, text = Run("verify", EXAMPLE, "--local")
    assert code == 0, text
    assert "into the empty emulator first" in text and "every wall holds" in text
    assert "NEVER-SHOWN" not in text


@pytest.fixture
def no_emulator(monkeypatch):
    """The emulator must not start: a usage error is judged from the flags alone."""
    from provision.local import emulator

    def start(*_):
        raise AssertionError("the emulator started before the flags were checked")
    monkeypatch.setattr(emulator, "start", start)


SERVE_USAGE = "--serve needs --local and no --plan: it serves what was deployed into the emulator"
WITH_SERVE = "--once and --port go with --serve"


@pytest.mark.parametrize("args, problem", [
    (["--local", "--plan", "--serve"], SERVE_USAGE), (["--local", "--once"], WITH_SERVE),
    (["--local", "--port", "9000"], WITH_SERVE), (["--serve"], SERVE_USAGE),
    (["--local", "--serve", "--port", "65535"], "--port 65535: choose a port between 1 and 65534")])
def test_serve_options_are_one_line_usage_errors_before_the_emulator_starts(example_secrets, no_emulator,
                                                                            args, problem):
    code, text = Run("deploy", EXAMPLE, *args)
    assert code == 2
    assert problem in text and text.strip().count("\n") == 0, text


def test_serving_runs_until_ctrl_c_then_removes_mariadb(short_tmp_path):
    """The command as typed: curl-able until SIGINT, then exit 0 with the database's files gone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RDS_EDGE_", "AWS_ENDPOINT"))}
    env["TMPDIR"] = str(short_tmp_path)
    port = listening_port()
    proc = subprocess.Popen([sys.executable, "deploy.py", "--config", EXAMPLE, "--local", "--serve", "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Serving until Ctrl-C" in line:
                break
        text = "".join(lines)
        header = re.search(r"curl -i -H @(\S+)", text).group(1)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/items?key=7",
                                         headers={"X-Forwarded-For": "203.0.113.10",
                                                  "Authorization": open(header).read().split(": ", 1)[1].strip()})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200 and len(json.loads(response.read())["items"]) == 1
        assert any(p.name.startswith("rds-edge-mariadb-") for p in short_tmp_path.iterdir())
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, text + rest
    assert re.search(r"edge\s+203\.0\.113\.10 GET /items -> 200", rest), rest
    assert not list(short_tmp_path.iterdir())  # MariaDB's directory and the header file are removed


def test_a_port_in_use_is_one_line_and_leaves_nothing_running(example_secrets, short_tmp_path, monkeypatch):
    import socket
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(short_tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, text = Run("deploy", EXAMPLE, "--local", "--serve", "--once", "--port", str(port - 1))
    assert code == 1, text
    assert f"cannot listen on 127.0.0.1:{port}" in text and "--port" in text
    assert not [p for p in short_tmp_path.iterdir() if p.name.startswith(("rds-edge-mariadb-", "rds-edge-serve-"))]
