"""The handler tests' database and helpers (test_handler.py, test_handler_hostile.py): the session
MariaDB with the fixture tables, the handler pointed at it, invoking it, paging through its answers.
tests/conftest.py offers the fixtures to every test module."""
import base64
import json
import secrets

import handler  # lambda/handler.py, imported the way Lambda does (pytest's pythonpath has lambda/)
import pytest

DATABASE, USER = "app", "app"
PASSWORD = secrets.token_urlsafe(18)

ITEMS = [(1, "sku-1", "Widget", 3), (2, "dup", "First", 1), (3, "dup", "Second", 2),
         (4, "dup", "Third", 3), (5, "sku-5", "Gadget", 0)]

TYPES_DDL = """
CREATE TABLE types (
  k VARCHAR(32) PRIMARY KEY,
  dec30 DECIMAL(30,10), d DATE, dt DATETIME(6), ts TIMESTAMP NULL, t TIME, t6 TIME(6),
  bin BINARY(4), vbin VARBINARY(16), blb BLOB, bits BIT(10), doc JSON,
  note VARCHAR(20), txt TEXT, n INT, f DOUBLE, e ENUM('red','green')
) CHARACTER SET utf8mb4
"""
EMOJI_TEXT = "caf\u00e9 \U0001F600 \u6f22\u5b57 \U0001F468\u200D\U0001F469\u200D\U0001F467"
DOC = {"a": {"b": [1, 2.5, None, "x", {"deep": True}]}, "emoji": "\U0001F600"}


@pytest.fixture(scope="session")
def db(mariadb_server):
    """The session's server with database `app`, read-only user `app` and the fixture tables."""
    mariadb_server.create_database(DATABASE, USER, PASSWORD, privileges="SELECT")
    with mariadb_server.admin(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, sku VARCHAR(64) NOT NULL,"
                    " name VARCHAR(100), qty INT, KEY (sku)) CHARACTER SET utf8mb4")
        cur.executemany("INSERT INTO items VALUES (%s, %s, %s, %s)", ITEMS)
        cur.execute("CREATE TABLE canary (id INT)")
        cur.execute(TYPES_DDL)
        cur.execute(
            "INSERT INTO types VALUES ('all', '12345678901234567890.0123456789', '2024-02-29',"
            " '2024-02-29 13:14:15.000042', '2024-02-29 13:14:15', '-01:02:03', '100:00:00.5',"
            " x'00FF80FE', x'FFFE00C3', x'C3281FA0A1', b'1000000001', %s, NULL, %s, -7, 1.5, 'green')",
            (json.dumps(DOC), EMOJI_TEXT))
        cur.execute("INSERT INTO types (k) VALUES ('nulls')")
        cur.execute("CREATE TABLE odd (k INT, `odd ``name` TEXT, `sp ace` TEXT, `ünï` TEXT)")
        cur.execute("INSERT INTO odd VALUES (1, 'a', 'b', 'c')")
    return mariadb_server


@pytest.fixture
def configure(db, monkeypatch):
    """Point the handler at the test database with the given DB_* overrides; fresh module state."""
    def apply(**settings):
        env = {**db.env(DATABASE, USER, PASSWORD), "DB_TABLE": "items",
               "DB_KEY_COLUMN": "sku", "DB_COLUMNS": "", **settings}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        handler._reset()
    apply()
    yield apply
    handler._reset()


def invoke(key, **event):
    return handler.handler({"key": key, "sourceIp": "203.0.113.9", **event}, None)


def fails(key, prefix, **event):
    """Invoke, expect an exception whose message starts with prefix; return it."""
    with pytest.raises(Exception) as info:
        invoke(key, **event)
    assert str(info.value).startswith(prefix), str(info.value)
    return info.value


def row_counts(db):
    with db.admin(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES"
                    " WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME", (DATABASE,))
        tables = [name for (name,) in cur.fetchall()]
        counts = {}
        for name in tables:
            cur.execute(f"SELECT COUNT(*) FROM `{name}`")
            counts[name] = cur.fetchone()[0]
        return counts


def last_log(capsys):
    lines = capsys.readouterr().out.strip().splitlines()
    return json.loads(lines[-1])


def page_through(key, limit=100):
    """Every page for key, following "next"; returns (items, pages)."""
    items, pages, after = [], 0, None
    while True:
        result = invoke(key, **({"after": after} if after else {}))
        pages += 1
        items += result["items"]
        assert result.get("truncated", False) is ("next" in result)
        if not result.get("truncated"):
            return items, pages
        after = result["next"]
        assert pages < limit


@pytest.fixture
def paged(db):
    """Tables with 25 rows under key 'many': by primary key, by a composite binary key, with no key."""
    with db.admin(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE many (id INT PRIMARY KEY, k VARCHAR(16) NOT NULL, v INT, KEY (k))")
        cur.executemany("INSERT INTO many VALUES (%s, %s, %s)",
                        [(i * 10, "many", i) for i in range(1, 26)] + [(1000, "other", 0)])
        cur.execute("CREATE TABLE pairs (k VARCHAR(16) NOT NULL, b VARBINARY(4) NOT NULL, n INT NOT NULL,"
                    " v INT, PRIMARY KEY (b, n), KEY (k))")
        cur.executemany("INSERT INTO pairs VALUES ('many', %s, %s, %s)",
                        [(bytes([i % 3, 0xff]), i, i) for i in range(25)])
        cur.execute("CREATE TABLE heap (k VARCHAR(16), v INT)")
        cur.executemany("INSERT INTO heap VALUES ('many', %s)", [(i,) for i in range(25)])
    yield db
    with db.admin(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE many, pairs, heap")


def cursor_of(value):
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
