"""The state file: a cache of IDs and ARNs, written atomically after every step.

Never authoritative: steps find their resources by tag or name when an entry
is missing or stale, so a lost or corrupt file costs lookups, never resources.
Never holds a secret.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UndeclaredRead

VERSION = 1


@dataclass
class State:
    path: Path
    stack: str
    resources: dict[str, dict] = field(default_factory=dict)
    problem: str | None = None  # why an existing file was ignored, for the operator
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @classmethod
    def load(cls, path: Path, stack: str) -> "State":
        """Read the file; a missing one is empty, a corrupt one is reported and ignored."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path, stack)
        except (OSError, ValueError) as exc:
            return cls(path, stack, problem=f"state file {path} is unreadable ({exc}); finding resources by tag")
        if (not isinstance(data, dict) or data.get("version") != VERSION or data.get("stack") != stack
                or not isinstance(data.get("resources"), dict)):
            return cls(path, stack, problem=f"state file {path} is not a version {VERSION} state of "
                                            f"stack {stack}; finding resources by tag")
        return cls(path, stack, resources=data["resources"])

    def get(self, step: str) -> dict:
        return self.resources.get(step, {})

    def put(self, step: str, values: dict) -> None:
        with self._lock:
            self.resources[step] = {k: v for k, v in values.items() if v is not None}

    def drop(self, step: str) -> None:
        with self._lock:
            self.resources.pop(step, None)

    def earlier(self, step: str) -> dict:
        return self.get(step)

    def view(self, step: str, readable: frozenset[str]) -> "StepState":
        return StepState(self, step, readable)

    def save(self) -> None:
        """Write atomically (temp file, fsync, rename), mode 0600, or remove when empty."""
        with self._lock:  # steps running side by side save one at a time, each a whole state
            self._write()

    def _write(self) -> None:
        if not self.resources:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = json.dumps({"version": VERSION, "stack": self.stack, "resources": self.resources},
                          indent=2, sort_keys=True) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@dataclass
class StepState:
    """One step's window on the state while steps run side by side: its own entry and those of the steps it
    needs (directly or through others), which are done before it starts. Any other read could see a
    half-run step, so it is refused."""
    state: State
    step: str
    readable: frozenset[str]

    @property
    def problem(self) -> str | None:
        return self.state.problem

    def get(self, step: str) -> dict:
        if step != self.step and step not in self.readable:
            raise UndeclaredRead(f"step {self.step} read the state of {step} without needing it")
        return self.state.get(step)

    def earlier(self, step: str) -> dict:
        """What an earlier run recorded for a step this one does not wait for: a hint, never an input."""
        return self.state.get(step)

    def put(self, step: str, values: dict) -> None:
        self.state.put(step, values)

    def drop(self, step: str) -> None:
        self.state.drop(step)

    def save(self) -> None:
        self.state.save()
