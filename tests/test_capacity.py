"""What the stack admits, stated: each wall's rate from the config, and the database's connections by class."""
import pytest

from provision import capacity, config as config_module


@pytest.mark.parametrize("instance_class, connections", [
    ("db.t4g.micro", 64), ("db.t3.small", 128), ("db.m6g.large", 512), ("db.r7g.xlarge", 2048),
    ("db.x2g.large", None), ("", None)])
def test_the_connection_limit_follows_the_class_memory(instance_class, connections):
    assert capacity.max_connections(instance_class) == connections


def test_the_summary_names_where_one_caller_and_all_callers_stop(write_config):
    cfg = config_module.load(write_config({"access": {"rate_limit": 6000, "rate_window_s": 60},
                                           "api": {"throttle_rate": 50, "throttle_burst": 100}}))
    line = capacity.summary(cfg, "db.t4g.micro")
    assert line.startswith("one caller stops first at the usage plan (50.0/s), all callers at the usage plan")
    assert "the per-caller limit (6000 per 60 s, WAF) 100.0/s" in line and "the function (10 concurrent" in line


@pytest.mark.parametrize("concurrency, warned", [(10, False), (0, True), (100, True)])
def test_a_function_that_may_open_more_connections_than_the_database_is_said(write_config, concurrency, warned):
    cfg = config_module.load(write_config({"function": {"max_concurrency": concurrency}}))
    assert ("lower [function] max_concurrency" in capacity.summary(cfg, "db.t4g.micro")) is warned
