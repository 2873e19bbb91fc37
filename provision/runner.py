"""Runs the steps in order (deploy, plan) or in reverse (teardown), saving state after each."""
from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from .context import Context
from .errors import DeployError, describe


def deploy(ctx: Context, steps) -> None:
    """ensure() each step (a step the config does not use removes what it left); state is saved after every step."""
    if ctx.state.problem:
        ctx.out.note(ctx.state.problem)
    for step in steps:
        _run(ctx, step, step.ensure, destroying=False)


def teardown(ctx: Context, steps) -> None:
    """destroy() every step in reverse order, whether or not the config still uses it."""
    if ctx.state.problem:
        ctx.out.note(ctx.state.problem)
    for step in reversed(steps):
        _run(ctx, step, step.destroy, destroying=True)
        ctx.state.drop(step.name)
        ctx.state.save()


def _run(ctx: Context, step, action, destroying: bool) -> None:
    try:
        with ctx.out.step(step.title, planning=ctx.planning, destroying=destroying) as report:
            ctx.report = report
            action(ctx)
    except KeyboardInterrupt:
        _save(ctx)
        ctx.out.failed(step.title, "interrupted")
        raise Interrupted(step.title) from None
    except (ClientError, BotoCoreError, DeployError) as exc:
        _save(ctx)
        ctx.out.failed(step.title, "failed")
        raise StepFailed(step.title, describe(exc)) from exc
    _save(ctx)


def _save(ctx: Context) -> None:
    if not ctx.planning:
        ctx.state.save()


class Interrupted(Exception):
    def __init__(self, step: str):
        super().__init__(step)
        self.step = step


class StepFailed(DeployError):
    def __init__(self, step: str, detail: str):
        super().__init__(f"{step}: {detail}")
        self.step = step
