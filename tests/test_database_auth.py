"""Deploy and the database link: IAM database auth checked before any change, the password mode said once."""
import io

import boto3
import pytest
from rich.console import Console

from provision import cli
from provision.output import Output

IAM = ({"database": {"auth": "iam"}}, ("database.password_env",))
MODIFY = ("aws rds modify-db-instance --db-instance-identifier orders-db "
          "--enable-iam-database-authentication --apply-immediately")


def run(*argv):
    out = Output(Console(file=io.StringIO(), width=250, force_terminal=False))
    code = cli.main(list(argv), session=boto3.Session(), out=out)
    return code, out.console.file.getvalue()


def disable_iam_auth():
    boto3.client("rds", region_name="eu-west-1").modify_db_instance(
        DBInstanceIdentifier="orders-db", EnableIAMDatabaseAuthentication=False, ApplyImmediately=True)


@pytest.mark.parametrize("plan", [False, True], ids=["deploy", "plan"])
def test_iam_without_iam_database_auth_stops_before_any_change(load_seeded, write_config, capsys, plan):
    load_seeded(*IAM)
    disable_iam_auth()
    session = boto3.Session()
    calls = []
    session.events.register("before-call.*.*", lambda model, **kw: calls.append(model.name))
    out = Output(Console(file=io.StringIO(), width=250, force_terminal=False))
    code = cli.main(["deploy", "--config", str(write_config(*IAM)), *(["--plan"] if plan else [])],
                    session=session, out=out)
    assert code == 1
    errors = [line for line in (out.console.file.getvalue() + capsys.readouterr().err).splitlines()
              if "IAM database authentication" in line]
    assert len(errors) == 1 and "'orders-db'" in errors[0] and MODIFY in errors[0]
    assert "DescribeDBInstances" in calls
    assert [c for c in calls if not c.startswith(("Describe", "Get", "List"))] == []
    assert boto3.client("iam").list_roles()["Roles"] == []
    assert boto3.client("acm", region_name="us-east-1").list_certificates()["CertificateSummaryList"] == []


@pytest.mark.iam
def test_password_mode_says_once_where_the_password_lives(load_seeded, write_config):
    load_seeded()
    path = str(write_config())
    for argv in (["deploy", "--config", path, "--plan"], ["deploy", "--config", path]):
        code, text = run(*argv)
        assert code == 0, text
        assert text.count("lambda:GetFunctionConfiguration") == 1
        assert 'auth = "iam" keeps it out of the function' in text and "$TEST_DB_PASSWORD" in text


@pytest.mark.iam
def test_iam_deploy_states_no_password(load_seeded, write_config):
    load_seeded(*IAM)
    code, text = run("deploy", "--config", str(write_config(*IAM)))
    assert code == 0, text
    assert "lambda:GetFunctionConfiguration" not in text
    variables = boto3.client("lambda", region_name="eu-west-1").get_function(
        FunctionName="demo-api")["Configuration"]["Environment"]["Variables"]
    assert variables["DB_AUTH"] == "iam" and "DB_PASSWORD" not in variables
    assert "inline policy rds-db-connect of demo-fn" in text


def test_local_deploy_of_the_example_downloads_no_bundle(monkeypatch, bundle_downloads):
    """The example config (auth = "iam", tls = "verify") deploys under --local with no network."""
    monkeypatch.setenv("RDS_EDGE_AUTHORIZATION", "Bearer local-NEVER-SHOWN")
    out = Output(Console(file=io.StringIO(), width=250, force_terminal=False))
    code = cli.main(["deploy", "--config", "stack.example.toml", "--local"], out=out)
    text = out.console.file.getvalue()
    assert code == 0, text
    assert bundle_downloads == []
    assert "inline policy rds-db-connect of orders-api-fn" in text
