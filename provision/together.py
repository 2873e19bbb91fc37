"""Independent pieces of one step at once: reads that do not need each other's answers go out together.

A step's lookups (the REST API's validators, resources, stages, keys and usage
plans; a distribution and the certificate it names) are independent round
trips: one after another they are most of a no-op's time behind a real link.
``together(ctx, f, g, ...)`` runs ``f(ctx)``, ``g(ctx)``, ... each in a thread
of its own and answers their results in the order given.

Changes may go out together too (each through ``ctx.change`` as ever): each
piece's lines are kept and said in the order of the pieces, so the output and
``--plan`` read the same whatever answered first. Every piece runs to its end
(none is left changing AWS behind the step's back); then the first failure, in
the order of the pieces, is raised. The run's stop (Ctrl-C, another step's
failure) reaches each piece at its next AWS call or sleep, as it does a step.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable

from .context import Context
from .output import Output, StepReport
from .progress import KeptOutput


def together(ctx: Context, *pieces: Callable[[Context], Any]) -> list[Any]:
    """The pieces' results, in their order, once every piece is over."""
    if len(pieces) < 2:
        return [piece(ctx) for piece in pieces]
    kept = [_Kept(ctx.out) for _ in pieces]
    reports = [StepReport(ctx.report.title) for _ in pieces]
    with ThreadPoolExecutor(len(pieces), thread_name_prefix="piece") as pool:
        futures = [pool.submit(piece, replace(ctx, out=out, report=report))
                   for piece, out, report in zip(pieces, kept, reports)]
        outcomes = [(future.exception(), future) for future in futures]  # waits for every piece
    for out, report in zip(kept, reports):
        out.say()
        ctx.report.changes += report.changes
    failure = next((exc for exc, _ in outcomes if exc is not None), None)
    if failure is not None:
        raise failure
    return [future.result() for _, future in outcomes]


class _Kept(KeptOutput):
    """A piece's output: its change lines and notes kept for their turn; waits, notices and once-notes
    go to the step's output at once."""

    def __init__(self, out: Output):
        self._out = out
        self.console = out.console
        self._kept = []

    def waiting(self, message: str) -> None:
        self._out.waiting(message)

    def notice(self, title: str, body: str) -> None:
        self._out.notice(title, body)

    def once(self, key: str, text: str) -> None:
        self._out.once(key, text)

    def say(self) -> None:
        self.say_to(self._out)
