"""One declaration per step: each module in ``provision/steps/__init__.py``'s list declares its ``STEP``
(provision/registry.py), so the graph, the inventory, the policy's ARNs and the crash points derive from the
declarations, and a step that forgets a part of its declaration fails here, by name."""
import inspect

import pytest

from maintainer.every_step import every_step_on
from provision import config as config_module, registry, steps
from provision.iam import policy
from provision.steps import STEPS
from tests.support import inventory, seeded_account

MAKERS = [step for step in STEPS if not step.owns_nothing]


@pytest.mark.parametrize("module", steps.MODULES, ids=lambda module: module.__name__.rsplit(".", 1)[1])
def test_every_listed_module_declares_its_step_under_its_own_name(module):
    short = module.__name__.rsplit(".", 1)[1]
    step = getattr(module, "STEP", None)
    assert isinstance(step, registry.Step), f"{module.__name__} declares no STEP = Step(...)"
    assert step.name == short, f"{module.__name__}: its STEP is named {step.name!r}, not after its module"
    for part in (step.ensure, step.destroy, step.observe):
        assert part is None or sys_module(part) in (module, registry), \
            f"{step.name}: {part.__qualname__} is not the module's own (declare the step beside its code)"


def sys_module(function):
    return inspect.getmodule(function)


def test_every_step_module_in_the_package_is_listed():
    """A module with a STEP that is not in MODULES would never run: the package lists every one."""
    import pkgutil
    from importlib import import_module

    declared = {name for _, name, _ in pkgutil.iter_modules(steps.__path__)
                if hasattr(import_module(f"provision.steps.{name}"), "STEP")}
    assert declared == {module.__name__.rsplit(".", 1)[1] for module in steps.MODULES}


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.name)
def test_a_step_that_owns_nothing_only_waits(step):
    if step.owns_nothing:
        assert step.destroy is registry.nothing, f"{step.name} owns nothing, so its teardown has nothing to do"
    else:
        assert step.destroy is not registry.nothing, f"{step.name} owns resources: its destroy must remove them"


@pytest.mark.parametrize("step", MAKERS, ids=lambda step: step.name)
def test_every_step_that_makes_something_lists_it_and_names_its_creating_and_removing_calls(step):
    assert step.inventory, f"{step.name}: no inventory lister (how does a test see what it made?)"
    assert step.leaves, f"{step.name}: no leaves (what should a test find its listers list after a deploy?)"
    assert list(inspect.signature(step.leaves).parameters) == ["config", "account"], step.leaves.__qualname__
    assert step.creates, f"{step.name}: no creating calls (where does a crash test stop it?)"
    assert step.removes, f"{step.name}: no removing calls (where does a crash test stop its teardown?)"
    for lister in step.inventory:
        assert list(inspect.signature(lister).parameters) == ["config"], f"{step.name}: {lister.__qualname__}"
    for change in step.drift:  # the call recorder's (maintainer/recording.py): tests/test_recording_drift.py
        assert list(inspect.signature(change).parameters) == ["session", "config"], f"{step.name}: {change.__qualname__}"
    for service, patterns in step.arns.items():
        assert service == service.lower() and ":" not in service, f"{step.name}: {service!r} is not an IAM prefix"
        assert len(inspect.signature(patterns).parameters) == 2, f"{step.name}: {patterns.__qualname__}"


def test_an_account_with_only_the_operators_database_has_nothing_of_the_stack(load_seeded):
    """Each lister runs against AWS's answers (moto here) and finds nothing before a deploy: the database's
    VPC and security group are the operator's, not the stack's."""
    assert inventory(load_seeded({"alerts": {"email": "ops@example.com"}})) == []


def test_the_policy_names_each_service_from_the_steps_that_own_it(load_config):
    """The policy's resources for a step-owned service are what the owning steps' patterns give, joined."""
    names = policy.Names(load_config(), "123456789012", policy.Network("vpc-0123456789abcdef0", "sg-0123456789abcdef0"))
    assert {"lambda", "logs", "acm", "cloudfront", "wafv2", "s3", "sns", "events", "route53", "iam"} <= \
        registry.services(STEPS)
    assert names.resources("lambda:GetFunction", "lambda", "GetFunction") == \
        ["arn:aws:lambda:eu-west-1:123456789012:function:demo-api"]
    groups = names.resources("logs:PutRetentionPolicy", "logs", "PutRetentionPolicy")
    assert {"arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/demo-api",
            "arn:aws:logs:us-east-1:123456789012:log-group:aws-waf-logs-demo:*"} <= set(groups)
    # each group and its streams; api_access_log names two groups (the access log, the stage's execution logs)
    assert len(groups) == len(set(groups)) == 2 * (len([s for s in STEPS if "logs" in s.arns]) + 1)
    assert registry.arns(STEPS, names, "nosuchservice:Do") is None


@pytest.mark.parametrize("validation", ["email", "dns"])
def test_every_step_makes_something_under_the_tests_every_step_config(write_config, validation):
    """The config the tests hold every step to (maintainer/every_step.py) switches each one on."""
    cfg = config_module.load(write_config(*every_step_on("Z0TEST", validation)))
    off = [step.name for step in MAKERS if not step.leaves(cfg, seeded_account())]
    assert off == ([] if validation == "email" else ["mail"]), \
        f"{off} make nothing with validation = {validation!r} and the settings of maintainer/every_step.py: add " \
        "the setting that switches them on to its SWITCHES"
