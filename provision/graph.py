"""The steps as a dependency graph: who waits for whom, on deploy and on teardown.

A step ``needs`` the steps whose resources or state it uses; it starts once they
are done. Teardown walks the graph backwards: a step's resources go once every
step that holds on to them is gone. Some references AWS does not hold on to (a
distribution only names the API's domain; an integration only names the
function), so a step lists those among its needs as ``loose``: teardown need not
wait for them, and the CloudFront chain and the function's network-interface
chain then wait side by side.
"""
from __future__ import annotations

from typing import Iterable

from .registry import Step


def check(steps: Iterable[Step]) -> None:
    """Unknown or loose-but-not-needed names, duplicates and cycles are programming errors."""
    steps = list(steps)
    names = [step.name for step in steps]
    if len(names) != len(set(names)):
        raise ValueError(f"duplicate step names in {names}")
    for step in steps:
        unknown = set(step.needs) - set(names)
        if unknown:
            raise ValueError(f"step {step.name} needs unknown steps {sorted(unknown)}")
        if not set(step.loose) <= set(step.needs):
            raise ValueError(f"step {step.name}: loose {step.loose} must be among its needs")
    ancestors(steps)


def ancestors(steps: Iterable[Step]) -> dict[str, frozenset[str]]:
    """Every step each step depends on, directly or through others: the state it may read."""
    needs = {step.name: step.needs for step in steps}
    found: dict[str, frozenset[str]] = {}

    def visit(name: str, path: tuple[str, ...]) -> frozenset[str]:
        if name in path:
            raise ValueError(f"steps depend on each other in a cycle: {' -> '.join((*path, name))}")
        if name not in found:
            found[name] = frozenset().union(*({need} | visit(need, (*path, name)) for need in needs[name]))
        return found[name]

    for name in needs:
        visit(name, ())
    return found


def deploy_waits(steps: Iterable[Step]) -> dict[str, frozenset[str]]:
    return {step.name: frozenset(step.needs) for step in steps}


def teardown_waits(steps: Iterable[Step]) -> dict[str, frozenset[str]]:
    """Before a step's destroy: the destroys of every step that holds on to it."""
    steps = list(steps)
    return {step.name: frozenset(other.name for other in steps
                                 if step.name in other.needs and step.name not in other.loose)
            for step in steps}


def mermaid(steps: Iterable[Step]) -> str:
    """The deploy graph as a Mermaid flowchart (loose references dotted), for docs/architecture.md."""
    steps = list(steps)
    lines = ["flowchart LR"]
    for step in steps:
        lines.append(f'    {step.name}["{step.title}"]')
        for need in step.needs:
            arrow = "-.->" if need in step.loose else "-->"
            lines.append(f"    {need} {arrow} {step.name}")
    return "\n".join(lines)
