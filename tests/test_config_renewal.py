"""Config keys for certificate renewal and alerts: [domain] validation_domain and [alerts] email."""
import pytest

from provision import cli, config
from provision.errors import ConfigError
from tests.support import merged, write_toml

EMAIL = {"validation": "email"}


def test_validation_domain_defaults_to_the_domain_and_the_stack_receives_the_mail(write_config):
    cfg = config.load(write_config({"domain": EMAIL}))
    assert cfg.domain.validation_domain == "api.example.com" and cfg.domain.receives_mail
    assert cfg.alerts is None
    assert "us-east-1" in cfg.regions


@pytest.mark.parametrize("value", ["example.com", "api.example.com", "example.com."])
def test_validation_domain_may_be_the_domain_or_a_parent(write_config, value):
    cfg = config.load(write_config({"domain": {**EMAIL, "validation_domain": value}}))
    assert cfg.domain.validation_domain == value.rstrip(".")
    assert cfg.domain.receives_mail == (value == "api.example.com")


def test_a_parent_validation_domain_needs_no_mail_region(write_config):
    cfg = config.load(write_config({"domain": {**EMAIL, "validation_domain": "example.com",
                                               "mail_region": "us-west-2"}}))
    assert "us-west-2" not in cfg.regions  # no SES, bucket or MX anywhere


BAD = [
    ({"domain": {**EMAIL, "validation_domain": "ample.com"}}, "domain.validation_domain", "parent domain"),
    ({"domain": {**EMAIL, "validation_domain": "pi.example.com"}}, "domain.validation_domain", "parent domain"),
    ({"domain": {**EMAIL, "validation_domain": "other.org"}}, "domain.validation_domain", "'example.com'"),
    ({"domain": {**EMAIL, "validation_domain": "com"}}, "domain.validation_domain", "not a valid"),
    ({"domain": {**EMAIL, "validation_domain": "Example.com"}}, "domain.validation_domain", "lower-case"),
    ({"domain": {**EMAIL, "validation_domain": "sub.api.example.com"}}, "domain.validation_domain", "parent"),
    ({"domain": {"validation": "dns", "validation_domain": "example.com"}}, "domain.validation_domain",
     "only to validation = \"email\""),
    ({"alerts": {"email": "not-an-address"}}, "alerts.email", "e-mail address"),
    ({"alerts": {"email": "ops@example"}}, "alerts.email", "e-mail address"),
    ({"alerts": {"email": ""}}, "alerts.email", "must not be empty"),
    ({"alerts": {}}, "alerts.email", "required"),
    ({"alerts": {"email": "ops@example.com", "sms": "+1555"}}, "alerts.sms", "unknown key"),
]


@pytest.mark.parametrize("overrides, key, words", BAD, ids=[f"{b[1]}:{b[2]}" for b in BAD])
def test_bad_value_names_key_and_problem(write_config, overrides, key, words):
    with pytest.raises(ConfigError) as err:
        config.load(write_config(overrides))
    assert err.value.key == key
    assert words in err.value.problem


def test_alerts_email_is_read(write_config):
    cfg = config.load(write_config({"alerts": {"email": "ops+certs@example.com"}}))
    assert cfg.alerts.email == "ops+certs@example.com"


def test_a_bad_validation_domain_exits_2_before_any_aws_call(tmp_path, secrets, capsys, monkeypatch):
    path = write_toml(tmp_path / "stack.toml", merged({"domain": {**EMAIL, "validation_domain": "le.com"}}))
    monkeypatch.setattr("boto3.Session", lambda *a, **k: pytest.fail("an AWS session for a bad config"))
    assert cli.main(["deploy", "--config", str(path)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("config error: domain.validation_domain: 'le.com' must be 'api.example.com' or a parent")


def test_the_examples_commented_renewal_keys_are_valid_when_uncommented(tmp_path, monkeypatch):
    monkeypatch.setenv("RDS_EDGE_DB_PASSWORD", "x")
    monkeypatch.setenv("RDS_EDGE_AUTHORIZATION", "Bearer x")
    text = open("stack.example.toml", encoding="utf-8").read()
    for line in ("# validation_domain = ", "# [alerts]", "# email = "):
        assert line in text
        text = text.replace(line, line[2:])
    path = tmp_path / "stack.toml"
    path.write_text(text, encoding="utf-8")
    cfg = config.load(path)
    assert cfg.domain.validation_domain == "example.com" and not cfg.domain.receives_mail
    assert cfg.alerts.email == "ops@example.com"
