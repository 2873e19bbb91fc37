"""What a deploy leaves is what the steps declare (``STEP.leaves``, provision/registry.py) for the config,
as AWS lists it (``STEP.inventory``, plain boto3), for the settings that add or remove resources; teardown
then leaves nothing."""
import pytest

from maintainer.every_step import every_step_on
from tests.support import Run, expected, inventory, kinds

pytestmark = pytest.mark.iam

ZONED = {"database": {"auth": "iam", "proxy": True}, "api": {"cache_seconds": 30},
         "logs": {"api_access": False, "cloudfront": False}, "access": {"allowed_cidrs": ["203.0.113.0/24"]}}
VARIANTS = {  # name -> hosted zone id -> (overrides, drop)
    "every step on": every_step_on,
    "email validation, mail in another region": lambda zone: (
        {"domain": {"hosted_zone_id": zone, "validation": "email", "mail_region": "us-west-2"}}, ()),
    "no hosted zone": lambda zone: ({}, ()),
    "proxy, cache, no logs, IPv4 only": lambda zone: (
        {**ZONED, "domain": {"hosted_zone_id": zone}}, ("database.password_env",)),
    "certificate alerts without health alarms": lambda zone: (
        {"alerts": {"email": "ops@example.com", "health": False}, "domain": {"hosted_zone_id": zone}}, ()),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_deploy_leaves_what_the_steps_declare_and_teardown_nothing(variant, load_seeded, hosted_zone,
                                                                     write_config):
    overrides, drop = VARIANTS[variant](hosted_zone)
    cfg = load_seeded(overrides, drop)
    path = write_config(overrides, drop)
    run = Run("deploy", path)
    assert run.code == 0, run.text
    assert kinds(inventory(cfg)) == expected(cfg)
    down = Run("teardown", path, "--yes")
    assert down.code == 0, down.text
    assert inventory(cfg) == []
