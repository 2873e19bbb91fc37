"""One run at a time per stack: a lock file beside the state file.

The file holds the owner's pid and host. A lock whose process is gone (same
host, pid not running) is stale: it is taken over, and the operator told.
"""
from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import LockedError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


@contextmanager
def stack_lock(path: Path, command: str, note: Callable[[str], None]) -> Iterator[None]:
    """Hold the lock for the block; raise LockedError if a live run holds it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            owner = _owner(path)
            if owner and owner.get("host") == mine["host"] and _alive(int(owner.get("pid", 0))):
                raise LockedError(
                    f"another run ({owner.get('command')}, pid {owner['pid']}, started {owner.get('started')}) "
                    f"holds the lock {path}; wait for it to finish") from None
            if owner and owner.get("host") != mine["host"]:
                raise LockedError(
                    f"a run on host {owner.get('host')} (pid {owner.get('pid')}, started {owner.get('started')}) "
                    f"holds the lock {path}; if that run is gone, delete the file and re-run") from None
            what = f"pid {owner['pid']} is gone" if owner else "it is unreadable"
            note(f"Taking over a stale lock ({what}): {path}")
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(mine, f)
        break
    else:
        raise LockedError(f"could not take the lock {path}")
    try:
        yield
    finally:
        if (_owner(path) or {}).get("pid") == mine["pid"]:
            path.unlink(missing_ok=True)
