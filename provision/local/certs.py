"""Throwaway certificate authorities and server certificates, for TLS without AWS.

The tests give the throwaway MariaDB a server certificate for 127.0.0.1 (an IP
SAN, as RDS certificates name the endpoint) from one CA, and keep a second,
unrelated CA to prove that verification really checks the chain; ``--local``
ships a stand-in CA as the function's bundle instead of downloading AWS's.
EC P-256 keys: valid for OpenSSL and Python's ssl, and made in milliseconds.
Uses ``cryptography`` (moto's own dependency, so present wherever the
emulator or the tests run; never in the function's zip).
"""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_FOR = datetime.timedelta(days=2)


@dataclass(frozen=True)
class Authority:
    name: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class ServerFiles:
    """PEM files for a TLS server: its CA, its certificate (naming ``host``) and its key."""
    ca: Path
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: str, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALID_FOR))


def make_ca(name: str) -> Authority:
    """A self-signed CA, fit for Python's strict X.509 checks (key usage, key identifiers)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (_builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return Authority(name, cert, key)


def issue(ca: Authority, host: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for a server named ``host``: an IP SAN for an address, else a DNS SAN."""
    key = ec.generate_private_key(ec.SECP256R1())
    san: x509.GeneralName
    try:
        san = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    cert = (_builder(host, ca.name, key.public_key())
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                           critical=False)
            .sign(ca.key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server_files(directory: Path, ca: Authority, host: str) -> ServerFiles:
    """Write ca.pem, server-cert.pem and server-key.pem (0600) for ``host`` into directory."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = issue(ca, host)
    files = ServerFiles(directory / "ca.pem", directory / "server-cert.pem", directory / "server-key.pem")
    files.ca.write_bytes(ca.pem)
    files.cert.write_bytes(cert)
    files.key.touch(mode=0o600)
    files.key.write_bytes(key)
    return files


def stand_in_bundle(state_dir: Path) -> Path:
    """A throwaway CA cached where deploy keeps AWS's RDS bundle, so --local never downloads it."""
    from ..aws.ca_bundle import CACHE_NAME

    path = state_dir / CACHE_NAME
    path.write_bytes(make_ca("rds-edge-api --local stand-in RDS CA").pem)
    return path
