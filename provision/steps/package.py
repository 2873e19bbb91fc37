"""The function's zip: lambda/, the installed pymysql and the CA bundle, byte-for-byte reproducible.

No network at build time. Fixed timestamps, modes and order make the same
source give the same bytes, so Lambda's CodeSha256 tells whether code changed
(a changed CA bundle is a code change too; an unchanged one is not).
"""
from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pymysql

SOURCE = Path(__file__).resolve().parents[2] / "lambda"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
SKIP_DIRS = {"__pycache__"}
SKIP_SUFFIXES = {".pyc", ".pyo"}
CA_BUNDLE = "rds-ca-bundle.pem"  # beside handler.py; the function finds it through DB_CA_FILE


@dataclass(frozen=True)
class Package:
    data: bytes

    @property
    def sha256(self) -> str:
        """Base64 SHA-256, the form Lambda reports as CodeSha256."""
        return base64.b64encode(hashlib.sha256(self.data).digest()).decode()


def _files(root: Path, prefix: str) -> list[tuple[str, Path]]:
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.is_file() and not SKIP_DIRS & set(rel.parts) and path.suffix not in SKIP_SUFFIXES:
            found.append(((Path(prefix) / rel).as_posix(), path))
    return found


def build(source: Path = SOURCE, ca_bundle: bytes | None = None) -> Package:
    """Zip the function's source, pymysql and the CA bundle if any, sorted, with fixed metadata."""
    pymysql_dir = Path(pymysql.__file__).resolve().parent
    entries = [(name, path.read_bytes()) for name, path in _files(source, "") + _files(pymysql_dir, "pymysql")]
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
