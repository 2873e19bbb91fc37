"""together(): a step's independent pieces at once, their results and lines in the order given."""
import threading

import pytest

from provision import config as config_module
from provision.together import together
from tests.support import printed, quiet_context


@pytest.fixture
def plain_ctx(write_config):
    """A context that makes no AWS call: the pieces below only wait on each other and report."""
    ctx = quiet_context(config_module.load(write_config()))
    ctx.report.title = "Step"
    return ctx


def _said(ctx) -> list[str]:
    return [line.strip() for line in printed(ctx).splitlines()]


def test_pieces_run_at_once_and_answer_in_order(plain_ctx):
    everyone_in = threading.Barrier(3, timeout=10)  # broken (an error) unless all three wait at once

    def piece(n):
        def run(ctx):
            everyone_in.wait()
            return n * 10
        return run

    assert together(plain_ctx, piece(1), piece(2), piece(3)) == [10, 20, 30]


def test_lines_and_changes_keep_the_order_of_the_pieces(plain_ctx):
    second_done = threading.Event()

    def first(ctx):
        assert second_done.wait(10)  # the first piece speaks last...
        ctx.change("create", "first thing", lambda: "made")
        ctx.out.note("about the first")

    def second(ctx):
        ctx.change("delete", "second thing", lambda: None)
        second_done.set()

    together(plain_ctx, first, second)
    assert _said(plain_ctx) == ["+ create first thing", "about the first", "- delete second thing"]  # ...but first
    assert plain_ctx.report.changes == [("create", "first thing"), ("delete", "second thing")]


def test_every_piece_ends_before_the_first_failure_is_raised(plain_ctx):
    ended = []

    def fails_late(ctx):
        raise ValueError("first in order")

    def fails_early(ctx):
        raise KeyError("second in order")

    def slow(ctx):
        threading.Event().wait(0.2)
        ctx.change("update", "still said", lambda: None)
        ended.append("slow")

    with pytest.raises(ValueError, match="first in order"):
        together(plain_ctx, slow, fails_late, fails_early)
    assert ended == ["slow"]
    assert _said(plain_ctx) == ["~ still said"]


def test_one_piece_runs_in_the_callers_thread(plain_ctx):
    assert together(plain_ctx, lambda ctx: threading.current_thread()) == [threading.current_thread()]
