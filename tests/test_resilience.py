"""Crash anywhere, re-run, converge; teardown from nothing but the config.

A crash is a BaseException raised from a botocore hook (right after AWS answered a creating call: the
resource exists, the response is lost) or from the state file's save (right after it was written). It
is not caught by the toolkit, as a killed process would not be. Tests then count resources with boto3.
"""
from collections import Counter

import boto3
import pytest

from maintainer.every_step import every_step_on
from provision.lock import stack_lock
from provision.state import State
from provision.steps import STEPS
from tests.support import Run, expected, inventory, kinds

pytestmark = pytest.mark.iam


class Crash(BaseException):
    """The process dies here."""


def crash_after_call(operation: str) -> boto3.Session:
    """A session whose first successful ``operation`` (``Operation*N``: its N-th) is followed by a crash."""
    session, seen = boto3.Session(), []
    operation, _, nth = operation.partition("*")

    def after_call(model, **_):
        if model.name == operation:
            seen.append(operation)
            if len(seen) == int(nth or 1):
                raise Crash(operation)

    session.events.register("after-call", after_call)
    return session


def crash_points(steps, kind: str = "creates") -> list[str]:
    """The calls that create (or remove) the steps' resources (each module's ``STEP``, provision/registry.py),
    in STEPS order; "Op*N" for the run's N-th call of a name (four steps make a log group, some side by side)."""
    points, seen = [], Counter()
    for step in steps:
        for operation in getattr(step, kind):
            seen[operation] += 1
            points.append(operation if seen[operation] == 1 else f"{operation}*{seen[operation]}")
    return points


# The DNS stack has every step on but the mail (tests/support.py's every_step_on), which makes nothing with DNS
# validation; the email stack crashes in the mail's calls and then the certificate's request, the first call of
# the step that needs it (the rest of that run is the DNS stack's).
DNS_CRASH_POINTS = crash_points(step for step in STEPS if step.name != "mail")
EMAIL_CRASH_POINTS = crash_points(step for step in STEPS if step.name == "mail") + [
    step.creates[0] for step in STEPS if "mail" in step.needs]


def chain_of(first: str) -> list[str]:
    """``first`` and the steps that need nothing outside its chain (mail -> certificate -> alerts, ...)."""
    chain = [first]
    for step in STEPS:
        if step.needs and set(step.needs) <= set(chain):
            chain.append(step.name)
    return chain


# Teardown: every step's removing calls on the DNS stack; on the email stack, those of the mail chain.
DNS_TEARDOWN_POINTS = crash_points((step for step in STEPS if step.name != "mail"), "removes")
EMAIL_TEARDOWN_POINTS = crash_points((step for step in STEPS if step.name in chain_of("mail")), "removes")
ALERTS = {"alerts": {"email": "ops@example.com"}}


@pytest.fixture
def dns_stack(load_seeded, hosted_zone, write_config):
    overrides, drop = every_step_on(hosted_zone, "dns")
    return load_seeded(overrides, drop), write_config(overrides, drop)


@pytest.fixture
def email_stack(load_seeded, hosted_zone, write_config):
    overrides = {"domain": {"hosted_zone_id": hosted_zone, "validation": "email", "mail_region": "us-west-2"},
                 **ALERTS}
    return load_seeded(overrides), write_config(overrides)


def crash_then_converge(cfg, path, session) -> list[str]:
    with pytest.raises(Crash):
        Run("deploy", path, session=session)
    rerun = Run("deploy", path)
    assert rerun.code == 0, rerun.text
    found = kinds(inventory(cfg))
    assert len(found) == len(set(found)), f"duplicates after re-run: {found}"
    settled = Run("deploy", path)
    assert settled.text.rstrip().endswith("(0 changing)"), settled.text
    return found


def teardown_without_state(cfg, path) -> None:
    (cfg.state_dir / "demo.json").unlink(missing_ok=True)
    down = Run("teardown", path, "--yes")
    assert down.code == 0, down.text
    assert inventory(cfg) == []


@pytest.mark.parametrize("operation", DNS_CRASH_POINTS)
def test_crash_after_a_create_then_rerun_converges(dns_stack, operation):
    cfg, path = dns_stack
    found = crash_then_converge(cfg, path, crash_after_call(operation))
    assert found == expected(cfg)
    teardown_without_state(cfg, path)


@pytest.mark.parametrize("operation", EMAIL_CRASH_POINTS)
def test_email_crash_after_a_create_then_rerun_converges(email_stack, operation):
    cfg, path = email_stack
    found = crash_then_converge(cfg, path, crash_after_call(operation))
    assert found == expected(cfg)
    teardown_without_state(cfg, path)


@pytest.mark.parametrize("operation", DNS_CRASH_POINTS[::3])
def test_teardown_right_after_a_crash_with_no_state(dns_stack, operation):
    cfg, path = dns_stack
    with pytest.raises(Crash):
        Run("deploy", path, session=crash_after_call(operation))
    teardown_without_state(cfg, path)


@pytest.mark.parametrize("boundary", range(1, 10))
def test_crash_right_after_the_state_was_written(dns_stack, monkeypatch, boundary):
    cfg, path = dns_stack
    saves, original = [], State.save

    def save_then_crash(self):
        original(self)
        saves.append(1)
        if len(saves) == boundary:
            raise Crash(f"after save {boundary}")

    monkeypatch.setattr(State, "save", save_then_crash)
    with pytest.raises(Crash):
        Run("deploy", path)
    monkeypatch.setattr(State, "save", original)
    assert crash_then_converge_from_here(cfg, path) == expected(cfg)
    teardown_without_state(cfg, path)


def crash_then_converge_from_here(cfg, path) -> list[str]:
    rerun = Run("deploy", path)
    assert rerun.code == 0, rerun.text
    settled = Run("deploy", path)
    assert settled.text.rstrip().endswith("(0 changing)"), settled.text
    return kinds(inventory(cfg))


@pytest.mark.parametrize("operation", DNS_TEARDOWN_POINTS)
def test_teardown_interrupted_half_way_finishes_on_rerun(dns_stack, operation):
    cfg, path = dns_stack
    assert Run("deploy", path).code == 0
    with pytest.raises(Crash):
        Run("teardown", path, "--yes", session=crash_after_call(operation))
    again = Run("teardown", path, "--yes")
    assert again.code == 0, again.text
    assert inventory(cfg) == []


def test_ctrl_c_keeps_state_names_the_step_and_rerun_continues(dns_stack):
    cfg, path = dns_stack
    session = boto3.Session()

    def interrupt(model, **_):
        if model.name == "CreateFunction":
            raise KeyboardInterrupt

    session.events.register("before-call", interrupt)
    run = Run("deploy", path, session=session)
    assert run.code == 130
    assert "interrupted during 'Lambda function'" in run.text and "run the same command again" in run.text
    recorded = State.load(cfg.state_dir / "demo.json", "demo").resources
    assert {"iam_role", "security_groups"} <= set(recorded)  # what the function needs is done and kept (the
    assert "function" not in recorded  # certificate, needed by none of these, may or may not be done by then)
    with stack_lock(cfg.state_dir / "demo.lock", "deploy"):  # released: free to take at once
        pass
    assert crash_then_converge_from_here(cfg, path) == expected(cfg)


def test_a_corrupt_state_file_falls_back_to_lookups(dns_stack):
    cfg, path = dns_stack
    assert Run("deploy", path).code == 0
    (cfg.state_dir / "demo.json").write_text("{ half written")
    run = Run("deploy", path)
    assert run.code == 0
    assert "unreadable" in run.text
    assert run.text.rstrip().endswith("(0 changing)")




@pytest.mark.parametrize("operation", EMAIL_TEARDOWN_POINTS)
def test_email_teardown_interrupted_half_way_finishes_on_rerun(email_stack, operation):
    cfg, path = email_stack
    assert Run("deploy", path).code == 0
    with pytest.raises(Crash):
        Run("teardown", path, "--yes", session=crash_after_call(operation))
    (cfg.state_dir / "demo.json").unlink(missing_ok=True)  # and the state is lost too
    again = Run("teardown", path, "--yes")
    assert again.code == 0, again.text
    assert inventory(cfg) == []
