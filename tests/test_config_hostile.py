"""Hostile config files and values (issue 17): exit 2 and one line naming the key, before any AWS call."""
import math
import os

import pytest

from provision import cli, config
from provision.errors import ConfigError
from tests.support import SECRETS, merged, write_toml


def run_cli(argv, capsys):
    """cli.main's exit code and its stderr lines; no AWS session may be made."""
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.err.strip().splitlines()


@pytest.fixture
def no_aws(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an AWS session or the emulator was started before the config was checked")

    monkeypatch.setattr("boto3.Session", refuse)
    monkeypatch.setattr("provision.local.emulator.start", refuse)


def one_line_naming(code, err, what):
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("config error: ") and what in err[0], err


# -- files that cannot be a config ---------------------------------------------------------------

def bad_files(tmp_path):
    (tmp_path / "latin1.toml").write_bytes('[stack]\nname = "caf\xe9"\n'.encode("latin-1"))
    (tmp_path / "a-directory.toml").mkdir()
    os.symlink(tmp_path / "loop-b.toml", tmp_path / "loop-a.toml")
    os.symlink(tmp_path / "loop-a.toml", tmp_path / "loop-b.toml")
    (tmp_path / "arrays.toml").write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    (tmp_path / "tables.toml").write_text("a = " + "{b = " * 5000 + "1" + "}" * 5000 + "\n")
    (tmp_path / "dotted.toml").write_text(".".join(["a"] * 100_000) + " = 1\n")
    (tmp_path / "header.toml").write_text("[" + ".".join(["a"] * 100_000) + "]\n")
    (tmp_path / "huge.toml").write_text("# " + "x" * (2 << 20) + "\n")
    os.mkfifo(tmp_path / "fifo.toml")
    return {
        "latin1.toml": "not UTF-8",
        "a-directory.toml": "is a directory",
        "loop-a.toml": "symbolic links",
        "arrays.toml": "nested too deeply",
        "tables.toml": "nested too deeply",
        "dotted.toml": "nested more than 16 deep",
        "header.toml": "nested more than 16 deep",
        "huge.toml": "larger than",
        "fifo.toml": "not a regular file",
        "/dev/zero": "not a regular file",
        "/proc/self/mem": "Input/output error",  # a regular file no one can read, even as root
    }


@pytest.mark.parametrize("command", ["deploy", "teardown"])
def test_a_file_that_is_no_config_exits_2_with_one_line(tmp_path, secrets, capsys, no_aws, command):
    for name, words in bad_files(tmp_path).items():
        path = name if name.startswith("/") else str(tmp_path / name)
        for local in ([], ["--local"]):
            code, err = run_cli([command, "--config", path, *local], capsys)
            one_line_naming(code, err, words)


@pytest.mark.parametrize("target, words", [("/dev/zero", "not a regular file"), (".", "is a directory"),
                                           ("loop.pem", "symbolic links"), ("big.pem", "larger than")])
def test_ca_bundle_that_is_no_file_exits_2(tmp_path, secrets, capsys, no_aws, target, words):
    os.symlink(tmp_path / "loop.pem", tmp_path / "loop.pem")
    (tmp_path / "big.pem").write_text("-----BEGIN CERTIFICATE-----\n" + "A" * (2 << 20))
    path = write_toml(tmp_path / "stack.toml", merged({"database": {"ca_bundle": target}}))
    code, err = run_cli(["deploy", "--config", str(path)], capsys)
    one_line_naming(code, err, "database.ca_bundle: cannot read")
    assert words in err[0]


# -- values that match a pattern only with re.match + $ -------------------------------------------

NEWLINE_KEYS = [
    ("stack", "name", "demo"), ("stack", "region", "eu-west-1"), ("database", "instance_id", "orders-db"),
    ("database", "name", "shop"), ("database", "table", "orders"), ("database", "key_column", "customer_id"),
    ("database", "password_env", "TEST_DB_PASSWORD"), ("access", "authorization_env", "TEST_AUTHORIZATION"),
    ("domain", "name", "api.example.com"), ("domain", "hosted_zone_id", "Z0123456789ABC"),
    ("domain", "mail_region", "us-east-1"), ("api", "path", "items"), ("api", "stage", "v1"),
    ("alerts", "email", "ops@example.com"),
]


@pytest.mark.parametrize("section, key, good", NEWLINE_KEYS, ids=[f"{s}.{k}" for s, k, _ in NEWLINE_KEYS])
def test_a_trailing_newline_is_refused(write_config, section, key, good):
    assert config.load(write_config({section: {key: good}}))  # the value itself is fine
    with pytest.raises(ConfigError) as err:
        config.load(write_config({section: {key: good + "\n"}}))
    assert err.value.key == f"{section}.{key}"


def test_a_column_with_a_trailing_newline_is_refused(write_config):
    with pytest.raises(ConfigError) as err:
        config.load(write_config({"database": {"columns": ["order_id", "total\n"]}}))
    assert err.value.key == "database.columns[1]"


def test_a_region_with_other_digits_is_refused(write_config):
    with pytest.raises(ConfigError) as err:
        config.load(write_config({"stack": {"region": "eu-west-\u0661"}}))  # ARABIC-INDIC DIGIT ONE
    assert err.value.key == "stack.region"


# -- numbers ---------------------------------------------------------------------------------------

NUMBERS = [("api", "throttle_rate", math.inf), ("api", "throttle_rate", math.nan), ("api", "throttle_rate", 1e308),
           ("api", "throttle_rate", 2 ** 62), ("api", "throttle_rate", 10_000.5), ("api", "throttle_burst", 2 ** 62),
           ("api", "throttle_burst", 5_001), ("function", "max_concurrency", 2 ** 62),
           ("function", "max_concurrency", 1_001), ("api", "max_rows", 2 ** 62), ("function", "memory_mb", -2 ** 63)]


@pytest.mark.parametrize("section, key, value", NUMBERS, ids=[f"{s}.{k}={v!r}" for s, k, v in NUMBERS])
def test_numbers_are_bounded(tmp_path, secrets, capsys, no_aws, section, key, value):
    path = tmp_path / "stack.toml"
    text = write_toml(path, merged()).read_text()
    literal = "inf" if value == math.inf else "nan" if value != value else repr(value)
    path.write_text(text + f"\n[{section}]\n{key} = {literal}\n")
    code, err = run_cli(["deploy", "--config", str(path)], capsys)
    one_line_naming(code, err, f"{section}.{key}: must be")


def test_numbers_at_their_bounds_are_accepted(write_config):
    cfg = config.load(write_config({"api": {"throttle_rate": 10_000, "throttle_burst": 5_000},
                                    "function": {"max_concurrency": 1_000}}))
    assert (cfg.api.throttle_rate, cfg.api.throttle_burst, cfg.function.max_concurrency) == (10_000.0, 5_000, 1_000)


# -- the Authorization value -----------------------------------------------------------------------

@pytest.mark.parametrize("value", ["Bearer abc\r\nX-Injected: 1", "Bearer abc\n", "Bearer\x01abc-long-enough",
                                   "\tBearer abc-long-enough", "Bearer abc-long-enough\t", "Bearer abc\x1b[2J-long",
                                   "Bearer abc\x7f-long-enough", "Bearer caf\u00e9-long-enough", "x" * 201, " "])
def test_authorization_value_must_be_an_http_field_value(tmp_path, capsys, no_aws, monkeypatch, value):
    monkeypatch.setenv("TEST_DB_PASSWORD", SECRETS["TEST_DB_PASSWORD"])
    monkeypatch.setenv("TEST_AUTHORIZATION", value)
    path = write_toml(tmp_path / "stack.toml", merged())
    code, err = run_cli(["deploy", "--config", str(path)], capsys)
    one_line_naming(code, err, "access.authorization_env: the value of TEST_AUTHORIZATION must be an HTTP header value")
    assert "abc" not in err[0] and "xxx" not in err[0]  # the secret is never shown


def test_a_short_authorization_value_is_accepted_with_a_warning(write_config, monkeypatch):
    monkeypatch.setenv("TEST_AUTHORIZATION", "x")
    cfg = config.load(write_config())
    assert cfg.warnings == ("access.authorization_env: the value of TEST_AUTHORIZATION is only 1 characters: a short "
                            "value can be guessed; use 20 or more random ones",)
    monkeypatch.setenv("TEST_AUTHORIZATION", "Bearer\tinner tab and spaces-ok")  # RFC 9110: allowed inside
    assert config.load(write_config()).warnings == ()


def test_the_short_value_warning_is_printed_without_the_value(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TEST_DB_PASSWORD", SECRETS["TEST_DB_PASSWORD"])
    monkeypatch.setenv("TEST_AUTHORIZATION", "Zq9")
    monkeypatch.setattr("provision.commands.outputs.run", lambda *args: 0)
    path = write_toml(tmp_path / "stack.toml", merged())
    assert cli.main(["outputs", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "config warning: access.authorization_env: the value of TEST_AUTHORIZATION is only 3" in out
    assert "Zq9" not in out


# -- CIDRs -----------------------------------------------------------------------------------------

def test_cidrs_are_normalised_and_a_range_written_two_ways_is_refused(write_config):
    cfg = config.load(write_config({"access": {"allowed_cidrs": ["203.0.113.0/024", "2001:0DB8:0000::/32"]}}))
    assert cfg.access.allowed_cidrs == ("203.0.113.0/24", "2001:db8::/32")
    with pytest.raises(ConfigError) as err:
        config.load(write_config({"access": {"allowed_cidrs": ["2001:db8::/32", "2001:0db8::/32"]}}))
    assert err.value.key == "access.allowed_cidrs" and "2001:db8::/32 twice" in err.value.problem


@pytest.mark.parametrize("cidr, words", [
    ("fe80::%eth0/64", "zone-scoped"), ("203.0.113.0/255.255.255.0", "prefix length"),
    ("203.0.113.0/+24", "prefix length"), ("203.0.113.0/\u0662\u0664", "prefix length"),
    ("203.0.113.0/24\n", "prefix length"), ("203.0.113.0 /24", "not a valid CIDR")])
def test_odd_cidrs_are_refused(write_config, cidr, words):
    with pytest.raises(ConfigError) as err:
        config.load(write_config({"access": {"allowed_cidrs": [cidr]}}))
    assert err.value.key == "access.allowed_cidrs[0]" and words in err.value.problem


# -- api.path --------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [".", ".."])
def test_dot_segments_are_not_a_path(write_config, path):
    with pytest.raises(ConfigError) as err:
        config.load(write_config({"api": {"path": path}}))
    assert err.value.key == "api.path" and "not a path segment" in err.value.problem


# -- the line itself -------------------------------------------------------------------------------

def test_an_unknown_key_with_a_newline_is_shown_on_one_line(tmp_path, secrets, capsys, no_aws):
    path = write_toml(tmp_path / "stack.toml", merged())
    path.write_text(path.read_text().replace("[stack]\n", '[stack]\n"colour\\n\\u001b[31m" = 1\n'))
    code, err = run_cli(["deploy", "--config", str(path)], capsys)
    one_line_naming(code, err, r'stack."colour\n\u001b[31m": unknown key')


def test_a_huge_value_is_shown_short(tmp_path, secrets, capsys, no_aws):
    path = write_toml(tmp_path / "stack.toml", merged({"database": {"table": "t" * 100_000}}))
    code, err = run_cli(["deploy", "--config", str(path)], capsys)
    one_line_naming(code, err, "database.table")
    assert len(err[0]) < 300


# -- flags and --local: checked before the emulator starts -----------------------------------------

@pytest.mark.parametrize("flags", [["--once"], ["--port", "9000"], ["--serve", "--plan"], ["--serve", "--port", "0"]])
def test_a_usage_error_is_found_before_the_emulator_starts(write_config, capsys, no_aws, flags):
    assert cli.main(["deploy", "--config", str(write_config()), "--local", *flags]) == 2
    assert "error:" in capsys.readouterr().out


def test_a_bad_config_under_local_stops_before_the_emulator(tmp_path, capsys, no_aws):
    (tmp_path / "stack.toml").write_bytes(b'[stack]\nname = "\xff"\n')
    code, err = run_cli(["deploy", "--config", str(tmp_path / "stack.toml"), "--local", "--serve"], capsys)
    one_line_naming(code, err, "not UTF-8")
