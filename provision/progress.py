"""What the operator sees while steps run side by side.

Each step's lines (its changes, notes and status) are kept together and printed
in the order of STEPS once the step is done and every step before it is, so the
output of a run reads the same whatever finished first. What the operator must
act on (an approval link, a DNS record to create) is shown at once. On a
terminal, one live line per running step says what it waits for and for how
long; without one, each new kind of wait is printed once, as before.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table

from .output import Output, StepReport


class Board:
    """The running steps and what each waits for; the one lock for printing from several threads."""

    def __init__(self, out: Output):
        self.out = out
        self.lock = threading.RLock()  # held while printing: blocks and notices whole
        self._rows = threading.Lock()  # held only to read or change the rows, never while printing: the live
        # display's refresh thread takes it while it holds the console's own lock
        self._running: dict[str, tuple[float, str]] = {}
        self._live = (Live(console=out.console, refresh_per_second=4, transient=True, get_renderable=self._render)
                      if out.console.is_terminal else None)

    def __enter__(self) -> "Board":
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *_) -> None:
        if self._live is not None:
            self._live.stop()

    def started(self, title: str) -> None:
        with self._rows:
            self._running[title] = (time.monotonic(), "")

    def finished(self, title: str) -> None:
        with self._rows:
            self._running.pop(title, None)

    def waiting(self, title: str, message: str) -> None:
        if self._live is None:
            with self.lock:
                self.out.waiting(message)
            return
        with self._rows:
            if title in self._running:
                self._running[title] = (self._running[title][0], message)

    def _render(self) -> Table:
        table = Table.grid(padding=(0, 1))
        with self._rows:
            rows = list(self._running.items())
        for title, (since, message) in rows:
            elapsed = int(time.monotonic() - since)
            table.add_row(Spinner("dots"), escape(title), f"[dim]{escape(message)}[/]", f"{elapsed // 60}m{elapsed % 60:02d}s")
        return table


class KeptOutput(Output):
    """Change lines, notes and failures kept for their turn, then said by another output (``say_to``)."""
    _kept: list[tuple[str, tuple]]

    def change(self, kind: str, description: str, planning: bool = False) -> None:
        self._kept.append(("change", (kind, description, planning)))

    def note(self, text: str) -> None:
        self._kept.append(("note", (text,)))

    def failed(self, title: str, why: str) -> None:
        self._kept.append(("failed", (title, why)))

    def say_to(self, out: Output) -> None:
        for method, args in self._kept:
            getattr(out, method)(*args)
        self._kept.clear()


class StepOutput(KeptOutput):
    """One step's output: its lines kept for its turn, then said by the run's own output (whatever that
    does with them: print, or collect as outputs does); notices at once; waits on the board."""

    def __init__(self, board: Board, title: str):
        self.console = board.out.console
        self._said = board.out._said  # "once per run" holds across steps
        self._status = None
        self.board, self.title = board, title
        self._kept = []

    @contextmanager
    def step(self, title: str, planning: bool = False, destroying: bool = False) -> Iterator[StepReport]:
        report = StepReport(title)
        self.board.started(title)
        try:
            yield report
        finally:
            self.board.finished(title)
        self._kept.append(("_status_line", (report, planning, destroying)))

    def once(self, key: str, text: str) -> None:
        with self.board.lock:
            super().once(key, text)

    def waiting(self, message: str) -> None:
        self.board.waiting(self.title, message)

    def notice(self, title: str, body: str) -> None:
        with self.board.lock:
            self.board.out.notice(title, body)

    def flush(self) -> None:
        with self.board.lock:
            self.say_to(self.board.out)
