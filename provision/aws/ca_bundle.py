"""The CA bundle the function verifies the database with: the operator's, or AWS's global RDS bundle.

RDS certificates chain to the RDS CAs, which no public trust store holds. AWS
publishes them for every region as one PEM file; deploy downloads it over
HTTPS (certificate checked by Python's default context) once and keeps it
beside the state file, so re-deploys read the same bytes and the function's
code changes only when the bundle does. Delete the cached file to fetch a
newer one. Nothing here runs with tls = "required" or "off".

A redirect is followed only to another https:// URL (urllib would follow one
to plain http). The cached copy is written to a new file and renamed into
place, and read back, without following a symbolic link.
"""
from __future__ import annotations

import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import DeployError
from ..files import read_regular, write_replacing

RDS_GLOBAL_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
CACHE_NAME = "rds-global-bundle.pem"
TIMEOUT = 30
MAX_BYTES = 2_000_000  # the bundle is about 150 kB


class _HttpsRedirectsOnly(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme != "https":
            raise urllib.error.URLError(f"refused a redirect away from HTTPS, to {newurl[:100]}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _download(url: str, context: ssl.SSLContext | None = None) -> bytes:
    """GET url over verified HTTPS (redirects only to HTTPS); tests replace this function (no network there)."""
    if urllib.parse.urlsplit(url).scheme != "https":
        raise urllib.error.URLError(f"refused {url[:100]}: not HTTPS")
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context or ssl.create_default_context()),
                                         _HttpsRedirectsOnly())
    with opener.open(url, timeout=TIMEOUT) as response:
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
        raise DeployError(f"{where} is not a PEM CA bundle ({exc}); set database.ca_bundle to the path of one "
                          f"(AWS's global RDS bundle is {RDS_GLOBAL_BUNDLE_URL})") from None
    return data


def load(config) -> bytes | None:
    """The bundle's bytes for the function's zip, or None when the config does not verify TLS."""
    database = config.database
    if database.tls != "verify":
        return None
    if database.ca_bundle is not None:
        return check(database.ca_bundle.read_bytes(), f"database.ca_bundle {database.ca_bundle}")
    cached = Path(config.state_dir) / CACHE_NAME
    if os.path.lexists(cached):
        return check(_read_cached(cached), f"the cached bundle {cached} (delete it to fetch it again)")
    try:
        data = fetch(RDS_GLOBAL_BUNDLE_URL)
    except OSError as exc:
        raise DeployError(f"could not download AWS's RDS CA bundle from {RDS_GLOBAL_BUNDLE_URL} ({exc}); "
                          "download it yourself and set database.ca_bundle to its path") from None
    check(data, RDS_GLOBAL_BUNDLE_URL)
    write_replacing(cached, data)
    return data


def _read_cached(cached: Path) -> bytes:
    return read_regular(cached, "the cached bundle", limit=MAX_BYTES + 1, fix=": delete it to fetch it again")
