"""Read-only lookup of the rows whose key column equals ?key=, as JSON-safe items.

API Gateway turns the exception message prefix into the status code:
"[BadRequest] ..." -> 400, "[NotFound] ..." -> 404, anything else -> 500.
Callers only ever see a short generic message; details go to the log line.
"""
import base64
import json
import os
import re
import sys
import time

import pymysql
from pymysql.constants import FIELD_TYPE
from pymysql.converters import conversions

MAX_KEY_LENGTH = 255
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,63}")
INTEGER = re.compile(r"[+-]?[0-9]{1,20}")
INTEGER_TYPES = {"tinyint", "smallint", "mediumint", "int", "bigint"}
# One JSON line per request, never the key itself. Formatted and written in one
# call rather than json.dumps + print: measurably faster (bench/handler.py).
LOG_LINE = '{"sourceIp": %s, "keyLength": %s, "rows": %d, "ms": %.2f, "outcome": "%s"%s}\n'
_json = json.JSONEncoder().encode
# Leave DECIMAL and temporal values as the server's own text: exact, and
# already ISO 8601 apart from DATETIME's space (TIME may be negative or > 24h).
DECODERS = {k: v for k, v in conversions.items() if k not in (
    FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.DATE, FIELD_TYPE.TIME,
    FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP)}


class ApiError(Exception):
    """An error whose message API Gateway maps to a status code by its prefix."""
    prefix = outcome = ""

    def __init__(self, detail):
        super().__init__(f"[{self.prefix}] {detail}")


class BadRequest(ApiError):
    prefix, outcome = "BadRequest", "bad_request"


class NotFound(ApiError):
    prefix, outcome = "NotFound", "not_found"


class Internal(ApiError):
    prefix, outcome = "Internal", "internal"


class ConfigError(Exception):
    """A DB_* setting is wrong: the deployment's fault, so the detail is logged, not returned."""


def _base64(value):
    return base64.b64encode(value).decode("ascii")


def _bit(value):
    return int.from_bytes(value, "big")


def _iso_datetime(value):
    return value.replace(" ", "T", 1)


# Per DATA_TYPE, how to make the driver's value JSON-safe; other types already are.
CONVERTERS = {
    "datetime": _iso_datetime, "timestamp": _iso_datetime, "bit": _bit, "json": json.loads,
    **dict.fromkeys(("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob",
                     "geometry", "point", "linestring", "polygon", "multipoint",
                     "multilinestring", "multipolygon", "geometrycollection"), _base64),
}

_conn = None    # one connection per container, reused across invocations
_cursor = None  # and its one cursor
_query = None   # (sql, column names, [(column, converter)], integer key?), made on connect


def handler(event, context):
    """Entry point: event is {"key": ..., "sourceIp": ...} from the API Gateway mapping template."""
    started = time.perf_counter()
    event = event if isinstance(event, dict) else {}
    key = event.get("key")
    outcome, rows, error = "ok", 0, None
    try:
        _check_key(key)
        items = _lookup(key)
        rows = len(items)
        if not items:
            raise NotFound("no item with this key")
        return {"key": key, "items": items}
    except ApiError as e:
        outcome = e.outcome
        raise
    except ConfigError as e:
        outcome, error = "internal", f"ConfigError: {e}"
        raise Internal("service misconfigured") from None
    except Exception as e:
        outcome, error = "internal", _scrub(f"{type(e).__name__}: {e}")
        raise Internal("database unavailable") from None
    finally:
        sys.stdout.write(LOG_LINE % (
            _json(event.get("sourceIp")), len(key) if isinstance(key, str) else "null", rows,
            (time.perf_counter() - started) * 1000, outcome,
            f', "error": {_json(error)}' if error else ""))


def _check_key(key):
    if key is None or key == "":
        raise BadRequest("query parameter 'key' is required")
    if not isinstance(key, str):
        raise BadRequest("query parameter 'key' must be a string")
    if len(key) > MAX_KEY_LENGTH:
        raise BadRequest(f"query parameter 'key' must be at most {MAX_KEY_LENGTH} characters")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
        raise BadRequest("query parameter 'key' must be valid UTF-8") from None


def _lookup(key):
    """Rows for key; a connection the server dropped while idle is reopened once.

    The retry plans the SELECT afresh too, so a column dropped since is no lasting error.
    """
    reused = _conn is not None
    try:
        return _fetch(key)
    except (pymysql.OperationalError, pymysql.InterfaceError):
        _reset()
        if not reused:
            raise
        return _fetch(key)


def _fetch(key):
    sql, names, converters, integer_key = _connect()
    if integer_key:  # bind an int: MySQL would turn '12abc' into 12, and compare via DOUBLE
        if not INTEGER.fullmatch(key):
            return []
        key = int(key)
    _cursor.execute(sql, (key,))
    rows = _cursor.fetchall()
    items = [dict(zip(names, row)) for row in rows]
    for item in items:
        for name, convert in converters:
            if item[name] is not None:
                item[name] = convert(item[name])
    return items


def _connect():
    """Open the container's connection if needed, and plan the SELECT on it."""
    global _conn, _cursor, _query
    if _conn is None:
        settings = _settings()  # validated before any connection is attempted
        conn = pymysql.connect(
            host=settings["host"], port=settings["port"], user=settings["user"],
            password=settings["password"], database=settings["database"],
            charset="utf8mb4", autocommit=True,  # autocommit: each query sees fresh data
            # A dead database fails in seconds, and a stale read plus one reconnect
            # (5 s + 4 s) still ends inside the function's default 10 s timeout.
            connect_timeout=4, read_timeout=5, write_timeout=5,
            conv=DECODERS, init_command="SET time_zone = '+00:00'")  # TIMESTAMPs in UTC
        try:
            _query = _plan(conn, settings)
        except BaseException:
            conn.close()
            raise
        _conn, _cursor = conn, conn.cursor()
    return _query


def _settings():
    env = os.environ
    missing = [n for n in ("DB_HOST", "DB_NAME", "DB_USER", "DB_TABLE", "DB_KEY_COLUMN")
               if not env.get(n)]
    if missing:
        raise ConfigError(f"missing {', '.join(missing)}")
    columns = [c.strip() for c in env.get("DB_COLUMNS", "").split(",") if c.strip()]
    for name in [env["DB_TABLE"], env["DB_KEY_COLUMN"], *columns]:
        if not IDENTIFIER.fullmatch(name):
            raise ConfigError(f"not a plain identifier: {name!r}")
    try:
        port = int(env.get("DB_PORT") or 3306)
    except ValueError:
        raise ConfigError("DB_PORT is not a number") from None
    return {"host": env["DB_HOST"], "port": port, "user": env["DB_USER"],
            "password": env.get("DB_PASSWORD", ""), "database": env["DB_NAME"],
            "table": env["DB_TABLE"], "key": env["DB_KEY_COLUMN"],
            "columns": columns}


def _plan(conn, settings):
    """Read the table's columns once: validates the config and finds each column's converter.

    MySQL reports JSON columns as DATA_TYPE 'json'; MariaDB stores JSON as LONGTEXT
    with a CHECK (json_valid(`col`)) constraint, so look for that there.
    """
    table = settings["table"]
    with conn.cursor() as cur:
        cur.execute("SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS"
                    " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s"
                    " ORDER BY ORDINAL_POSITION", (table,))
        types = {name: data_type.lower() for name, data_type in cur.fetchall()}
        if not types:
            raise ConfigError(f"table {table!r} not found or not readable")
        if "MariaDB" in conn.get_server_info():
            cur.execute("SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
                        " WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,))
            checks = {clause for (clause,) in cur.fetchall()}
            for name in types:
                if f"json_valid(`{name}`)" in checks:
                    types[name] = "json"
    by_lower = {name.lower(): name for name in types}  # MySQL column names ignore case
    wanted = [settings["key"], *settings["columns"]]
    unknown = [c for c in wanted if c.lower() not in by_lower]
    if unknown:
        raise ConfigError(f"no column {', '.join(unknown)} in table {table!r}")
    names = list(dict.fromkeys(by_lower[c.lower()] for c in settings["columns"])) or list(types)
    key = by_lower[settings["key"].lower()]
    sql = f"SELECT {', '.join(map(_quote, names))} FROM `{table}` WHERE `{key}` = %s"
    converters = [(n, CONVERTERS[types[n]]) for n in names if types[n] in CONVERTERS]
    return sql, names, converters, types[key] in INTEGER_TYPES


def _quote(name):
    """Back-quote a column name; names read from the table may hold anything, even a backquote."""
    return "`" + name.replace("`", "``") + "`"


def _scrub(text):
    """Error text for the log, minus the password should a driver ever echo it."""
    password = os.environ.get("DB_PASSWORD")
    return text.replace(password, "***") if password else text


def _reset():
    """Close the container's connection and forget the plan (tests: after changing DB_*)."""
    global _conn, _cursor, _query
    if _conn is not None:
        try:
            _conn.close()
        except Exception:
            pass  # already dead; nothing to tell the server
    _conn = _cursor = _query = None
