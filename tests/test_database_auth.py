"""Deploy and the database link: IAM database auth checked before any change, the password mode said once."""

import boto3
import pytest

from tests.support import Run

IAM = ({"database": {"auth": "iam"}}, ("database.password_env",))
MODIFY = ("aws rds modify-db-instance --db-instance-identifier orders-db "
          "--enable-iam-database-authentication --apply-immediately")


def disable_iam_auth():
    boto3.client("rds", region_name="eu-west-1").modify_db_instance(
        DBInstanceIdentifier="orders-db", EnableIAMDatabaseAuthentication=False, ApplyImmediately=True)


@pytest.mark.parametrize("plan", [False, True], ids=["deploy", "plan"])
def test_iam_without_iam_database_auth_stops_before_any_change(load_seeded, write_config, capsys, plan):
    load_seeded(*IAM)
    disable_iam_auth()
    run = Run("deploy", write_config(*IAM), *(["--plan"] if plan else []))
    assert run.code == 1
    errors = [line for line in (run.text + capsys.readouterr().err).splitlines()
              if "IAM database authentication" in line]
    assert len(errors) == 1 and "'orders-db'" in errors[0] and MODIFY in errors[0]
    assert "DescribeDBInstances" in run.calls
    assert run.changing == []
    assert boto3.client("iam").list_roles()["Roles"] == []
    assert boto3.client("acm", region_name="us-east-1").list_certificates()["CertificateSummaryList"] == []


@pytest.mark.iam
def test_password_mode_says_once_where_the_password_lives(load_seeded, write_config):
    load_seeded()
    path = str(write_config())
    for argv in (("deploy", path, "--plan"), ("deploy", path)):
        code, text = Run(*argv)
        assert code == 0, text
        assert text.count("lambda:GetFunctionConfiguration") == 1
        assert 'auth = "iam" keeps it out of the function' in text and "$TEST_DB_PASSWORD" in text


@pytest.mark.iam
def test_iam_deploy_states_no_password(load_seeded, write_config):
    load_seeded(*IAM)
    code, text = Run("deploy", write_config(*IAM))
    assert code == 0, text
    assert "lambda:GetFunctionConfiguration" not in text
    variables = boto3.client("lambda", region_name="eu-west-1").get_function(
        FunctionName="demo-api")["Configuration"]["Environment"]["Variables"]
    assert variables["DB_AUTH"] == "iam" and "DB_PASSWORD" not in variables
    assert "inline policy rds-db-connect of demo-fn" in text


def test_local_deploy_of_the_example_downloads_no_bundle(monkeypatch, bundle_downloads):
    """The example config (auth = "iam", tls = "verify") deploys under --local with no network."""
    monkeypatch.setenv("RDS_EDGE_AUTHORIZATION", "Bearer local-NEVER-SHOWN")
    code, text = Run("deploy", "stack.example.toml", "--local")
    assert code == 0, text
    assert bundle_downloads == []
    assert "inline policy rds-db-connect of orders-api-fn" in text
