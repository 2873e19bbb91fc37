"""outputs: read back from AWS (not the state file), never a secret, exit 1 when not deployed."""
import json

import boto3
import pytest

from tests.support import SECRETS, Run

pytestmark = pytest.mark.iam

REQUIRED = ("url", "distribution_domain", "invoke_url", "api_key_id", "web_acl_arn", "certificate_arn",
            "function_arn", "role_arn", "lambda_security_group")


@pytest.fixture
def stack(load_seeded, hosted_zone, write_config):
    overrides = {"domain": {"hosted_zone_id": hosted_zone}}
    cfg = load_seeded(overrides)
    return cfg, write_config(overrides)


def test_not_deployed_is_exit_1_and_one_line(stack):
    cfg, path = stack
    run = Run("outputs", path, "--json")
    assert run.code == 1
    assert run.text.strip().count("\n") == 0
    assert "stack demo is not deployed" in run.text
    assert run.changing == []


def test_json_names_what_aws_holds_even_without_the_state_file(stack):
    cfg, path = stack
    assert Run("deploy", path).code == 0
    (cfg.state_dir / "demo.json").unlink()
    run = Run("outputs", path, "--json")
    assert run.code == 0, run.text
    assert run.changing == []  # a read-only pass: the plan guard would have refused any change
    got = json.loads(run.text)
    assert not any(v in (None, "", "(known after apply)") for k, v in got.items() if k in REQUIRED), got
    assert got["capacity"].startswith("one caller stops first at the per-caller limit (6.7/s)"), got

    cf = boto3.client("cloudfront", region_name="us-east-1")
    [dist] = cf.list_distributions()["DistributionList"]["Items"]
    apigw = boto3.client("apigateway", region_name="eu-west-1")
    [api] = apigw.get_rest_apis()["items"]
    [key] = apigw.get_api_keys()["items"]
    waf = boto3.client("wafv2", region_name="us-east-1")
    [acl] = waf.list_web_acls(Scope="CLOUDFRONT")["WebACLs"]
    [cert] = boto3.client("acm", region_name="us-east-1").list_certificates()["CertificateSummaryList"]
    fn = boto3.client("lambda", region_name="eu-west-1").get_function(FunctionName="demo-api")["Configuration"]
    role = boto3.client("iam").get_role(RoleName="demo-fn")["Role"]
    groups = boto3.client("ec2", region_name="eu-west-1").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["demo-lambda"]}])["SecurityGroups"]
    assert got["url"] == "https://api.example.com/items"
    assert got["distribution_domain"] == dist["DomainName"]
    assert got["invoke_url"] == f"https://{api['id']}.execute-api.eu-west-1.amazonaws.com/v1/items"
    assert got["api_key_id"] == key["id"]
    assert got["web_acl_arn"] == acl["ARN"]
    assert got["certificate_arn"] == cert["CertificateArn"]
    assert got["function_arn"] == fn["FunctionArn"]
    assert got["role_arn"] == role["Arn"]
    assert got["lambda_security_group"] == groups[0]["GroupId"]
    assert got["drift"] == []
    key_value = apigw.get_api_key(apiKey=key["id"], includeValue=True)["value"]
    for secret in (*SECRETS.values(), key_value):
        assert secret not in run.text


def test_table_and_drift_note(stack, write_config, hosted_zone):
    cfg, path = stack
    assert Run("deploy", path).code == 0
    table = Run("outputs", path)
    assert table.code == 0 and "Outputs" in table.text and "https://api.example.com/items" in table.text
    changed = write_config({"domain": {"hosted_zone_id": hosted_zone}, "api": {"throttle_rate": 3}})
    drifted = Run("outputs", changed)
    assert drifted.code == 0 and "deploy would change 1 thing" in drifted.text and "usage plan" in drifted.text
    assert drifted.changing == []


def test_partly_deployed_is_exit_1(stack):
    cfg, path = stack
    assert Run("deploy", path).code == 0
    boto3.client("lambda", region_name="eu-west-1").delete_function(FunctionName="demo-api")
    run = Run("outputs", path)
    assert run.code == 1 and "not fully deployed" in run.text and "function" in run.text.lower()


def test_outputs_local_deploys_the_example_into_the_emulator_first(monkeypatch):
    monkeypatch.setenv("RDS_EDGE_DB_PASSWORD", "local-password-NEVER-SHOWN")
    monkeypatch.setenv("RDS_EDGE_AUTHORIZATION", "Bearer local-NEVER-SHOWN")
    code, text = Run("outputs", "stack.example.toml", "--local", "--json")
    assert code == 0, text
    body = json.loads(text[text.index("{"):])
    assert body["url"] == "https://api.example.com/items" and body["drift"] == []
    assert "NEVER-SHOWN" not in text
