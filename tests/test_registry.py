"""One registry: every step in STEPS says what it owns (provision/registry.py), so the inventory, the policy's
ARNs and the crash points derive from STEPS, and a new step without its OWNS fails here, by name."""
import inspect
import sys

import pytest

from provision import policy, registry
from provision.steps import STEPS
from tests.support import inventory

MAKERS = [step for step in STEPS if step.owns is not registry.NOTHING]


def module_of(step):
    return sys.modules[step.destroy.__module__]


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.name)
def test_every_step_passes_its_modules_owns_or_only_waits(step):
    module = module_of(step)
    if module.__name__ == "provision.steps":  # the step's destroy is the package's: it only waits
        assert step.owns is registry.NOTHING, f"{step.name}: a waiting step owns nothing"
        return
    assert isinstance(getattr(module, "OWNS", None), registry.Owns), f"{module.__name__} exports no OWNS"
    assert step.owns is module.OWNS, f"{step.name}: its STEPS line must pass owns={module.__name__.rsplit('.', 1)[1]}.OWNS"


@pytest.mark.parametrize("step", MAKERS, ids=lambda step: step.name)
def test_every_step_that_makes_something_lists_it_and_names_its_creating_and_removing_calls(step):
    assert step.owns.inventory, f"{step.name}: no inventory lister (how does a test see what it made?)"
    assert step.owns.creates, f"{step.name}: no creating calls (where does a crash test stop it?)"
    assert step.owns.removes, f"{step.name}: no removing calls (where does a crash test stop its teardown?)"
    for lister in step.owns.inventory:
        assert list(inspect.signature(lister).parameters) == ["config"], f"{step.name}: {lister.__qualname__}"
    for change in step.owns.drift:  # the call recorder's (maintainer/recording.py): tests/test_recording_drift.py
        assert list(inspect.signature(change).parameters) == ["session", "config"], f"{step.name}: {change.__qualname__}"
    for service, patterns in step.owns.arns.items():
        assert service == service.lower() and ":" not in service, f"{step.name}: {service!r} is not an IAM prefix"
        assert len(inspect.signature(patterns).parameters) == 2, f"{step.name}: {patterns.__qualname__}"


def test_an_account_with_only_the_operators_database_has_nothing_of_the_stack(load_seeded):
    """Each lister runs against AWS's answers (moto here) and finds nothing before a deploy: the database's
    VPC and security group are the operator's, not the stack's."""
    assert inventory(load_seeded({"alerts": {"email": "ops@example.com"}})) == []


def test_the_policy_names_each_service_from_the_steps_that_own_it(load_config):
    """The policy's resources for a step-owned service are what the owning steps' patterns give, joined."""
    names = policy.Names(load_config(), "123456789012", policy.Network("vpc-0123456789abcdef0", "sg-0123456789abcdef0"))
    owned = [step.owns for step in STEPS]
    assert {"lambda", "logs", "acm", "cloudfront", "wafv2", "s3", "sns", "events", "route53", "iam"} <= \
        registry.services(owned)
    assert names.resources("lambda:GetFunction", "lambda", "GetFunction") == \
        ["arn:aws:lambda:eu-west-1:123456789012:function:demo-api"]
    groups = names.resources("logs:PutRetentionPolicy", "logs", "PutRetentionPolicy")
    assert {"arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/demo-api",
            "arn:aws:logs:us-east-1:123456789012:log-group:aws-waf-logs-demo:*"} <= set(groups)
    # each group and its streams; api_access_log names two groups (the access log, the stage's execution logs)
    assert len(groups) == len(set(groups)) == 2 * (len([s for s in STEPS if "logs" in s.owns.arns]) + 1)
    assert registry.arns(owned, names, "nosuchservice:Do") is None
