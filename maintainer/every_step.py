"""The settings under which every step makes something: by default the alerts, the health alarms, the RDS
Proxy and the cache policy are off, and the mail is made only with email validation.

One place for them, read by the call recorder (``recording.py``: its changed config, so every step's calls
are recorded) and by the tests that hold every step to something (``tests/support.py``). A step that a
setting switches on adds it here; ``tests/test_registry.py`` and ``tests/test_recording_configs.py`` name a
step that makes nothing under them.
"""
from __future__ import annotations

from typing import Any

# section -> settings; the database's password goes with auth = "iam" (DROPPED)
SWITCHES: dict[str, dict[str, Any]] = {
    "alerts": {"email": "ops@example.com"},
    "database": {"auth": "iam", "proxy": True},
    "api": {"cache_seconds": 60},
}
DROPPED = ("database.password_env",)


def every_step_on(zone_id: str, validation: str = "email") -> tuple[dict[str, dict[str, Any]], tuple[str, ...]]:
    """(overrides, keys to drop) of a config, in a hosted zone, under which every step makes something (with
    validation = "dns", every step but the mail, which receives in a region other than the default)."""
    domain = {"hosted_zone_id": zone_id, "validation": validation, "mail_region": "us-west-2"}
    return {**{name: dict(values) for name, values in SWITCHES.items()}, "domain": domain}, DROPPED
