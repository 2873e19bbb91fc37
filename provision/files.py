"""Reading a file the toolkit ships or trusts (a regular file only, never through a symbolic link), and writing
one it keeps (whole or not at all)."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import DeployError


def read_regular(path: Path, what: str, *, limit: int = -1, fix: str = "") -> bytes:
    """The bytes of a regular file (at most ``limit``), refusing a symbolic link at the last step or anything
    that is not a regular file; ``what`` names it and ``fix`` says what to do, in the one-line error."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise DeployError(f"{what} {path} cannot be read ({exc.strerror}; a symbolic link is never followed)"
                          f"{fix}") from None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise DeployError(f"{what} {path} is not a regular file{fix}")
        return file.read(limit)


def write_replacing(path: Path, data: bytes) -> None:
    """A new file (mkstemp: O_EXCL, so no link is followed), renamed over the name (a link there is replaced):
    a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise
