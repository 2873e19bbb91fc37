"""The call recorder's changes behind the stack's back (maintainer/recording.py ``_drift``) are the steps'
own (``STEP.drift``, provision/registry.py), taken from STEPS: a new step's drift is made without editing the
recorder, and a deploy repairs each step's, so its repairing calls are in the catalog."""
from dataclasses import replace

import boto3
import pytest

from maintainer import recording
from maintainer.every_step import every_step_on
from provision.clients import is_changing
from provision.registry import Step
from provision.steps import STEPS
from tests.support import Run, inventory

DRIFTING = [step for step in STEPS if step.drift]


def deploy(path) -> list[str]:
    """A deploy's changing calls, but for the lease's item (DynamoDB), which every run takes and gives back."""
    session, changes = boto3.Session(), []

    def record(model, **_):
        if is_changing(model.name) and model.service_model.service_name != "dynamodb":
            changes.append(model.name)
    session.events.register("before-call", record)
    run = Run("deploy", path, session=session)
    assert run.code == 0, run.text
    return changes


def test_the_drift_is_each_steps_own_in_steps_order_and_a_new_steps_is_made(monkeypatch, aws, write_config):
    made = []

    def drift_of(name):
        return lambda session, config: made.append((name, session, config))

    stand_ins = tuple(replace(step, drift=(drift_of(step.name),)) if step.drift
                      else step for step in STEPS)
    new = Step("rds_proxy", "RDS Proxy", lambda ctx: None, lambda ctx: None, needs=("security_groups",),
               drift=(drift_of("rds_proxy"),))
    monkeypatch.setattr(recording, "STEPS", (*stand_ins, new))
    seeder = boto3.Session()
    recording._drift(seeder, write_config({"api": {"stage": "v2"}}))
    assert [name for name, _, _ in made] == [step.name for step in DRIFTING] + ["rds_proxy"]
    assert all(session is seeder and config.stack.name == "demo" and config.api.stage == "v2"
               for _, session, config in made)  # through the seeder's session, for the config given
    assert {"iam_role", "function", "api", "mail"} <= {step.name for step in DRIFTING}


@pytest.mark.iam
def test_a_deploy_repairs_each_steps_drift_then_changes_nothing(load_seeded, hosted_zone, write_config):
    """Each step's drift alone, then a deploy: it changes something (the repair the recorder records); what
    deploy leaves (an inline policy added to the role) teardown copes with."""
    overrides, drop = every_step_on(hosted_zone)
    cfg = load_seeded(overrides, drop)
    path = write_config(overrides, drop)
    deploy(path)
    assert deploy(path) == []
    for step in DRIFTING:
        for change in step.drift:
            change(boto3.Session(), cfg)
        assert deploy(path), f"{step.name}: its drift left nothing for a deploy to repair"
    assert deploy(path) == []
    down = Run("teardown", path, "--yes")
    assert down.code == 0, down.text
    assert inventory(cfg) == []
