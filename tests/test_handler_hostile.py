"""lambda/handler.py against crafted cursors, keys in loose forms and a database that does not answer (issue 17).

On the real MariaDB the suite starts (tests/mariadb.py), with tests/handler_support.py's fixtures.
"""
import base64
import time

import handler  # lambda/handler.py (pytest's pythonpath has lambda/)
import pytest

from tests.handler_support import DATABASE, cursor_of, fails, invoke, last_log, page_through


def raw_cursor(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# --- the cursor: only its own shape -----------------------------------------------------

DEEP = [
    raw_cursor("[" * 1536),                      # 2,048 characters: the longest ?after= the API takes
    raw_cursor("[" * 700 + "]" * 700),
    raw_cursor('[{"b": ' + "[" * 1000 + "]"),
    raw_cursor("[" + '{"a":' * 250 + "1" + "}" * 250 + "]"),
    raw_cursor('["' + "[" * 1000 + '"]'),          # brackets inside a string are only text: a kind mismatch here
]


@pytest.mark.parametrize("after", DEEP, ids=["1536-open", "700-nested", "in-binary", "objects", "in-a-string"])
def test_a_deeply_nested_cursor_is_a_bad_request(configure, paged, capsys, after):
    configure(DB_TABLE="many", DB_KEY_COLUMN="k", DB_MAX_ROWS="10")
    assert len(after) <= handler.MAX_CURSOR_LENGTH
    with pytest.raises(handler.BadRequest, match=r"^\[BadRequest\] query parameter 'after' "):
        invoke("many", after=after)
    assert last_log(capsys)["outcome"] == "bad_request"


@pytest.mark.parametrize("table, after", [
    ("many", cursor_of(["10"])), ("many", cursor_of([10.0])), ("many", cursor_of([{"b": "AA=="}])),
    ("pairs", cursor_of([5, 5])), ("pairs", cursor_of([{"b": "AA=="}, "5"])), ("heap", cursor_of([{"b": "AA=="}])),
], ids=repr)
def test_a_cursor_value_of_another_kind_than_its_column_is_a_bad_request(configure, paged, table, after):
    configure(DB_TABLE=table, DB_KEY_COLUMN="k", DB_MAX_ROWS="10")
    with pytest.raises(handler.BadRequest, match=r"^\[BadRequest\] query parameter 'after' "):
        invoke("many", after=after)


@pytest.mark.parametrize("table", ["many", "pairs", "heap"])
def test_the_cursors_the_api_gives_still_page(configure, paged, table):
    configure(DB_TABLE=table, DB_KEY_COLUMN="k", DB_COLUMNS="v", DB_MAX_ROWS="10")
    items, pages = page_through("many")
    assert pages == 3 and len(items) == 25


# --- the key: the column's own form -------------------------------------------------------

KEYED_DDL = """
CREATE TABLE keyed (
  id INT PRIMARY KEY, dec_k DECIMAL(10,2), big_k DECIMAL(30,0), date_k DATE, dt_k DATETIME, ts_k TIMESTAMP NULL,
  t_k TIME, y_k YEAR, f_k DOUBLE, s_k VARCHAR(10)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci
"""


@pytest.fixture(scope="module")
def keyed(db):
    with db.admin(DATABASE) as conn, conn.cursor() as cur:
        cur.execute(KEYED_DDL)
        cur.execute("INSERT INTO keyed VALUES (1, 42.00, 12345678901234567890123, '2024-02-29', '2024-02-29 13:14:15',"
                    " '2024-02-29 13:14:15', '12:00:00', 2024, 42.5, 'abc')")
    yield db
    with db.admin(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE keyed")


FOUND = [("dec_k", "42"), ("dec_k", "42.00"), ("dec_k", "+42.0"), ("dec_k", "042"),
         ("big_k", "12345678901234567890123"),
         ("date_k", "2024-02-29"), ("dt_k", "2024-02-29T13:14:15"), ("dt_k", "2024-02-29 13:14:15"),
         ("ts_k", "2024-02-29T13:14:15"), ("t_k", "12:00:00"), ("y_k", "2024"), ("f_k", "42.5"), ("f_k", "4.25e1")]
NOT_FOUND = [("dec_k", "42abc"), ("dec_k", "4.2e1"), ("dec_k", "42 "), ("dec_k", " 42"), ("dec_k", "0x2A"),
             ("dec_k", "42."), ("dec_k", "42.001"), ("dec_k", "Infinity"),
             ("big_k", "12345678901234567890124"),  # equal to the row's value as a DOUBLE, not as a DECIMAL
             ("date_k", "2024-02-29abc"), ("date_k", "20240229"), ("date_k", "2024-2-29"), ("date_k", "2024-02-30"),
             ("date_k", "2024-02-29 00:00:00"), ("date_k", "2024-02-29 "),
             ("dt_k", "2024-02-29T13:14:15Z"), ("dt_k", "2024-02-29T13:14:15abc"), ("dt_k", "20240229131415"),
             ("t_k", "12:00"), ("t_k", "120000"), ("t_k", "12:00:00 "), ("y_k", "24"), ("y_k", "2024.0"),
             ("f_k", "42.5abc"), ("f_k", "nan"), ("f_k", "1e999")]


@pytest.mark.parametrize("column, key", FOUND, ids=[f"{c}={k}" for c, k in FOUND])
def test_a_key_in_the_columns_form_is_found(configure, keyed, column, key):
    configure(DB_TABLE="keyed", DB_KEY_COLUMN=column, DB_COLUMNS="id")
    assert invoke(key) == {"key": key, "items": [{"id": 1}]}


@pytest.mark.parametrize("column, key", NOT_FOUND, ids=[f"{c}={k!r}" for c, k in NOT_FOUND])
def test_a_key_in_another_form_finds_nothing(configure, keyed, column, key):
    """Left to MySQL, each of these would be cast to the column's type and find row 1."""
    configure(DB_TABLE="keyed", DB_KEY_COLUMN=column, DB_COLUMNS="id")
    fails(key, "[NotFound]")


@pytest.mark.parametrize("key", ["abc", "ABC", "Abc", "abc "])
def test_strings_compare_as_the_columns_collation_says(configure, keyed, key):
    """As docs/handler.md says: a _ci collation ignores case, a PAD SPACE one trailing spaces."""
    configure(DB_TABLE="keyed", DB_KEY_COLUMN="s_k", DB_COLUMNS="id")
    assert invoke(key)["items"] == [{"id": 1}]


# --- a database that does not answer: done before Lambda's deadline ------------------------

class LambdaContext:
    """What the handler reads of Lambda's context object."""

    def __init__(self, milliseconds):
        self.ends = time.monotonic() + milliseconds / 1000

    def get_remaining_time_in_millis(self):
        return max(0, int((self.ends - time.monotonic()) * 1000))


@pytest.mark.parametrize("remaining_ms", [2000, 700])
def test_a_locked_table_ends_before_the_functions_deadline_with_a_log_line(configure, db, capsys, remaining_ms):
    """A reused connection, the table locked: on main this took 10 s (a 5 s read, a reconnect, another
    5 s), past Lambda's default 10 s timeout, and the log line was lost."""
    configure()
    assert invoke("sku-1")["items"]  # the container's connection, to be reused
    capsys.readouterr()
    with db.admin(DATABASE) as locker, locker.cursor() as cur:
        cur.execute("LOCK TABLES items WRITE")
        try:
            context = LambdaContext(remaining_ms)
            with pytest.raises(handler.Internal, match=r"^\[Internal\] database unavailable"):
                handler.handler({"key": "sku-1", "sourceIp": "203.0.113.9"}, context)
            left = context.get_remaining_time_in_millis()
        finally:
            cur.execute("UNLOCK TABLES")
    assert left > 0, "the handler outlived the function's deadline"
    log = last_log(capsys)
    assert log["outcome"] == "internal" and log["error"]


def test_with_no_time_left_the_database_is_not_waited_for(configure, capsys):
    configure()
    with pytest.raises(handler.Internal):
        handler.handler({"key": "sku-1", "sourceIp": "203.0.113.9"}, LambdaContext(handler.RESERVE_S * 1000))
    assert last_log(capsys)["error"] == "no time left before the function's timeout"


def test_the_timeouts_follow_the_time_left(configure):
    configure()
    invoke("sku-1")
    assert handler._conn._read_timeout == handler.READ_TIMEOUT_S  # no context: the caps
    handler.handler({"key": "sku-1"}, LambdaContext(2000))
    assert 1.0 < handler._conn._read_timeout <= 1.5  # 2 s less the reserve, less the time spent
    handler.handler({"key": "sku-1"}, LambdaContext(60_000))
    assert handler._conn._read_timeout == handler.READ_TIMEOUT_S
