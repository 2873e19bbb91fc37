"""Every bad value stops the run with exit code 2 and one line naming the key, before any AWS call."""
import pytest

from provision import cli, config
from provision.errors import ConfigError
from tests.support import SECRETS, merged, write_toml

EXAMPLE = "stack.example.toml"


def test_base_config_loads(write_config):
    cfg = config.load(write_config())
    assert cfg.stack.name == "demo"
    assert cfg.access.ipv4_cidrs == ("203.0.113.0/24",)
    assert cfg.access.ipv6_cidrs == ("2001:db8::/32",)
    assert cfg.api.path == "items" and cfg.api.stage == "v1"
    assert cfg.domain.mail_region == "us-east-1"
    assert cfg.database.columns == ()
    assert cfg.state_dir == cfg.path.parent / ".state"


def test_secrets_are_read_on_use_and_never_shown(write_config):
    cfg = config.load(write_config())
    assert cfg.database.password.value == SECRETS["TEST_DB_PASSWORD"]
    assert SECRETS["TEST_DB_PASSWORD"] not in repr(cfg)
    assert SECRETS["TEST_AUTHORIZATION"] not in repr(cfg)
    assert "$TEST_AUTHORIZATION" in repr(cfg.access.authorization)


def test_example_config_is_valid(monkeypatch):
    monkeypatch.delenv("RDS_EDGE_DB_PASSWORD", raising=False)  # iam: no password anywhere
    monkeypatch.setenv("RDS_EDGE_AUTHORIZATION", "Bearer x")
    cfg = config.load(EXAMPLE)
    assert cfg.domain.validation == "email"
    assert (cfg.database.auth, cfg.database.tls, cfg.database.password) == ("iam", "verify", None)


def test_database_link_defaults(write_config):
    cfg = config.load(write_config())
    assert (cfg.database.auth, cfg.database.tls, cfg.database.ca_bundle) == ("password", "verify", None)
    assert cfg.function.max_concurrency == 10 and cfg.api.max_rows == 1000


def test_ca_bundle_that_is_not_a_certificate_exits_2(write_config, tmp_path):
    (tmp_path / "fake.pem").write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError) as err:
        config.load(write_config({"database": {"ca_bundle": "fake.pem"}}))
    assert err.value.key == "database.ca_bundle" and "not a PEM bundle" in err.value.problem


def test_ca_bundle_is_relative_to_the_config_file(write_config, tmp_path, rds_ca_pem):
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "rds.pem").write_bytes(rds_ca_pem)
    cfg = config.load(write_config({"database": {"ca_bundle": "certs/rds.pem"}}))
    assert cfg.database.ca_bundle == tmp_path / "certs" / "rds.pem"


def test_bad_key_combination_exits_2_before_any_aws_call(tmp_path, secrets, capsys, monkeypatch):
    path = write_toml(tmp_path / "stack.toml", merged({"database": {"auth": "iam"}}))

    def no_aws(*args, **kwargs):
        raise AssertionError("an AWS session was created for a bad config")

    monkeypatch.setattr("boto3.Session", no_aws)
    assert cli.main(["deploy", "--config", str(path), "--local"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['config error: database.password_env: must not be set with auth = "iam" '
                   "(the function signs a token instead; remove the key)"]


BAD = [
    # (overrides, drop, key named, words in the problem)
    ({}, ("database.table",), "database.table", "required"),
    ({}, ("access",), "[access]", "missing"),
    ({"stack": {"colour": "blue"}}, (), "stack.colour", "unknown key"),
    ({"extra": {"a": 1}}, (), "[extra]", "unknown section"),
    ({"stack": {"name": 5}}, (), "stack.name", "must be a string"),
    ({"stack": {"name": "a" * 33}}, (), "stack.name", "at most 32"),
    ({"stack": {"name": "9lives"}}, (), "stack.name", "starting with a letter"),
    ({"stack": {"name": "my_stack"}}, (), "stack.name", "not valid"),
    ({"stack": {"region": "Europe"}}, (), "stack.region", "not valid"),
    ({"access": {"allowed_cidrs": ["10.0.0.1/8"]}}, (), "access.allowed_cidrs[0]", "host bits"),
    ({"access": {"allowed_cidrs": ["203.0.113.0/24", "not-a-cidr"]}}, (), "access.allowed_cidrs[1]", "CIDR"),
    ({"access": {"allowed_cidrs": ["2001:db8::/129"]}}, (), "access.allowed_cidrs[0]", "not a valid CIDR"),
    ({"access": {"allowed_cidrs": []}}, (), "access.allowed_cidrs", "at least one"),
    ({"access": {"allowed_cidrs": "203.0.113.0/24"}}, (), "access.allowed_cidrs", "must be a list"),
    ({"domain": {"name": "-bad-.example.com"}}, (), "domain.name", "not a valid"),
    ({"domain": {"name": "localhost"}}, (), "domain.name", "not a valid"),
    ({"domain": {"name": "API.Example.com"}}, (), "domain.name", "lower-case"),
    ({"domain": {"validation": "http"}}, (), "domain.validation", "\"email\" or \"dns\""),
    ({"domain": {"validation": "email", "mail_region": "eu-south-1"}}, (), "domain.mail_region",
     "does not receive mail"),
    ({"domain": {"hosted_zone_id": "zone one"}}, (), "domain.hosted_zone_id", "hosted zone id"),
    ({"database": {"table": "orders; DROP TABLE x"}}, (), "database.table", "plain identifier"),
    ({"database": {"key_column": "a`b"}}, (), "database.key_column", "plain identifier"),
    ({"database": {"columns": ["id", "na me"]}}, (), "database.columns[1]", "plain identifier"),
    ({"database": {"columns": ["id", "id"]}}, (), "database.columns", "twice"),
    ({"database": {"name": "1db"}}, (), "database.name", "plain identifier"),
    ({"database": {"password_env": "UNSET_PASSWORD_VARIABLE"}}, (), "database.password_env",
     "UNSET_PASSWORD_VARIABLE is not set"),
    ({"access": {"authorization_env": "UNSET_AUTH_VARIABLE"}}, (), "access.authorization_env", "is not set"),
    ({"database": {"password_env": "not a name"}}, (), "database.password_env", "environment variable name"),
    ({"api": {"path": "a/b"}}, (), "api.path", "one path segment"),
    ({"api": {"stage": "v-1"}}, (), "api.stage", "not valid"),
    ({"api": {"throttle_rate": 0}}, (), "api.throttle_rate", "greater than 0"),
    ({"api": {"key_env": "TEST_SHORT_VALUE"}}, (), "api.key_env", "20 to 128"),
    ({"function": {"timeout_s": 60}}, (), "function.timeout_s", "29"),
    ({"function": {"architecture": "sparc"}}, (), "function.architecture", "must be one of"),
    ({"function": {"log_retention_days": 10}}, (), "function.log_retention_days", "not one"),
    # the database link (issue 10)
    ({"database": {"auth": "kerberos"}}, (), "database.auth", "must be one of"),
    ({"database": {"auth": "iam"}}, (), "database.password_env", "must not be set with auth = \"iam\""),
    ({}, ("database.password_env",), "database.password_env", "required with auth = \"password\""),
    ({"database": {"auth": "iam", "tls": "off"}}, ("database.password_env",), "database.tls", "clear-text"),
    ({"database": {"tls": "on"}}, (), "database.tls", "must be one of"),
    ({"database": {"tls": True}}, (), "database.tls", "must be a string"),
    ({"database": {"tls": "required", "ca_bundle": "x.pem"}}, (), "database.ca_bundle", "only used with tls"),
    ({"database": {"ca_bundle": "missing.pem"}}, (), "database.ca_bundle", "cannot read"),
    ({"database": {"ca_bundle": "stack.toml"}}, (), "database.ca_bundle", "no PEM certificate"),
    ({"function": {"max_concurrency": -1}}, (), "function.max_concurrency", "0 (no reservation) or more"),
    ({"function": {"max_concurrency": "10"}}, (), "function.max_concurrency", "must be an integer"),
    ({"api": {"max_rows": 0}}, (), "api.max_rows", "between 1 and 10,000"),
    ({"api": {"max_rows": 10_001}}, (), "api.max_rows", "between 1 and 10,000"),
    ({"api": {"max_rows": 1.5}}, (), "api.max_rows", "must be an integer"),
    ({"api": {"cache_seconds": -1}}, (), "api.cache_seconds", "between 0 and 31,536,000"),
    ({"api": {"cache_seconds": 31_536_001}}, (), "api.cache_seconds", "between 0 and 31,536,000"),
    ({"api": {"cache_seconds": 1.5}}, (), "api.cache_seconds", "must be an integer"),
    ({"api": {"cache_seconds": "60"}}, (), "api.cache_seconds", "must be an integer"),
    ({"api": {"cache_seconds": True}}, (), "api.cache_seconds", "must be an integer"),
    # the per-caller limit (issue 26): WAF's RateBasedStatement Limit and EvaluationWindowSec
    ({"access": {"rate_limit": 9}}, (), "access.rate_limit", "between 10 and 2,000,000,000"),
    ({"access": {"rate_limit": 2_000_000_001}}, (), "access.rate_limit", "between 10 and 2,000,000,000"),
    ({"access": {"rate_limit": 100.5}}, (), "access.rate_limit", "must be an integer"),
    ({"access": {"rate_window_s": 30}}, (), "access.rate_window_s", "60, 120, 300, 600"),
]


@pytest.mark.parametrize("overrides, drop, key, words", BAD, ids=[b[2] + ":" + b[3] for b in BAD])
def test_bad_value_names_key_and_problem(write_config, overrides, drop, key, words):
    with pytest.raises(ConfigError) as err:
        config.load(write_config(overrides, drop))
    assert err.value.key == key
    assert words in err.value.problem


def test_unset_secret_variable(write_config, monkeypatch):
    path = write_config()
    monkeypatch.delenv("TEST_AUTHORIZATION")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert err.value.key == "access.authorization_env"


def test_not_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[stack\nname=", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad)
    with pytest.raises(ConfigError, match="file not found"):
        config.load(tmp_path / "missing.toml")


@pytest.mark.parametrize("command", ["deploy", "teardown"])
def test_cli_exits_2_with_one_line_before_any_aws_call(tmp_path, secrets, capsys, monkeypatch, command):
    path = write_toml(tmp_path / "stack.toml", merged({"access": {"allowed_cidrs": ["300.1.2.0/24"]}}))

    def no_aws(*args, **kwargs):
        raise AssertionError("an AWS session was created for a bad config")

    monkeypatch.setattr("boto3.Session", no_aws)
    assert cli.main([command, "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("config error: access.allowed_cidrs[0]: '300.1.2.0/24'")
