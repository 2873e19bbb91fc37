import io
import shutil
import zipfile

import boto3
import pytest

from provision.aws import ca_bundle, database, package
from provision.errors import DeployError
from provision.steps import function, iam_role, security_groups
from tests.support import SECRETS, changing_ops, inject, printed, run_steps

IAM = ({"database": {"auth": "iam"}}, ("database.password_env",))

pytestmark = pytest.mark.iam

PREREQUISITES = (iam_role, security_groups)


def read_function():
    return boto3.client("lambda", region_name="eu-west-1").get_function(FunctionName="demo-api")


def rds_bundle(cfg):
    return ca_bundle.load(cfg)




def test_package_is_reproducible_and_holds_handler_and_pymysql():
    first, second = package.build(), package.build()
    assert first.data == second.data and first.sha256 == second.sha256
    names = zipfile.ZipFile(io.BytesIO(first.data)).namelist()
    assert "handler.py" in names and "pymysql/__init__.py" in names
    assert names == sorted(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_package_with_a_bundle_is_reproducible_and_changes_with_it(rds_ca_pem):
    from provision.local.certs import make_ca
    first, second = package.build(ca_bundle=rds_ca_pem), package.build(ca_bundle=rds_ca_pem)
    assert first.data == second.data
    archive = zipfile.ZipFile(io.BytesIO(first.data))
    assert archive.read("rds-ca-bundle.pem") == rds_ca_pem and archive.namelist() == sorted(archive.namelist())
    assert package.build(ca_bundle=make_ca("another").pem).sha256 != first.sha256
    assert "rds-ca-bundle.pem" not in zipfile.ZipFile(io.BytesIO(package.build().data)).namelist()


def test_function_is_configured_for_the_database(cfg):
    ctx = run_steps(cfg, *PREREQUISITES, function)
    found = read_function()
    conf = found["Configuration"]
    db = database.lookup(ctx)
    assert conf["Runtime"] == function.RUNTIME and conf["Handler"] == "handler.handler"
    assert conf["Role"] == ctx.state.get("iam_role")["arn"]
    assert conf["Architectures"] == ["arm64"]
    assert sorted(conf["VpcConfig"]["SubnetIds"]) == list(db.subnet_ids)
    assert conf["VpcConfig"]["SecurityGroupIds"] == [ctx.state.get("security_groups")["lambda_group_id"]]
    assert conf["Environment"]["Variables"] == {
        "DB_HOST": db.endpoint, "DB_PORT": "3306", "DB_NAME": "shop", "DB_USER": "api_reader",
        "DB_PASSWORD": SECRETS["TEST_DB_PASSWORD"], "DB_TABLE": "orders", "DB_KEY_COLUMN": "customer_id",
        "DB_COLUMNS": "", "DB_AUTH": "password", "DB_TLS": "verify", "DB_CA_FILE": "rds-ca-bundle.pem",
        "DB_MAX_ROWS": "1000"}
    assert conf["CodeSha256"] == package.build(ca_bundle=rds_bundle(cfg)).sha256
    assert found["Tags"] == {"stack": "demo", "managed-by": "rds-edge-api"}
    assert conf["State"] == "Active"
    assert SECRETS["TEST_DB_PASSWORD"] not in printed(ctx)
    assert SECRETS["TEST_DB_PASSWORD"] not in str(ctx.state.resources)


def test_log_group_is_created_first_with_retention_and_tags(cfg):
    ctx = run_steps(cfg, *PREREQUISITES, function)
    ops = changing_ops(ctx)
    assert ops.index("CreateLogGroup") < ops.index("CreateFunction")
    logs = boto3.client("logs", region_name="eu-west-1")
    group = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/demo-api")["logGroups"][0]
    assert group["retentionInDays"] == 30
    tags = logs.list_tags_for_resource(resourceArn=group["arn"].removesuffix(":*"))["tags"]
    assert tags == {"stack": "demo", "managed-by": "rds-edge-api"}


def test_second_deploy_changes_nothing(cfg):
    run_steps(cfg, *PREREQUISITES, function)
    again = run_steps(cfg, *PREREQUISITES, function)
    assert changing_ops(again) == []


def test_changed_columns_update_only_the_configuration(cfg, load_seeded, write_config):
    run_steps(cfg, *PREREQUISITES, function)
    from provision import config as config_module
    changed = config_module.load(write_config({"database": {"columns": ["order_id", "total"]}}))
    ctx = run_steps(changed, *PREREQUISITES, function)
    assert changing_ops(ctx) == ["UpdateFunctionConfiguration"]
    assert "configuration of demo-api: Environment" in printed(ctx)
    assert read_function()["Configuration"]["Environment"]["Variables"]["DB_COLUMNS"] == "order_id,total"


def test_changed_source_updates_only_the_code(cfg, tmp_path, monkeypatch):
    run_steps(cfg, *PREREQUISITES, function)
    source = tmp_path / "lambda"
    shutil.copytree(package.SOURCE, source, ignore=shutil.ignore_patterns("__pycache__"))
    (source / "handler.py").write_text((source / "handler.py").read_text() + "\n# changed\n")
    monkeypatch.setattr(package, "SOURCE", source)
    monkeypatch.setattr(package.build, "__defaults__", (source, None))
    ctx = run_steps(cfg, *PREREQUISITES, function)
    assert changing_ops(ctx) == ["UpdateFunctionCode"]
    assert read_function()["Configuration"]["CodeSha256"] == package.build(source, rds_bundle(cfg)).sha256


def test_new_role_not_yet_assumable_is_waited_out(cfg):
    ctx = run_steps(cfg, *PREREQUISITES)
    attempts = inject(ctx.clients.session, "before-call.lambda.CreateFunction", 2,
                      "InvalidParameterValueException",
                      "The role defined for the function cannot be assumed by Lambda.")
    function.ensure(ctx)
    assert len(attempts) == 3
    assert "to become usable by Lambda" in printed(ctx)
    assert read_function()["Configuration"]["State"] == "Active"


def test_other_invalid_parameter_fails_at_once(cfg):
    ctx = run_steps(cfg, *PREREQUISITES)
    attempts = inject(ctx.clients.session, "before-call.lambda.CreateFunction", 5,
                      "InvalidParameterValueException", "Unsupported runtime")
    with pytest.raises(Exception) as err:
        function.ensure(ctx)
    assert "Unsupported runtime" in str(err.value)
    assert len(attempts) == 1


def test_destroy_removes_function_and_log_group(cfg):
    run_steps(cfg, *PREREQUISITES, function)
    run_steps(cfg, function, destroy=True)
    assert boto3.client("lambda", region_name="eu-west-1").list_functions()["Functions"] == []
    assert boto3.client("logs", region_name="eu-west-1").describe_log_groups()["logGroups"] == []
    twice = run_steps(cfg, function, destroy=True)
    assert changing_ops(twice) == []


def test_default_bundle_is_aws_global_rds_bundle_fetched_once_and_zipped(cfg, bundle_downloads, rds_ca_pem):
    ctx = run_steps(cfg, *PREREQUISITES, function)
    assert bundle_downloads == ["https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"]
    cached = cfg.state_dir / "rds-global-bundle.pem"
    assert cached.read_bytes() == rds_ca_pem
    code = package.build(ca_bundle=rds_ca_pem)
    assert read_function()["Configuration"]["CodeSha256"] == code.sha256
    assert zipfile.ZipFile(io.BytesIO(code.data)).read("rds-ca-bundle.pem") == rds_ca_pem
    assert changing_ops(run_steps(cfg, *PREREQUISITES, function)) == []
    assert len(bundle_downloads) == 1, "the cached bundle is used again"
    assert ctx.config.database.tls == "verify"


def test_a_download_that_is_not_a_bundle_stops_the_deploy(cfg, monkeypatch):
    monkeypatch.setattr(ca_bundle, "fetch", lambda url: b"<html>captive portal</html>")
    with pytest.raises(DeployError, match="not a PEM CA bundle"):
        run_steps(cfg, *PREREQUISITES, function)
    assert not (cfg.state_dir / "rds-global-bundle.pem").exists()


def test_changed_bundle_is_a_code_update_and_unchanged_is_none(load_seeded, tmp_path, bundle_downloads):
    from provision.local.certs import make_ca
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(make_ca("first").pem)
    cfg = load_seeded({"database": {"ca_bundle": str(bundle)}})
    run_steps(cfg, *PREREQUISITES, function)
    assert changing_ops(run_steps(cfg, *PREREQUISITES, function)) == []
    bundle.write_bytes(make_ca("second").pem)
    ctx = run_steps(cfg, *PREREQUISITES, function)
    assert changing_ops(ctx) == ["UpdateFunctionCode"]
    assert read_function()["Configuration"]["CodeSha256"] == package.build(ca_bundle=bundle.read_bytes()).sha256
    assert bundle_downloads == [], "a configured bundle is never downloaded"


def test_tls_off_ships_no_bundle_and_downloads_nothing(load_seeded, bundle_downloads):
    cfg = load_seeded({"database": {"tls": "off"}})
    run_steps(cfg, *PREREQUISITES, function)
    variables = read_function()["Configuration"]["Environment"]["Variables"]
    assert variables["DB_TLS"] == "off" and "DB_CA_FILE" not in variables
    assert read_function()["Configuration"]["CodeSha256"] == package.build().sha256
    assert bundle_downloads == []


def test_iam_auth_keeps_every_secret_out_of_the_function(load_seeded):
    cfg = load_seeded(*IAM)
    ctx = run_steps(cfg, *PREREQUISITES, function)
    variables = read_function()["Configuration"]["Environment"]["Variables"]
    assert "DB_PASSWORD" not in variables
    assert variables["DB_AUTH"] == "iam" and variables["DB_TLS"] == "verify"
    leaked = set(variables.values()) & set(SECRETS.values())
    assert not leaked, "a secret in the function's environment"
    assert not [v for v in variables.values() for secret in SECRETS.values() if secret in v]
    assert SECRETS["TEST_DB_PASSWORD"] not in printed(ctx)


def test_switching_to_iam_removes_the_password(cfg, load_seeded, write_config):
    run_steps(cfg, *PREREQUISITES, function)
    from provision import config as config_module
    ctx = run_steps(config_module.load(write_config(*IAM)), *PREREQUISITES, function)
    assert changing_ops(ctx) == ["PutRolePolicy", "UpdateFunctionConfiguration"]  # the role may connect first
    assert "DB_PASSWORD" not in read_function()["Configuration"]["Environment"]["Variables"]


def test_reserved_concurrency_is_set_and_follows_the_config(cfg, load_seeded, write_config):
    lambda_ = boto3.client("lambda", region_name="eu-west-1")
    run_steps(cfg, *PREREQUISITES, function)
    assert lambda_.get_function_concurrency(FunctionName="demo-api")["ReservedConcurrentExecutions"] == 10
    from provision import config as config_module
    changed = config_module.load(write_config({"function": {"max_concurrency": 4}, "api": {"max_rows": 50}}))
    ctx = run_steps(changed, *PREREQUISITES, function)
    assert sorted(changing_ops(ctx)) == ["PutFunctionConcurrency", "UpdateFunctionConfiguration"]
    assert lambda_.get_function_concurrency(FunctionName="demo-api")["ReservedConcurrentExecutions"] == 4
    assert read_function()["Configuration"]["Environment"]["Variables"]["DB_MAX_ROWS"] == "50"
    assert changing_ops(run_steps(changed, *PREREQUISITES, function)) == []


@pytest.mark.parametrize("config", [{"State": "Failed", "StateReason": "ENI limit reached"},
                                    {"State": "Active", "LastUpdateStatus": "Failed",
                                     "LastUpdateStatusReason": "ENI limit reached"}])
def test_a_failed_function_stops_the_run_with_lambdas_reason_and_what_to_do(config):
    with pytest.raises(DeployError, match=r"demo-api failed: ENI limit reached; fix that, then run deploy again"):
        function._ready("demo-api", config)
