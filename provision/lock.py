"""One run at a time per stack: the operating system's lock on a file beside the state file.

``fcntl.flock`` on ``<state_dir>/<stack>.lock``: the kernel holds it for the
open file, so a run that crashes or is killed releases it by dying, and two
runs can never both hold it. The file itself stays (deleting it would let a
run that opened the old file and one that made a new file hold "the" lock at
once); what it holds is only the owner's pid, host, command and start time,
written once the lock is held, for the message another run shows. Its content
is never trusted: empty, stale or malformed, it only makes that message vaguer.

The lock is local to this machine's filesystem; a lease held in the AWS
account (issue 20) can sit beside it as a second context manager.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import LockedError

# --wait: how long a run waits for another run's lock, or its lease in the account (lease.py), to be given back;
# a deploy that waits for a certificate and CloudFront takes up to ~1.5 h.
LOCK_WAIT_TIMEOUT = 2 * 60 * 60
LOCK_POLL_INTERVAL = 2.0
# wait(what, try_take): retry try_take (True once the lock is held) until it holds or the wait gives up.
Wait = Callable[[str, Callable[[], bool]], object]


def owner_text(raw: str) -> str:
    """Who holds the lock, from the file's content, whatever it holds; never raises.

    A holder writes its whole record right after it takes the lock, so anything else in the file
    (empty, not JSON, a partial record, a record naming a process of this host that is gone) is what
    an earlier run left: the holder has not written yet."""
    try:
        owner = json.loads(raw)
    except ValueError:
        owner = None
    keys = ("command", "pid", "host", "started")
    if (not isinstance(owner, dict) or any(owner.get(key) is None for key in keys)
            or owner["host"] == socket.gethostname() and not _alive(owner["pid"])):
        return "another run (it has not written its name yet)"
    command, pid, host, started = (str(owner[key])[:80] for key in keys)
    return f"another run ({command}, pid {pid} on {host}, started {started})"


def _alive(pid) -> bool:
    """Whether a process of this host has that pid; only for the message, so anything odd is 'no'."""
    if not isinstance(pid, int) or not 0 < pid < 2 ** 22:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _open(path: Path) -> int:
    """The lock file, made if missing (mode 0600), never through a symlink, never truncated here."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        raw = ""
    return owner_text(raw)


def _record(fd: int, command: str) -> None:
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(mine) + "\n").encode(), 0)


@contextmanager
def stack_lock(path: Path, command: str, wait: Wait | None = None) -> Iterator[None]:
    """Hold the stack's lock for the block.

    Held by another run: raise LockedError naming it, or, given ``wait``
    (a bounded, visible wait from provision/waits.py), wait for it first.
    """
    fd = _open(path)
    try:
        if not _try_lock(fd):
            holder = _holder(fd)
            if wait is None:
                raise LockedError(f"{holder} holds the lock {path}; wait for it to finish, or run again "
                                  "with --wait")
            wait(f"{holder} to release the lock {path}", lambda: _try_lock(fd))
        _record(fd, command)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # the owner's name goes with the lock; the file stays
    finally:
        os.close(fd)  # releases the lock
