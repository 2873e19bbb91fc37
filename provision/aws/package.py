"""The function's zip: an explicit list of files, the hash-pinned PyMySQL and the CA bundle, reproducible.

No network at build time. Only FUNCTION_FILES of lambda/ ship (a stray .env
or notes file there never reaches AWS), each read as a regular file, never
through a symbolic link. PyMySQL is the version lambda/requirements.txt pins,
and its files must hash to PYMYSQL_FILES_SHA256 (the pinned wheel's
pymysql/*.py): any other PyMySQL stops the build. Fixed timestamps, modes and
order make the same inputs give the same bytes, so Lambda's CodeSha256 tells
whether code changed (a changed CA bundle is a code change too; an unchanged
one is not).
"""
from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import DeployError
from ..files import read_regular

SOURCE = Path(__file__).resolve().parents[2] / "lambda"
FUNCTION_FILES = ("handler.py",)
REQUIREMENTS = "requirements.txt"  # in SOURCE; not shipped
# sha256 of the lines "<path> <sha256 of the file>\n", sorted, for pymysql/*.py in the wheel
# lambda/requirements.txt pins (pymysql-1.2.4-py3-none-any.whl).
PYMYSQL_FILES_SHA256 = "c289b40a47a5b9526b73f6344d28a24389d158e3178eea0cdea1f65132318132"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
CA_BUNDLE = "rds-ca-bundle.pem"  # beside handler.py; the function finds it through DB_CA_FILE
PIN = re.compile(r"(?im)^pymysql==([0-9][0-9a-z.]*)\s+--hash=sha256:[0-9a-f]{64}\s*$")


@dataclass(frozen=True)
class Package:
    data: bytes

    @property
    def sha256(self) -> str:
        """Base64 SHA-256, the form Lambda reports as CodeSha256."""
        return base64.b64encode(hashlib.sha256(self.data).digest()).decode()


def _read(path: Path) -> bytes:
    return read_regular(path, "the function's file")


def pinned_version(source: Path) -> str:
    found = PIN.search(_read(source / REQUIREMENTS).decode())
    if not found:
        raise DeployError(f"{source / REQUIREMENTS} pins no PyMySQL (PyMySQL==X --hash=sha256:...)")
    return found.group(1)


def installed_pymysql() -> importlib.metadata.Distribution:
    """The environment's PyMySQL distribution (tests bring another)."""
    return importlib.metadata.distribution("PyMySQL")


def pymysql_entries(source: Path) -> list[tuple[str, bytes]]:
    """pymysql/*.py of the installed PyMySQL, which must be the pinned one, file for file."""
    try:
        dist = installed_pymysql()
    except importlib.metadata.PackageNotFoundError:
        raise DeployError("PyMySQL is not installed: run scripts/bootstrap") from None
    version = pinned_version(source)
    if dist.version != version:
        raise DeployError(f"the installed PyMySQL is {dist.version}, not {version} as lambda/requirements.txt "
                          "pins: run scripts/bootstrap")
    names = sorted(str(f) for f in dist.files or () if f.parts[0] == "pymysql" and f.suffix == ".py")
    entries = [(name, _read(Path(str(dist.locate_file(name))))) for name in names]
    digest = hashlib.sha256("".join(f"{n} {hashlib.sha256(d).hexdigest()}\n" for n, d in entries).encode())
    if digest.hexdigest() != PYMYSQL_FILES_SHA256:
        raise DeployError(f"the installed PyMySQL {dist.version} is not the pinned wheel's files (sha256 "
                          f"{digest.hexdigest()[:16]}…, pinned {PYMYSQL_FILES_SHA256[:16]}…): reinstall it with "
                          "scripts/bootstrap, or pin the new one in lambda/requirements.txt and here")
    return entries


def build(source: Path = SOURCE, ca_bundle: bytes | None = None) -> Package:
    """Zip the function's files, PyMySQL and the CA bundle if any, sorted, with fixed metadata."""
    entries = [(name, _read(source / name)) for name in FUNCTION_FILES] + pymysql_entries(source)
    if ca_bundle is not None:
        entries.append((CA_BUNDLE, ca_bundle))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data, compresslevel=9)
    return Package(buffer.getvalue())
