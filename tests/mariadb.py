"""The session-scoped pytest fixture ``mariadb_server``: one throwaway MariaDB (provision/local/mariadb.py).

From a test module: `from mariadb import mariadb_server`.
"""
import pytest

from provision.local.mariadb import MISSING, MariaDB, find_binary, free_port  # noqa: F401  (free_port: re-exported)


@pytest.fixture(scope="session")
def mariadb_server():
    """One throwaway MariaDB for the whole session; fails (not skips) without MariaDB."""
    if not (find_binary("mariadbd") and find_binary("mariadb-install-db")):
        pytest.fail(MISSING, pytrace=False)
    with MariaDB() as server:
        yield server
