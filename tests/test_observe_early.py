"""A step's observe starts with the run; ensure gets what it saw unless a step it needs changed something."""
import threading
from dataclasses import replace

import pytest

from provision import config as config_module, runner
from provision.errors import DeployError, UndeclaredRead
from provision.steps import Step
from tests.support import quiet_context


@pytest.fixture
def run_ctx(aws, write_config):
    """A context in moto (the runner resolves the account once); the steps below make no other call."""
    return quiet_context(config_module.load(write_config()))


def _nothing(ctx):
    pass


def _steps(first_ensure, observe, seen_by_second: list, second_ensure=None):
    """first -> second; second has an observe, and records the seen its ensure got."""
    def ensure(ctx, seen=None):
        seen_by_second.append(seen)
        if second_ensure:
            second_ensure(ctx)
    return (Step("first", "First", first_ensure, _nothing),
            Step("second", "Second", ensure, _nothing, needs=("first",), observe=observe))


def test_observe_runs_before_what_the_step_needs_is_done(run_ctx):
    observed = threading.Event()

    def first(ctx):
        assert observed.wait(10), "second's observe waited for first: it did not start with the run"

    def observe(ctx):
        observed.set()
        return {"seen": "early"}

    seen: list = []
    runner.deploy(run_ctx, _steps(first, observe, seen))
    assert seen == [{"seen": "early"}]


def test_a_change_before_the_step_makes_it_observe_again(run_ctx):
    def first(ctx):
        ctx.change("create", "something second's observe may have missed", lambda: None)

    seen: list = []
    runner.deploy(run_ctx, _steps(first, lambda ctx: {"seen": "early"}, seen))
    assert seen == [None]  # ensure observes itself, now that first is done


def test_a_look_at_its_own_resources_alone_holds_whatever_came_before(run_ctx):
    def first(ctx):
        ctx.change("create", "something second's observe does not read", lambda: None)

    seen: list = []
    first_step, second = _steps(first, lambda ctx: {"seen": "early"}, seen)
    runner.deploy(run_ctx, (first_step, replace(second, sees_needs=False)))
    assert seen == [{"seen": "early"}]


def test_a_planned_change_before_the_step_counts_too(aws, write_config):
    ctx = quiet_context(config_module.load(write_config()), planning=True)
    seen: list = []
    runner.deploy(ctx, _steps(lambda c: c.change("create", "planned", lambda: None), lambda c: "early", seen))
    assert seen == [None]


def test_an_early_observe_reads_only_its_own_state(run_ctx):
    run_ctx.state.put("first", {"id": "from an earlier run"})
    run_ctx.state.put("second", {"id": "its own"})
    own: list = []

    def reads_own(ctx):
        own.append(ctx.state.get("second"))
        return ctx.state.earlier("first")  # a hint is allowed

    seen: list = []
    runner.deploy(run_ctx, _steps(_nothing, reads_own, seen))
    assert own == [{"id": "its own"}] and seen == [{"id": "from an earlier run"}]

    with pytest.raises(UndeclaredRead, match="second read the state of first"):
        runner.deploy(run_ctx, _steps(_nothing, lambda ctx: ctx.state.get("first"), []))


def test_an_observe_that_changes_something_is_refused(run_ctx):
    def changes(ctx):
        ctx.change("update", "not a read", lambda: None)

    with pytest.raises(RuntimeError, match="second's observe changed something"):
        runner.deploy(run_ctx, _steps(_nothing, changes, []))


def test_an_aws_error_in_the_early_observe_is_met_again_in_the_steps_turn(run_ctx):
    from botocore.exceptions import ClientError

    calls = []

    def observe(ctx):
        calls.append("observe")
        if len(calls) == 1:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "GetThing")
        return "second look"

    def ensure_observing(ctx, seen=None):
        seen_by.append(seen if seen is not None else observe(ctx))

    seen_by: list = []
    steps = (Step("first", "First", _nothing, _nothing),
             Step("second", "Second", ensure_observing, _nothing, needs=("first",), observe=observe))
    runner.deploy(run_ctx, steps)
    assert calls == ["observe", "observe"] and seen_by == ["second look"]


def test_teardown_observes_nothing(run_ctx):
    observed = []
    steps = (Step("first", "First", _nothing, _nothing),
             Step("second", "Second", _nothing, _nothing, needs=("first",), observe=observed.append))
    runner.teardown(run_ctx, steps)
    assert observed == []


def test_the_prologue_runs_while_the_observes_go_out_and_before_any_step(run_ctx):
    """deploy's account look, preflight and lease (``before``) overlap the early looks; no step starts first."""
    observed, order = threading.Event(), []

    def before():
        assert observed.wait(10), "the observes waited for the prologue: they did not start with the run"
        order.append("before")
        return True

    def observe(ctx):
        observed.set()
        return {"seen": "early"}

    seen: list = []
    runner.deploy(run_ctx, _steps(lambda ctx: order.append("first"), observe, seen), before=before)
    assert order == ["before", "first"] and seen == [{"seen": "early"}]


def test_a_prologue_that_waited_makes_every_step_look_again(run_ctx):
    """Taking the lease waited (another run held it): what the early looks saw may have changed since."""
    seen: list = []
    runner.deploy(run_ctx, _steps(_nothing, lambda ctx: {"seen": "early"}, seen), before=lambda: False)
    assert seen == [None]


def test_a_failing_prologue_stops_the_run_before_any_step(run_ctx):
    started: list = []

    def before():
        raise DeployError("preflight: something would fail")

    with pytest.raises(DeployError, match="preflight"):
        runner.deploy(run_ctx, _steps(lambda ctx: started.append("first"), lambda ctx: {"seen": "early"}, []),
                      before=before)
    assert started == []
