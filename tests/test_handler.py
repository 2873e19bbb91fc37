"""lambda/handler.py against a real, throwaway MariaDB (see tests/mariadb.py)."""
import json
import secrets
import time

import handler  # lambda/handler.py, imported the way Lambda does (pytest's pythonpath has lambda/)
import pytest

from tests.handler_support import (
    DATABASE,
    DOC,
    EMOJI_TEXT,
    ITEMS,
    PASSWORD,
    cursor_of,
    fails,
    invoke,
    last_log,
    page_through,
    row_counts,
)
from tests.mariadb import free_port

# --- found / not found ---------------------------------------------------------------

def test_one_row(configure):
    assert invoke("sku-1") == {
        "key": "sku-1", "items": [{"id": 1, "sku": "sku-1", "name": "Widget", "qty": 3}]}


def test_several_rows(configure):
    result = invoke("dup")
    assert result["key"] == "dup"
    assert sorted(result["items"], key=lambda i: i["id"]) == [
        {"id": i, "sku": s, "name": n, "qty": q} for i, s, n, q in ITEMS if s == "dup"]


def test_not_found(configure):
    assert str(fails("nope", "[NotFound]")) == "[NotFound] no item with this key"


def test_longest_allowed_key_is_looked_up(configure):
    fails("k" * 255, "[NotFound]")


# --- bad keys ------------------------------------------------------------------------

@pytest.mark.parametrize("event", [
    {}, {"key": ""}, {"key": None}, {"key": "k" * 256}, {"key": 5}, {"key": ["sku-1"]},
    {"key": {"sku": "sku-1"}}, {"key": True}, {"key": "\ud800"},
], ids=["missing", "empty", "none", "256-chars", "int", "list", "dict", "bool", "lone-surrogate"])
def test_bad_key(configure, event):
    with pytest.raises(handler.BadRequest, match=r"^\[BadRequest\] query parameter 'key' "):
        handler.handler({"sourceIp": "203.0.113.9", **event}, None)


def test_event_not_a_dict(configure):
    with pytest.raises(handler.BadRequest, match=r"^\[BadRequest\]"):
        handler.handler(None, None)


# --- SQL injection: the key is only ever a bound parameter -------------------------

@pytest.mark.parametrize("key", [
    "' OR '1'='1", "sku-1' OR '1'='1", "1'-- ", "sku-1'-- ", "sku-1' #", "sku-1'/*",
    "1' UNION SELECT id, sku, name, qty FROM items -- ",
    "1'; DROP TABLE canary; --", "sku-1'; DELETE FROM items; --", "\\' OR 1=1 -- ",
    '" OR ""="', "sku-1\\", "%", "%s", "sku-%", "sku-1\x00", "sku-1\u02bc OR 1=1 -- ",
])
def test_injection_is_just_a_key_that_is_not_found(configure, db, key):
    before = row_counts(db)
    fails(key, "[NotFound]")
    assert row_counts(db) == before
    assert before["items"] == len(ITEMS) and "canary" in before


@pytest.mark.parametrize("key", ["5", "+5", "005"])
def test_integer_key_column(configure, key):
    configure(DB_KEY_COLUMN="id")
    assert invoke(key) == {"key": key, "items": [{"id": 5, "sku": "sku-5", "name": "Gadget", "qty": 0}]}


@pytest.mark.parametrize("key", ["5abc", "5.0", "5e0", " 5", "0x5", "5_0", "' OR '1'='1",
                                 "1' OR '1'='1", "0", "99999999999999999999"])
def test_integer_key_column_matches_only_that_integer(configure, key):
    """Left to MySQL, '5abc' would find id 5 and "' OR '1'='1" id 0: strings compare as numbers."""
    configure(DB_KEY_COLUMN="id")
    fails(key, "[NotFound]")


# --- column types --------------------------------------------------------------------

def test_every_column_type_is_json_safe_and_lossless(configure):
    configure(DB_TABLE="types", DB_KEY_COLUMN="k")
    result = invoke("all")
    assert result["items"] == [{
        "k": "all",
        "dec30": "12345678901234567890.0123456789",  # a float would give 1.2345678901234567e+19
        "d": "2024-02-29",
        "dt": "2024-02-29T13:14:15.000042",
        "ts": "2024-02-29T13:14:15",                 # stored and read in UTC
        "t": "-01:02:03",
        "t6": "100:00:00.500000",
        "bin": "AP+A/g==",                           # b"\x00\xff\x80\xfe"
        "vbin": "//4Aww==",                          # b"\xff\xfe\x00\xc3"
        "blb": "wygfoKE=",                           # b"\xc3\x28\x1f\xa0\xa1", not UTF-8
        "bits": 513,
        "doc": DOC,
        "note": None,
        "txt": EMOJI_TEXT,
        "n": -7,
        "f": 1.5,
        "e": "green",
    }]
    assert list(result["items"][0]) == ["k", "dec30", "d", "dt", "ts", "t", "t6", "bin", "vbin",
                                        "blb", "bits", "doc", "note", "txt", "n", "f", "e"]
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_null_in_every_column_type(configure):
    configure(DB_TABLE="types", DB_KEY_COLUMN="k")
    item = invoke("nulls")["items"][0]
    assert item.pop("k") == "nulls"
    assert set(item.values()) == {None}


def test_column_subset_in_configured_order(configure):
    configure(DB_COLUMNS=" name , SKU,name")
    assert invoke("sku-5") == {"key": "sku-5", "items": [{"name": "Gadget", "sku": "sku-5"}]}


def test_timestamps_are_utc_whatever_the_server_time_zone(configure, db):
    configure(DB_TABLE="types", DB_KEY_COLUMN="k", DB_COLUMNS="ts")
    with db.admin() as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL time_zone = '+05:00'")
        try:
            assert invoke("all")["items"] == [{"ts": "2024-02-29T13:14:15"}]
        finally:
            cur.execute("SET GLOBAL time_zone = SYSTEM")


def test_same_column_twice_in_any_case_is_selected_once(configure):
    configure(DB_TABLE="types", DB_KEY_COLUMN="k", DB_COLUMNS="blb,BLB,k")
    assert invoke("all")["items"] == [{"blb": "wygfoKE=", "k": "all"}]


def test_all_columns_of_a_table_with_odd_column_names(configure):
    configure(DB_TABLE="odd", DB_KEY_COLUMN="k")
    assert invoke("1")["items"] == [{"k": 1, "odd `name": "a", "sp ace": "b", "ünï": "c"}]


def test_emoji_key(configure, db):
    with db.admin(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO items VALUES (99, %s, %s, 1)", (EMOJI_TEXT, EMOJI_TEXT))
    try:
        assert invoke(EMOJI_TEXT)["items"][0]["name"] == EMOJI_TEXT
    finally:
        with db.admin(DATABASE) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM items WHERE id = 99")


# --- configuration errors: refused before touching the database ----------------------

@pytest.mark.parametrize("setting", [
    {"DB_TABLE": "items`; DROP TABLE canary; --"}, {"DB_TABLE": "a b"}, {"DB_TABLE": "1items"},
    {"DB_KEY_COLUMN": "sku` = `sku` OR 1=1 -- "}, {"DB_COLUMNS": "name,`id`"},
    {"DB_COLUMNS": "name,(SELECT 1)"}, {"DB_TABLE": "x" * 65}, {"DB_TABLE": ""},
    {"DB_PORT": "not-a-port"},
], ids=repr)
def test_hostile_or_broken_config_is_refused_without_connecting(configure, db, capsys, setting):
    before = row_counts(db)
    # A closed port: had the handler tried to connect, it would say "database unavailable".
    configure(**{"DB_PORT": str(free_port()), **setting})
    error = fails("sku-1", "[Internal]")
    assert str(error) == "[Internal] service misconfigured"
    assert handler._conn is None
    assert last_log(capsys)["outcome"] == "internal"
    assert row_counts(db) == before


@pytest.mark.parametrize("setting, detail", [
    ({"DB_TABLE": "missing"}, "table 'missing' not found"),
    ({"DB_COLUMNS": "name,colour"}, "no column colour"),
    ({"DB_KEY_COLUMN": "barcode"}, "no column barcode"),
])
def test_unknown_table_or_column_is_a_config_error(configure, capsys, setting, detail):
    configure(**setting)
    assert str(fails("sku-1", "[Internal]")) == "[Internal] service misconfigured"
    assert detail in last_log(capsys)["error"]


# --- connection reuse and failures ---------------------------------------------------

def test_connection_is_reused_and_sees_fresh_data(configure, db):
    fails("late", "[NotFound]")
    first = handler._conn.thread_id()
    with db.admin(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO items VALUES (50, 'late', 'Late', 1)")
    try:
        assert invoke("late")["items"][0]["name"] == "Late"
        assert handler._conn.thread_id() == first
    finally:
        with db.admin(DATABASE) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM items WHERE id = 50")


def test_connection_killed_by_server_is_reopened(configure, db):
    assert invoke("sku-1")["items"]
    killed = handler._conn.thread_id()
    with db.admin() as conn, conn.cursor() as cur:
        cur.execute("KILL %s", (killed,))
    assert invoke("sku-1")["items"][0]["name"] == "Widget"
    assert handler._conn.thread_id() != killed


def test_schema_change_under_a_live_connection(configure, db):
    with db.admin(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE scratch (k VARCHAR(8), a INT, b INT)")
        cur.execute("INSERT INTO scratch VALUES ('x', 1, 2)")
    configure(DB_TABLE="scratch", DB_KEY_COLUMN="k")
    try:
        assert invoke("x")["items"] == [{"k": "x", "a": 1, "b": 2}]
        with db.admin(DATABASE) as conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE scratch DROP COLUMN b")
        assert invoke("x")["items"] == [{"k": "x", "a": 1}]
    finally:
        with db.admin(DATABASE) as conn, conn.cursor() as cur:
            cur.execute("DROP TABLE scratch")


def assert_generic_internal(error, started, port):
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"took {elapsed:.1f}s"
    assert str(error) == "[Internal] database unavailable"
    message = str(error).lower()
    leaks = [s for s in (PASSWORD.lower(), "127.0.0.1", str(port), "select", "items", "pymysql",
                         "mysql", "errno") if s in message]
    assert not leaks, "the caller's message leaks internals"
    assert error.__cause__ is None and error.__suppress_context__


def test_database_down_gives_internal_quickly(configure, capsys):
    port = free_port()  # nothing listens there
    configure(DB_PORT=str(port))
    started = time.monotonic()
    error = fails("sku-1", "[Internal]")
    assert_generic_internal(error, started, port)
    out = capsys.readouterr().out
    leaked = PASSWORD in out
    assert not leaked, "password in the log"
    log = json.loads(out.strip().splitlines()[-1])
    assert log["outcome"] == "internal" and "OperationalError" in log["error"]


def test_wrong_password_is_internal_and_not_logged(configure, capsys):
    wrong = secrets.token_urlsafe(18)
    configure(DB_PASSWORD=wrong)
    started = time.monotonic()
    error = fails("sku-1", "[Internal]")
    assert_generic_internal(error, started, handler.os.environ["DB_PORT"])
    out = capsys.readouterr().out
    leaked = wrong in out or wrong in str(error)
    assert not leaked, "password in the log or the message"
    assert "Access denied" in json.loads(out.strip().splitlines()[-1])["error"]


def test_server_restart_between_invocations_is_transparent(configure, db):
    assert invoke("sku-1")["items"]
    db.restart()
    assert invoke("sku-1")["items"][0]["name"] == "Widget"


def test_server_crash_then_restart(configure, db):
    assert invoke("sku-1")["items"]
    db.kill()
    try:
        started = time.monotonic()
        assert_generic_internal(fails("sku-1", "[Internal]"), started, db.port)
    finally:
        db.start()
    assert invoke("sku-1")["items"][0]["name"] == "Widget"


# --- the log line ----------------------------------------------------------------------

@pytest.mark.parametrize("key, outcome, rows", [
    ("sku-1", "ok", 1), ("dup", "ok", 3), ("secret-looking-key-42", "not_found", 0),
    ("k" * 256, "bad_request", 0),
])
def test_log_line_has_no_key_and_no_password(configure, capsys, key, outcome, rows):
    try:
        invoke(key)
    except handler.ApiError:
        pass
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 1
    log = json.loads(lines[0])
    assert set(log) == {"callerIp", "edgeIp", "keyLength", "rows", "ms", "outcome"}
    assert log["edgeIp"] == "203.0.113.9" and log["callerIp"] is None and log["keyLength"] == len(key)
    assert log["outcome"] == outcome and log["rows"] == rows and log["ms"] >= 0
    leaked = key in out or PASSWORD in out
    assert not leaked, "key or password in the log line"


# --- paging: at most DB_MAX_ROWS rows, a cursor for the rest ---------------------------

@pytest.mark.parametrize("table, key_column", [("many", "k"), ("pairs", "k"), ("heap", "k")])
def test_pages_cover_every_row_exactly_once(configure, paged, table, key_column):
    configure(DB_TABLE=table, DB_KEY_COLUMN=key_column, DB_COLUMNS="v", DB_MAX_ROWS="10")
    first = invoke("many")
    assert len(first["items"]) == 10 and first["truncated"] is True and first["next"]
    items, pages = page_through("many")
    assert pages == 3
    expected = list(range(1, 26)) if table == "many" else list(range(25))
    assert sorted(item["v"] for item in items) == expected


def test_pages_follow_the_primary_key(configure, paged):
    configure(DB_TABLE="many", DB_KEY_COLUMN="k", DB_MAX_ROWS="10")
    items, _ = page_through("many")
    assert [item["id"] for item in items] == [i * 10 for i in range(1, 26)]


def test_last_full_page_has_no_cursor(configure, paged):
    configure(DB_TABLE="many", DB_KEY_COLUMN="k", DB_MAX_ROWS="25")
    result = invoke("many")
    assert len(result["items"]) == 25 and set(result) == {"key", "items"}


def test_paging_across_a_concurrent_insert(configure, paged):
    """Rows inserted while a caller pages through: every row that was there comes exactly once,
    a new row past the cursor comes too, one before it does not (it was not there when that page was read)."""
    configure(DB_TABLE="many", DB_KEY_COLUMN="k", DB_MAX_ROWS="10")
    first = invoke("many")
    with paged.admin(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO many VALUES (15, 'many', 101), (255, 'many', 102)")
    rest, _ = page_through_from(first["next"])
    ids = [item["id"] for item in first["items"] + rest]
    assert len(ids) == len(set(ids))
    assert set(ids) == {i * 10 for i in range(1, 26)} | {255}


def page_through_from(after):
    items, pages = [], 0
    while after:
        result = invoke("many", after=after)
        items += result["items"]
        after, pages = result.get("next"), pages + 1
    return items, pages


def test_empty_after_is_the_first_page(configure, paged):
    configure(DB_TABLE="many", DB_KEY_COLUMN="k", DB_MAX_ROWS="10")
    assert invoke("many", after="") == invoke("many")


def test_a_page_past_the_end_is_empty_not_missing(configure, paged):
    configure(DB_TABLE="many", DB_KEY_COLUMN="k", DB_MAX_ROWS="10")
    cursor = invoke("many")["next"]
    with paged.admin(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM many WHERE k = 'many' AND id > 100")
    assert invoke("many", after=cursor) == {"key": "many", "items": []}


@pytest.mark.parametrize("after", [
    "not a cursor", "!!!!", "a" * 2049, 5, ["x"], "bm90IGpzb24", cursor_of({"id": 1}), cursor_of([]),
    cursor_of([1, 2]), cursor_of([True]), cursor_of([None]), cursor_of([{"b": "%%"}]), cursor_of([[1]]),
    "WzFlNDAwXQ",  # [1e400]: infinite
], ids=repr)
def test_malformed_after_is_a_bad_request(configure, paged, after):
    configure(DB_TABLE="many", DB_KEY_COLUMN="k", DB_MAX_ROWS="10")
    with pytest.raises(handler.BadRequest, match=r"^\[BadRequest\] query parameter 'after' "):
        invoke("many", after=after)


@pytest.mark.parametrize("after", [cursor_of([-1]), cursor_of(["3"]), cursor_of([1.5]), cursor_of([2 ** 63])],
                         ids=repr)
def test_offset_cursor_must_be_a_count(configure, paged, after):
    configure(DB_TABLE="heap", DB_KEY_COLUMN="k", DB_MAX_ROWS="10")
    with pytest.raises(handler.BadRequest, match=r"^\[BadRequest\] query parameter 'after' "):
        invoke("many", after=after)


def test_a_forged_cursor_is_only_a_bound_value(configure, paged, db):
    configure(DB_TABLE="types", DB_KEY_COLUMN="k", DB_MAX_ROWS="10")  # a string primary key takes a string
    before = row_counts(db)
    assert invoke("all", after=cursor_of(["0 OR 1=1; DROP TABLE canary"]))["key"] == "all"
    assert row_counts(db) == before


def test_large_rows_end_a_page_before_the_response_limit(configure, paged, db, monkeypatch):
    """TEXT rows that would pass the (here shrunk) response budget: fewer rows per page, none lost."""
    monkeypatch.setattr(handler, "RESPONSE_BUDGET", 3000)
    with db.admin(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE wide (id INT PRIMARY KEY, k VARCHAR(8) NOT NULL, body TEXT, KEY (k))")
        cur.executemany("INSERT INTO wide VALUES (%s, 'w', %s)", [(i, "\u00e9" * 200) for i in range(12)])
    try:
        configure(DB_TABLE="wide", DB_KEY_COLUMN="k", DB_MAX_ROWS="10")
        first = invoke("w")
        assert first["truncated"] and len(first["items"]) < 10
        assert len(json.dumps(first)) <= 3000
        items, _ = page_through("w")
        assert [item["id"] for item in items] == list(range(12))
    finally:
        with db.admin(DATABASE) as conn, conn.cursor() as cur:
            cur.execute("DROP TABLE wide")


def test_small_rows_are_not_measured(configure, paged):
    """Columns whose widths bound a page below the limit cost the hot path nothing."""
    configure(DB_TABLE="many", DB_KEY_COLUMN="k", DB_MAX_ROWS="1000")
    invoke("many")
    assert handler._query.measure is False


def test_a_row_too_large_for_any_response_is_internal(configure, paged, db, monkeypatch, capsys):
    monkeypatch.setattr(handler, "RESPONSE_BUDGET", 20)  # one row is 31 bytes
    configure(DB_TABLE="many", DB_KEY_COLUMN="k", DB_COLUMNS="id,k,v", DB_MAX_ROWS="10")
    assert str(fails("many", "[Internal]")) == "[Internal] database unavailable"
    assert "6 MB" in last_log(capsys)["error"]
