"""[database] user: only what MySQL and IAM's rds-db:connect ARN both read literally (issue 15), and
[stack] check_permissions."""
import subprocess
import sys
from pathlib import Path

import pytest

from provision import config as config_module
from provision.errors import ConfigError

BAD_USERS = ["*", "ad*", "api?", "%", "api/reader", "api'reader", 'api"reader', "api reader", "api_reader\n",
             "${aws:username}", "-api", ".api", "api`r", "a" * 33]


@pytest.mark.parametrize("user", BAD_USERS)
def test_a_user_iam_or_mysql_would_read_as_a_pattern_is_refused(write_config, user):
    with pytest.raises(ConfigError) as err:
        config_module.load(write_config({"database": {"user": user}}))
    assert err.value.key == "database.user"


@pytest.mark.parametrize("user", ["api_reader", "API.reader-2", "_svc", "r"])
def test_plain_users_are_accepted(write_config, user):
    assert config_module.load(write_config({"database": {"user": user}})).database.user == user


def test_the_console_script_exits_2_with_one_line_naming_the_key(write_config):
    path = write_config({"database": {"user": "api_reader\n"}})
    script = Path(sys.executable).with_name("rds-edge-api")
    done = subprocess.run([str(script), "policy", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "database.user" in line and "'api_reader\\n'" in line


def test_check_permissions_is_a_boolean_off_by_default(write_config):
    assert config_module.load(write_config()).stack.check_permissions is False
    assert config_module.load(write_config({"stack": {"check_permissions": True}})).stack.check_permissions is True
    with pytest.raises(ConfigError) as err:
        config_module.load(write_config({"stack": {"check_permissions": "yes"}}))
    assert err.value.key == "stack.check_permissions"
