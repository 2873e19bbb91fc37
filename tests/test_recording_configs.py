"""The call recorder's configs (maintainer/recording.py ``configs``) switch on every step: a step that makes
nothing under any of them would have none of its calls in the catalog the operator's policy is built from,
and that policy would refuse them on a real account."""
import pytest

from maintainer import recording
from provision import config
from provision.iam.policy import VARIANTS
from provision.steps import STEPS
from tests.support import seeded_account


@pytest.fixture
def recorded_configs(tmp_path, monkeypatch) -> list[config.Config]:
    for name, value in recording.SECRETS.items():
        monkeypatch.setenv(name, value)
    loaded = []
    for validation, zone in VARIANTS:
        for role, text in recording.configs(validation, "Z0RECORDING" if zone else None).items():
            path = tmp_path / f"{validation}-{zone}{role}.toml"
            path.write_text(text, encoding="utf-8")
            loaded.append(config.load(path))
    return loaded


@pytest.mark.parametrize("step", [step for step in STEPS if step.leaves], ids=lambda step: step.name)
def test_every_step_makes_something_under_one_of_the_recorded_configs(step, recorded_configs):
    assert any(step.leaves(cfg, seeded_account()) for cfg in recorded_configs), (
        f"{step.name} makes nothing under any config maintainer/recording.py deploys: add the setting that "
        "switches it on to maintainer/every_step.py's SWITCHES, which its changed config takes")


def test_a_step_switched_off_is_seen_as_making_nothing(recorded_configs):
    """The check above can fail: a step whose setting none of the configs turns on is named."""
    proxy = next(step for step in STEPS if step.name == "proxy")
    assert not any(proxy.leaves(cfg, seeded_account()) for cfg in recorded_configs if not cfg.database.proxy)
    assert any(cfg.database.proxy for cfg in recorded_configs)
