"""Runs the steps as their graph allows: deploy and plan forward, teardown backwards, state saved after each.

A step starts, in a thread of its own, as soon as the steps it waits for are
done (provision/graph.py), so independent chains (the certificate's, the
function's, WAF's) run side by side and their waits overlap. boto3 clients are
thread-safe; they are made under one lock (``Clients``), and the state file is
saved whole, under its own lock, after every step.

A step may split its ensure into ``observe`` (its reads, nothing else) and
ensure proper. On deploy and plan every step's observe starts with the run, so
the lookups of a step at the end of the graph go out in its first second, not
after its needs are done; ensure gets what was seen unless a step it needs
(directly or through others) made or planned a change, which may have changed
what there is to see: then it observes again itself. A step whose observe
reads only what the step itself changes says so (``sees_needs=False``): its
early look holds whatever the steps before it did. An early observe reads
only its own step's state (the others may be half-run).

When one step fails, is interrupted (Ctrl-C) or crashes, no further step starts
and the running ones stop at their next AWS call or sleep; what finished is
saved, and the first failure is what the run reports. The output keeps each
step's lines together, in the order of STEPS (progress.py).
"""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Callable

from botocore.exceptions import BotoCoreError, ClientError

from . import graph
from .clients import stoppable
from .context import Context
from .errors import DeployError, Interrupted, StepFailed, Stopped, describe
from .output import StepReport
from .progress import Board, StepOutput

HANDLED = (ClientError, BotoCoreError, DeployError)


def deploy(ctx: Context, steps, before: Callable[[], bool] | None = None) -> None:
    """ensure() each step (a step the config does not use removes what it left), each once its needs are done.

    before: what the run checks and takes before any step may change anything (deploy's account look,
    preflight and lease); it runs while every step's observe goes out, and no step starts until it is
    over. It answers whether the early looks still hold: False when it waited (for another run's lease,
    say), in which time the stack may have changed, so that every step looks again in its turn. If it
    raises, the observes are stopped and nothing else runs."""
    steps = tuple(steps)
    _Walk(ctx, steps, graph.deploy_waits(steps), destroying=False, before=before).run()


def teardown(ctx: Context, steps) -> None:
    """destroy() every step once the steps holding on to it are gone, whether or not the config still uses it."""
    steps = tuple(steps)
    _Walk(ctx, steps, graph.teardown_waits(steps), destroying=True).run()


@dataclass
class _Walk:
    ctx: Context
    steps: tuple
    waits: dict[str, frozenset[str]]
    destroying: bool
    before: Callable[[], bool] | None = None
    done: set[str] = field(default_factory=set)
    running: dict[Future, tuple] = field(default_factory=dict)
    early: dict[str, Future] = field(default_factory=dict)  # step -> its observe, started with the run
    contexts: dict[str, Context] = field(default_factory=dict)  # step -> its context (its report: what it changed)
    kept: dict[str, StepOutput] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    failure: tuple | None = None  # (step, exception): the first one

    def run(self) -> None:
        ctx = self.ctx
        ctx.clients.stopping.clear()
        readable = graph.ancestors(self.steps)
        interrupted = False
        with Board(ctx.out) as board, ThreadPoolExecutor(2 * len(self.steps), thread_name_prefix="step") as pool:
            try:
                if not self.destroying:
                    self._observe_early(pool, board)
                self._before()
                if ctx.state.problem:
                    ctx.out.note(ctx.state.problem)
                self._start_ready(pool, board, readable)
                while self.running:
                    finished, _ = wait(self.running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        self._finished(future)
                    self._print_ready()
                    if self.failure is None:
                        self._start_ready(pool, board, readable)
            except KeyboardInterrupt:  # Ctrl-C reaches the main thread only
                interrupted = True
                self._stop_running()
            self._print_ready(everything=True)
        self._merge_outputs()
        _save(ctx)
        self._raise(interrupted)

    def _stop_running(self) -> None:
        """Ctrl-C: the running steps stop at their next call; the run fails as interrupted during them."""
        titles = [step.title for step, _ in self.running.values()]
        self.ctx.clients.stopping.set()
        wait(self.running)
        for future in list(self.running):
            self._finished(future)
        self.failure = (None, Interrupted(", ".join(titles) or "between steps"))

    def _merge_outputs(self) -> None:
        """Each step's outputs into the run's, in STEPS order; a label set to None by a later step is removed."""
        for step in self.steps:
            for label, value in self.outputs.get(step.name, {}).items():
                if value is None:
                    self.ctx.outputs.pop(label, None)
                else:
                    self.ctx.outputs[label] = value

    def _observe_early(self, pool, board: Board) -> None:
        """Every step's observe at once, each seeing only its own state."""
        for step in self.steps:
            if step.observe is not None:
                early_ctx = replace(self.ctx, out=StepOutput(board, step.title), outputs={},
                                    sleep=_stoppable(self.ctx), report=StepReport(step.title),
                                    state=self.ctx.state.view(step.name, frozenset()))  # type: ignore[arg-type]
                self.early[step.name] = pool.submit(_observe, early_ctx, step)

    def _before(self) -> None:
        """The run's prologue, in this thread, beside the early observes; if it fails they stop."""
        if self.before is None:
            return
        try:
            still_hold = self.before()
        except BaseException:
            self.ctx.clients.stopping.set()
            wait(self.early.values())
            raise
        if not still_hold:
            self.early.clear()

    def _start_ready(self, pool, board: Board, readable) -> None:
        for step in self.steps:
            started = step.name in self.kept
            if not started and self.waits[step.name] <= self.done:
                out = self.kept[step.name] = StepOutput(board, step.title)
                own = self.outputs[step.name] = {}
                step_ctx = self.contexts[step.name] = replace(
                    self.ctx, out=out, outputs=own, sleep=_stoppable(self.ctx),
                    state=self.ctx.state.view(step.name, readable[step.name]))  # type: ignore[arg-type]
                early = self.early.get(step.name)
                if early is not None and step.sees_needs and any(self.contexts[name].report.changes
                                                                 for name in readable[step.name]):
                    early = None  # a step it needs changed what there is to see
                self.running[pool.submit(_run, step_ctx, step, self.destroying, early)] = (step, out)

    def _finished(self, future: Future) -> None:
        step, _ = self.running.pop(future)
        exc = future.exception()
        if exc is None:
            self.done.add(step.name)
        elif not isinstance(exc, Stopped) and self.failure is None:
            self.failure = (step, exc)
            self.ctx.clients.stopping.set()

    def _print_ready(self, everything: bool = False) -> None:
        """Blocks in STEPS order (reversed for teardown), each once it and those before it are over."""
        order = reversed(self.steps) if self.destroying else self.steps
        for step in order:
            out = self.kept.get(step.name)
            over = out is not None and not any(s is step for s, _ in self.running.values())
            if out is not None and over:
                out.flush()
            elif not everything:
                return

    def _raise(self, interrupted: bool) -> None:
        if self.failure is None:
            return
        step, exc = self.failure
        if interrupted:
            raise exc
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted(step.title) from None
        if isinstance(exc, HANDLED):
            raise StepFailed(step.title, describe(exc)) from exc
        raise exc


def _observe(ctx: Context, step) -> object:
    seen = step.observe(ctx)
    if ctx.report.changes:
        raise RuntimeError(f"step {step.name}'s observe changed something: {ctx.report.changes}")
    return seen


def _seen(step, early: Future | None) -> object:
    """What the step's early observe saw, if it may still be trusted and it worked; None: observe again."""
    if early is None:
        return None
    exc = early.exception()
    if exc is None:
        return early.result()
    if isinstance(exc, HANDLED):  # an AWS error: seen again, in the step's own turn, and reported from there
        return None
    raise exc  # a Stopped run, or a bug (an observe that read another step's state: UndeclaredRead)


def _run(ctx: Context, step, destroying: bool, early: Future | None = None) -> None:
    """One step in its thread: its lines kept together, the state saved whatever happens but a crash."""
    try:
        with ctx.out.step(step.title, planning=ctx.planning, destroying=destroying) as report:
            ctx.report = report
            if destroying:
                step.destroy(ctx)
            elif step.observe is not None:
                step.ensure(ctx, seen=_seen(step, early))
            else:
                step.ensure(ctx)
    except (KeyboardInterrupt, Stopped):
        _save(ctx)
        ctx.out.failed(step.title, "interrupted")
        raise
    except HANDLED:
        _save(ctx)
        ctx.out.failed(step.title, "failed")
        raise
    if destroying:
        ctx.state.drop(step.name)
    _save(ctx)


def _stoppable(ctx: Context) -> Callable[[float], None]:
    """The step's sleep, cut short when the run stops."""
    return stoppable(ctx.clients.stopping, ctx.sleep)


def _save(ctx: Context) -> None:
    if not ctx.planning:
        ctx.state.save()

