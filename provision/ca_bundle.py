"""The CA bundle the function verifies the database with: the operator's, or AWS's global RDS bundle.

RDS certificates chain to the RDS CAs, which no public trust store holds. AWS
publishes them for every region as one PEM file; deploy downloads it over
HTTPS (certificate checked by Python's default context) once and keeps it
beside the state file, so re-deploys read the same bytes and the function's
code changes only when the bundle does. Delete the cached file to fetch a
newer one. Nothing here runs with tls = "required" or "off".
"""
from __future__ import annotations

import ssl
import urllib.request
from pathlib import Path

from .errors import DeployError

RDS_GLOBAL_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
CACHE_NAME = "rds-global-bundle.pem"
TIMEOUT = 30
MAX_BYTES = 2_000_000  # the bundle is about 150 kB


def _download(url: str) -> bytes:
    """GET url over verified HTTPS; tests replace this function (there is no network there)."""
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return response.read(MAX_BYTES + 1)


fetch = _download


def check(data: bytes, where: str) -> bytes:
    """Refuse anything that is not a PEM bundle Python's ssl (as in the function) can load."""
    try:
        text = data.decode("ascii")
        if len(data) > MAX_BYTES or "-----BEGIN CERTIFICATE-----" not in text:
            raise ValueError("no PEM certificate")
        ssl.create_default_context(cadata=text)
    except (ValueError, ssl.SSLError) as exc:
        raise DeployError(f"{where} is not a PEM CA bundle ({exc})") from None
    return data


def load(config) -> bytes | None:
    """The bundle's bytes for the function's zip, or None when the config does not verify TLS."""
    database = config.database
    if database.tls != "verify":
        return None
    if database.ca_bundle is not None:
        return check(database.ca_bundle.read_bytes(), f"database.ca_bundle {database.ca_bundle}")
    cached = Path(config.state_dir) / CACHE_NAME
    if cached.exists():
        return check(cached.read_bytes(), f"the cached bundle {cached} (delete it to fetch it again)")
    try:
        data = fetch(RDS_GLOBAL_BUNDLE_URL)
    except OSError as exc:
        raise DeployError(f"could not download AWS's RDS CA bundle from {RDS_GLOBAL_BUNDLE_URL} ({exc}); "
                          "download it yourself and set database.ca_bundle to its path") from None
    check(data, RDS_GLOBAL_BUNDLE_URL)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(cached)
    return data
