"""Everything the operator sees: one line per step, spinners while waiting, the outputs table."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, TextIO

from rich.console import Console
from rich.markup import escape
from rich.status import Status
from rich.table import Table

MARKS = {"created": "green", "updated": "yellow", "deleted": "red", "unchanged": "dim",
         "absent": "dim", "planned": "cyan", "failed": "bold red", "interrupted": "bold red"}
SIGNS = {"create": "+", "update": "~", "delete": "-"}


@dataclass
class StepReport:
    """What one step did: the changes it made (or would make), in order."""
    title: str
    changes: list[tuple[str, str]] = field(default_factory=list)

    def status(self, planning: bool, destroying: bool) -> str:
        kinds = {kind for kind, _ in self.changes}
        if not kinds:
            return "absent" if destroying else "unchanged"
        if planning:
            return "planned"
        for kind, word in (("create", "created"), ("delete", "deleted")):
            if kind in kinds:
                return word
        return "updated"


class Output:
    def __init__(self, console: Console | None = None):
        # Piped or in CI, lines are not cut at 80 columns: ARNs and URLs stay whole.
        self.console = console or Console(highlight=False, width=None if sys.stdout.isatty() else 200)
        self._status: Status | None = None
        self._said: set[str] = set()
        self.documents: TextIO | None = None  # where document() writes, when not the console (cli.py)

    def document(self, text: str) -> None:
        """What a command prints to be redirected (JSON, a policy): alone on stdout when the CLI sends
        everything else to stderr, else on the console as it is."""
        if self.documents is not None:
            self.documents.write(text + "\n")
            self.documents.flush()
        else:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    @contextmanager
    def step(self, title: str, planning: bool = False, destroying: bool = False) -> Iterator[StepReport]:
        report = StepReport(title)
        spinner = self._status = self.console.status(escape(title))
        spinner.start()
        try:
            yield report
        finally:
            spinner.stop()
            self._status = None
        self._status_line(report, planning, destroying)

    def _status_line(self, report: StepReport, planning: bool, destroying: bool) -> None:
        status = report.status(planning, destroying)
        if planning and not report.changes:
            status = "no changes"
        self.console.print(f"[{MARKS.get(status, 'dim')}]{status:>10}[/]  {escape(report.title)}")

    def failed(self, title: str, why: str) -> None:
        self.console.print(f"[bold red]{why:>10}[/]  {escape(title)}")

    def change(self, kind: str, description: str, planning: bool = False) -> None:
        words = {"create": "create ", "delete": "delete ", "update": ""}[kind]
        if planning:
            words = "would " + (words or "change: ")
        self.console.print(f"            [dim]{SIGNS[kind]} {words}{escape(description)}[/]")

    def waiting(self, message: str) -> None:
        """Shown on the spinner; without a terminal, each new kind of wait is printed once."""
        if self._status is not None and self.console.is_terminal:
            self._status.update(escape(message))
            return
        head = message.split(" (")[0]
        if head not in self._said:
            self._said.add(head)
            self.console.print(f"            [dim]{escape(message)}[/]")

    def note(self, text: str) -> None:
        self.console.print(f"            {escape(text)}")

    def once(self, key: str, text: str) -> None:
        """A note shown once per run, however many steps would say it."""
        if key not in self._said:
            self._said.add(key)
            self.note(text)

    def notice(self, title: str, body: str) -> None:
        """Something the operator must act on: a bold heading, then the body unwrapped, so that a
        long approval link or DNS record copies in one piece."""
        self.console.print(f"[bold yellow]>>> {escape(title)}[/]")
        for line in body.splitlines():
            self.console.print(f"    {escape(line)}", soft_wrap=True)

    def error(self, text: str) -> None:
        self.console.print(f"[bold red]error:[/] {escape(text)}")

    def outputs(self, rows: dict[str, str]) -> None:
        if not rows:
            return
        table = Table(title="Outputs", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for name, value in rows.items():
            table.add_row(escape(name), escape(str(value)))
        self.console.print(table)

    def calls(self, total: int, changing: int) -> None:
        self.console.print(f"{total} AWS calls ({changing} changing)")
