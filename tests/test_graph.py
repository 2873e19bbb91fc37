"""The steps as a graph: declared needs, side-by-side runs, stable output, stopping cleanly."""
import signal
import threading
from dataclasses import replace

import pytest

from maintainer.every_step import every_step_on
from provision import graph, runner
from provision.errors import UndeclaredRead
from provision.registry import Step
from provision.state import State
from provision.steps import STEPS
from tests.aws_rules import Rule, operation
from tests.support import Run, inventory, quiet_context

pytestmark = pytest.mark.iam


def _named(name: str) -> Step:
    return next(step for step in STEPS if step.name == name)


def test_a_cycle_or_an_unknown_need_is_refused():
    a = Step("a", "A", print, print, needs=("b",))
    b = Step("b", "B", print, print, needs=("a",))
    with pytest.raises(ValueError, match="cycle"):
        graph.check((a, b))
    with pytest.raises(ValueError, match="unknown"):
        graph.check((Step("a", "A", print, print, needs=("nope",)),))
    with pytest.raises(ValueError, match="loose"):
        graph.check((b, Step("a", "A", print, print, loose=("b",))))


def test_teardown_waits_only_for_what_holds_on():
    """The CloudFront chain (distribution -> WAF -> certificate) and the function's chain (function ->
    network interfaces -> security group -> role) wait side by side: AWS lets a function go while an
    integration names it, and a REST API while a distribution names its domain. These are AWS's facts,
    stated here apart from the declarations on purpose: derived from them, they could not fail."""
    waits = graph.teardown_waits(STEPS)
    assert waits["function"] == {"invoke_permission", "alarms"}  # the policy statement; the metric filter on its log group
    assert waits["api"] == {"api_access_log"}  # the log is on its stage; the permission only names the API
    assert waits["security_groups"] == {"function", "proxy"} and waits["iam_role"] == {"function"}
    assert waits["proxy"] == set()  # the proxy goes (minutes on AWS) while the function does
    assert waits["waf"] == {"waf_logging", "cloudfront"}
    assert waits["certificate"] == {"alerts", "certificate_issued"}
    # the certificate needed the mail only to be validated; the mail's records wait for the domain's
    assert waits["mail"] == {"domain_record"}


def test_a_step_reading_state_it_does_not_need_fails(cfg):
    """Every cross-step read must be declared: the function without its needs reads the role's state."""
    state = State(cfg.state_dir / "demo.json", "demo")
    view = state.view("function", graph.ancestors((*STEPS,))["function"])
    assert view.get("iam_role") == {}
    undeclared = state.view("function", frozenset({"security_groups"}))
    with pytest.raises(UndeclaredRead, match="function read the state of iam_role"):
        undeclared.get("iam_role")
    steps = tuple(replace(step, needs=(), loose=()) if step.name in ("function", "api") else step
                  for step in STEPS)
    with pytest.raises(UndeclaredRead):
        runner.deploy(quiet_context(cfg), steps)


def _rendezvous(first: str, then: str) -> tuple[Rule, Rule]:
    """``then`` (a waf call) lets ``first`` (a Lambda call) through only once it was sent itself: this
    deadlocks, and the rule says so after 30 s, unless the two steps run side by side."""
    sent = threading.Event()

    def wait_for_waf(call):
        assert sent.wait(30), f"{first} waited 30 s for {then}: the steps did not run side by side"
        return call.send()

    def mark(call):
        sent.set()
        return call.send()

    return (Rule("rendezvous", "test", operation("lambda", first), wait_for_waf),
            Rule("rendezvous", "test", operation("wafv2", then), mark))


def test_independent_chains_run_side_by_side(aws_rules, load_seeded, hosted_zone, write_config):
    """In STEPS order the function comes before WAF: CreateFunction returns only after CreateIPSet was sent."""
    overrides = {"domain": {"hosted_zone_id": hosted_zone}}
    cfg = load_seeded(overrides)
    lambda_rule, _ = aws_rules(*_rendezvous("CreateFunction", "CreateIPSet"))
    run = Run("deploy", write_config(overrides))
    assert run.code == 0, run.text
    assert len(lambda_rule.seen) == 1
    lines = [line.split(None, 1) for line in run.text.splitlines()
             if line[:10].strip() in ("created", "updated", "unchanged", "absent")]
    assert [title for _, title in lines] == [step.title for step in STEPS]
    assert "function demo-api" in inventory(cfg) and "web acl demo" in inventory(cfg)


def test_the_api_is_built_while_the_function_is_made(aws_rules, load_seeded, hosted_zone, write_config):
    """The REST API only names the function (its ARN): CreateFunction returns only after the API's method
    was sent, which deadlocks unless the api step runs beside the function's; the invoke permission, which
    needs both, comes after both."""
    overrides = {"domain": {"hosted_zone_id": hosted_zone}}
    cfg = load_seeded(overrides)
    sent = threading.Event()
    order: list[str] = []

    def wait_for_the_api(call):
        assert sent.wait(30), "CreateFunction waited 30 s for PutMethod: the api step waited for the function"
        order.append(call.operation)
        return call.send()

    def mark(call):
        sent.set()
        order.append(call.operation)
        return call.send()

    def permission(call):
        order.append(call.operation)
        return call.send()

    aws_rules(Rule("rendezvous", "test", operation("lambda", "CreateFunction"), wait_for_the_api),
              Rule("rendezvous", "test", operation("apigateway", "PutMethod"), mark),
              Rule("order", "test", operation("lambda", "AddPermission"), permission))
    run = Run("deploy", write_config(overrides))
    assert run.code == 0, run.text
    assert order == ["PutMethod", "CreateFunction", "AddPermission"]
    assert "invoke permission demo-apigateway-get" in inventory(cfg)


def test_teardown_removes_the_function_while_cloudfront_disables(aws_rules, load_seeded, hosted_zone, write_config):
    """Backwards in STEPS order the distribution goes first: DeleteDistribution returns only after
    DeleteFunction was sent, which deadlocks unless the two chains are torn down side by side."""
    overrides = {"domain": {"hosted_zone_id": hosted_zone}}
    cfg = load_seeded(overrides)
    path = write_config(overrides)
    assert Run("deploy", path).code == 0
    sent = threading.Event()

    def mark(call):
        sent.set()
        return call.send()

    def wait_for_function(call):
        assert sent.wait(30), "DeleteDistribution waited 30 s for DeleteFunction: the chains ran one after the other"
        return call.send()

    aws_rules(Rule("rendezvous", "test", operation("cloudfront", "DeleteDistribution"), wait_for_function),
              Rule("rendezvous", "test", operation("lambda", "DeleteFunction"), mark))
    down = Run("teardown", path, "--yes")
    assert down.code == 0, down.text
    assert inventory(cfg) == []


def test_ctrl_c_in_the_main_thread_stops_every_step_and_saves(aws_rules, load_seeded, hosted_zone, write_config):
    """SIGINT lands in the main thread, which waits for the steps: they stop at their next call or sleep."""
    overrides = {"domain": {"hosted_zone_id": hosted_zone}}
    cfg = load_seeded(overrides)
    path = write_config(overrides)

    def interrupt(call):
        answer = call.send()
        signal.raise_signal(signal.SIGINT)
        return answer

    aws_rules(Rule("ctrl-c", "test", operation("lambda", "CreateFunction"), interrupt))
    run = Run("deploy", path)
    assert run.code == 130, run.text
    assert "interrupted during '" in run.text and "Lambda function" in run.text
    recorded = State.load(cfg.state_dir / "demo.json", "demo").resources
    assert {"iam_role", "security_groups"} <= set(recorded)
    assert threading.active_count() == 1 or all(not t.name.startswith("step") for t in threading.enumerate())


def test_a_failed_step_stops_the_others_and_names_itself(aws_rules, load_seeded, hosted_zone, write_config):
    from tests.aws_rules import fail_with

    overrides = {"domain": {"hosted_zone_id": hosted_zone}}
    cfg = load_seeded(overrides)
    aws_rules(Rule("refused", "test", operation("wafv2", "CreateIPSet"),
                   fail_with("WAFLimitsExceededException", "too many IP sets")))
    run = Run("deploy", write_config(overrides))
    assert run.code == 1
    assert "error: WAF web ACL: " in run.text and "too many IP sets" in run.text
    assert "distribution" not in " ".join(inventory(cfg))
    recorded = State.load(cfg.state_dir / "demo.json", "demo").resources
    assert "cloudfront" not in recorded and "waf" not in recorded


def test_the_live_display_never_waits_for_the_print_lock():
    """rich's refresh thread renders the live lines while holding its own lock, and every print from a
    step takes that lock too: a renderer that also took the print lock hung a terminal run (a lock taken in
    two orders). The renderer must get its rows while another thread holds the print lock."""
    import io

    from rich.console import Console

    from provision.output import Output
    from provision.progress import Board

    board = Board(Output(Console(file=io.StringIO(), width=120, force_terminal=True)))
    board.started("Lambda function")
    board.waiting("Lambda function", "waiting for Lambda function demo-api to be Active")
    rendered = []
    with board.lock:
        renderer = threading.Thread(target=lambda: rendered.append(board._render()), daemon=True)
        renderer.start()
        renderer.join(5)
    assert rendered, "the live display waited for the print lock"
    console = Console(file=io.StringIO(), width=120)
    console.print(rendered[0])
    assert "Lambda function" in console.file.getvalue() and "to be Active" in console.file.getvalue()


def _changes_in_order(monkeypatch) -> list[tuple[str, str]]:
    """Every change any step makes, as ("start" | "end", step name) in the order they happen (the run's own,
    the lease's, are no step's)."""
    from provision import context

    by_title = {step.title: step.name for step in STEPS}
    events: list[tuple[str, str]] = []
    lock = threading.Lock()
    change = context.Context.change

    def recorded(self, kind, what, call, /, *args, **kwargs):
        name = by_title.get(self.report.title)
        if name is None:
            return change(self, kind, what, call, *args, **kwargs)
        with lock:
            events.append(("start", name))
        try:
            return change(self, kind, what, call, *args, **kwargs)
        finally:
            with lock:
                events.append(("end", name))

    monkeypatch.setattr(context.Context, "change", recorded)
    return events


def _after(events: list[tuple[str, str]], later: str, earlier: str) -> bool:
    """Whether every change of ``later`` started after every change of ``earlier`` ended."""
    starts = [i for i, (kind, name) in enumerate(events) if kind == "start" and name == later]
    ends = [i for i, (kind, name) in enumerate(events) if kind == "end" and name == earlier]
    return min(starts) > max(ends)


def test_the_declared_graph_holds_for_every_change_of_a_whole_deploy_and_teardown(load_seeded, hosted_zone,
                                                                                   write_config, monkeypatch):
    """From the declarations, not a list: with every step making something (``every_step_on``), each step's
    changes start only once those of every step it needs are over, and in teardown only once those of every
    step holding on to it (needing it, not loosely) are."""
    overrides, drop = every_step_on(hosted_zone)
    load_seeded(overrides, drop)
    path = write_config(overrides, drop)
    makers = [step for step in STEPS if not step.owns_nothing]
    for command, pairs in (("deploy", [(step.name, need) for step in STEPS for need in step.needs]),
                           ("teardown", [(need, step.name) for step in STEPS for need in step.needs
                                         if need not in step.loose])):
        events = _changes_in_order(monkeypatch)
        run = Run(command, path, *(("--yes",) if command == "teardown" else ()))
        assert run.code == 0, run.text
        changed = {name for _, name in events}
        assert {step.name for step in makers} <= changed, f"{command}: steps that changed nothing"
        wrong = [(later, earlier) for later, earlier in pairs
                 if {later, earlier} <= changed and not _after(events, later, earlier)]
        assert not wrong, f"{command}: changes of the first began before those of the second were over: {wrong}"
