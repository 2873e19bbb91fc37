"""Session-scoped pytest fixtures: throwaway MariaDB servers (provision/local/mariadb.py).

``mariadb_server`` offers TLS with a certificate for 127.0.0.1 from a test CA
(``tls_files``); ``plain_mariadb_server`` offers no TLS at all; ``other_ca``
is an unrelated CA that must never verify the server.
tests/conftest.py offers them to every test module.
"""
import random
import socket
from pathlib import Path

import pytest

from provision.local import certs
from provision.local.mariadb import MISSING, MariaDB, find_binary, free_port  # noqa: F401  (free_port: re-exported)


def _need_mariadb():
    if not (find_binary("mariadbd") and find_binary("mariadb-install-db")):
        pytest.fail(MISSING, pytrace=False)


@pytest.fixture(scope="session")
def test_ca():
    """The CA that signs the session server's certificate (key included, to issue others)."""
    return certs.make_ca("rds-edge-api test CA")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory, test_ca):
    """CA, server certificate (IP SAN 127.0.0.1) and key for the session's server."""
    return certs.server_files(tmp_path_factory.mktemp("tls"), test_ca, "127.0.0.1")


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory):
    """A PEM bundle holding a CA that signed nothing the servers use."""
    path = tmp_path_factory.mktemp("other-ca") / "other-ca.pem"
    path.write_bytes(certs.make_ca("unrelated CA").pem)
    return path


@pytest.fixture(scope="session")
def mariadb_server(tls_files):
    """One throwaway MariaDB with TLS for the whole session; fails (not skips) without MariaDB."""
    _need_mariadb()
    with MariaDB(tls=tls_files) as server:
        yield server


@pytest.fixture(scope="session")
def plain_mariadb_server():
    """A second throwaway MariaDB that offers no TLS, as a server with TLS off would."""
    _need_mariadb()
    with MariaDB() as server:
        yield server


def listening_port() -> int:
    """A free port for a server the test starts later, taken below the kernel's ephemeral range: a port bound
    to 0 and released (free_port) is handed out again to the next outgoing connection or ephemeral bind, of
    this worker or another, before the server listens on it."""
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(ephemeral.read_text().split()[0]) if ephemeral.exists() else 32768
    for port in random.sample(range(10_000, low), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")
