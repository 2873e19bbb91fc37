"""Read-only lookup of the rows whose key column equals ?key=, as JSON-safe items, a page at a time.

API Gateway turns the exception message prefix into the status code:
"[BadRequest] ..." -> 400, "[NotFound] ..." -> 404, anything else -> 500.
Callers only ever see a short generic message; details go to the log line.

The connection to the database (DB_TLS): "verify" checks the server's chain
against DB_CA_FILE and its name against DB_HOST; "required" encrypts without
checking; "off" is plain. A server that offers no TLS when TLS is asked for
is refused before any credential is sent, never used in plain text.
DB_AUTH "iam" signs a 15-minute RDS token for each new connection (botocore,
imported then and only then, so the password mode starts lean).

A response holds at most DB_MAX_ROWS rows in primary-key order; when there
are more it says "truncated": true and gives "next", which the caller sends
back as ?after= for the following page.

The key is bound as the key column's own type, in that type's one written form
(digits for an integer, 42.50 for a DECIMAL, 2024-02-29 for a DATE, ...): left
to MySQL, '42abc' and '4.2e1' would find 42. A key in another form has no rows.
Strings compare as the column's collation says (see the README).

Every wait on the database ends before Lambda's deadline
(context.get_remaining_time_in_millis()), with RESERVE_S left to answer and
write the log line.

The caller's address: behind CloudFront, API Gateway's sourceIp is the edge
server's. CloudFront appends the viewer's address to any X-Forwarded-For the
viewer sent, and a REGIONAL API adds nothing after it, so the caller is the
header's last entry (the entries before it are the viewer's own claims). The
log line gives both: "callerIp" (null when no CloudFront sent the request)
and "edgeIp".
"""
import base64
import datetime
import decimal
import json
import os
import re
import socket
import sys
import time

import pymysql
from pymysql.constants import CLIENT, FIELD_TYPE
from pymysql.converters import conversions

MAX_KEY_LENGTH = 255
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,63}")
INTEGER = re.compile(r"[+-]?[0-9]{1,20}")
DECIMAL = re.compile(r"[+-]?[0-9]{1,65}(\.[0-9]{1,38})?")  # MySQL: at most 65 digits, 30 after the point
FLOAT = re.compile(r"[+-]?[0-9]{1,40}(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,3})?")
DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
DATETIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?)")
TIME = re.compile(r"-?[0-9]{2,3}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?")
YEAR = re.compile(r"[0-9]{4}")
INTEGER_TYPES = {"tinyint", "smallint", "mediumint", "int", "bigint"}
FLOAT_TYPES = {"float", "double", "real"}
# One JSON line per request, never the key itself. Formatted and written in one
# call rather than json.dumps + print: measurably faster (bench/handler.py).
LOG_LINE = '{"callerIp": %s, "edgeIp": %s, "keyLength": %s, "rows": %d, "ms": %.2f, "outcome": "%s"%s}\n'
_json = json.JSONEncoder().encode
_json_string = json.encoder.encode_basestring_ascii  # what _json does with a str, without its checks first


def _json_value(value):
    """A log value as JSON, a string or None the short way: the encoder takes its slow path for None
    (0.9 us a call, about 1% of a warm request; bench/handler.py)."""
    if value is None:
        return "null"
    return _json_string(value) if type(value) is str else _json(value)


MAX_CURSOR_LENGTH = 2048
CURSOR = re.compile(r"[A-Za-z0-9_-]+")
CURSOR_DEPTH = 2  # a list of values, a binary one as {"b": ...}: nothing deeper is a cursor this API gave
# Lambda's deadline, less RESERVE_S to answer and log; no single wait longer than the caps even with time to spare.
RESERVE_S = 0.5
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 4.0, 5.0
MIN_WAIT_S = 0.05  # less than this left: give up rather than start a wait that cannot end in time
# Lambda refuses a response over 6 MB (6,291,456 bytes); leave room for the key and the cursor.
RESPONSE_BUDGET = 6_291_456 - 16_384
DEFAULT_MAX_ROWS = 1000
MAX_ROWS_LIMIT = 10_000
TLS_MODES = ("verify", "required", "off")
AUTH_MODES = ("password", "iam")
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

    def __init__(self, detail, reason=None):
        super().__init__(detail)
        self.reason = reason  # for the log line only


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


class _Connection(pymysql.connections.Connection):
    """Refuses a server that offers no TLS when TLS is asked for, before any credential is sent.

    PyMySQL's own check differs between versions (older ones carry on in plain
    text); an IAM token would then cross the network in the clear.
    """

    def _request_authentication(self):
        if self.ssl and not self.server_capabilities & CLIENT.SSL:
            raise pymysql.err.OperationalError(2026, "TLS is required, but the server offers none")
        return super()._request_authentication()


class _SignerHost:
    """The two attributes of an RDS client that botocore's generate_db_auth_token reads.

    A real client would load RDS's service model first: hundreds of ms of a cold start for nothing.
    """

    def __init__(self, region, signer):
        self.meta = type("Meta", (), {"region_name": region})()
        self._request_signer = signer


class Query:
    """The SELECTs for one table, planned once per connection from information_schema."""
    __slots__ = ("first", "after", "names", "converters", "key_form", "order_at", "order_kinds", "max_rows",
                 "measure")

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)


_conn = None    # one connection per container, reused across invocations
_cursor = None  # and its one cursor
_query = None   # the Query, planned on connect
_deadline = None  # time.monotonic() by which the database must have answered; None: no deadline known


def _start_clock(context):
    """Set _deadline from Lambda's context (scripts and tests may pass none)."""
    global _deadline
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    _deadline = time.monotonic() + remaining() / 1000 - RESERVE_S if callable(remaining) else None


def _wait_at_most(cap):
    """Seconds the next wait on the database may take: the cap, or less as the deadline nears."""
    if _deadline is None:
        return cap
    left = _deadline - time.monotonic()
    if left < MIN_WAIT_S:
        raise Internal("database unavailable", "no time left before the function's timeout")
    return min(cap, left)


def handler(event, context):
    """Entry point: event is {"key", "after", "forwardedFor", "sourceIp"} from the API Gateway mapping template."""
    started = time.perf_counter()
    event = event if isinstance(event, dict) else {}
    key = event.get("key")
    outcome, rows, error = "ok", 0, None
    try:
        _start_clock(context)
        _check_key(key)
        after = event.get("after") or None
        if after is not None:
            _check_cursor(after)
        items, more = _lookup(key, after)
        rows = len(items)
        if not items and after is None:
            raise NotFound("no item with this key")
        if more is None:
            return {"key": key, "items": items}
        return {"key": key, "items": items, "truncated": True, "next": more}
    except ApiError as e:
        outcome, error = e.outcome, getattr(e, "reason", None)
        raise
    except ConfigError as e:
        outcome, error = "internal", f"ConfigError: {e}"
        raise Internal("service misconfigured") from None
    except Exception as e:
        outcome, error = "internal", _scrub(f"{type(e).__name__}: {e}")
        raise Internal("database unavailable") from None
    finally:
        sys.stdout.write(LOG_LINE % (
            _json_value(caller_address(event.get("forwardedFor"))), _json_value(event.get("sourceIp")),
            len(key) if isinstance(key, str) else "null", rows,
            (time.perf_counter() - started) * 1000, outcome,
            f', "error": {_json(error)}' if error else ""))


def caller_address(forwarded_for):
    """The address CloudFront appended to X-Forwarded-For (its last entry), or None.

    CloudFront appends the viewer's address to the X-Forwarded-For the viewer sent, or sends that address
    alone (CloudFront developer guide, RequestAndResponseBehaviorCustomOrigin.html#RequestCustomIPAddresses);
    a REGIONAL API adds nothing (re:Post QU-xMNlCuTT5m6fL60GYEcgg). Anything but an address is None.
    """
    if not isinstance(forwarded_for, str) or not forwarded_for:
        return None
    last = forwarded_for.rpartition(",")[2].strip()
    try:  # the C library's parser: well under 1 us a request, where ipaddress takes 3 to 10
        if ":" in last:
            return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, last))  # its short form
        socket.inet_pton(socket.AF_INET, last)  # four decimal parts, no leading zeros: already its one form
        return last
    except (OSError, ValueError):  # not an address; ValueError: a NUL in it
        return None


def _check_key(key):
    if type(key) is str and 0 < len(key) <= MAX_KEY_LENGTH and key.isascii():
        return  # the usual key: valid, and ASCII needs no UTF-8 check
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


def _check_cursor(after):
    if not isinstance(after, str) or len(after) > MAX_CURSOR_LENGTH or not CURSOR.fullmatch(after):
        raise BadRequest("query parameter 'after' is not a cursor this API gave")


def _lookup(key, after):
    """(items, next cursor or None) for key; a connection the server dropped while idle is reopened once.

    The retry plans the SELECT afresh too, so a column dropped since is no lasting error.
    """
    reused = _conn is not None
    try:
        return _fetch(key, after)
    except (pymysql.OperationalError, pymysql.InterfaceError):
        _reset()
        if not reused:
            raise
        return _fetch(key, after)


def _fetch(key, after):
    query = _connect()
    if query.key_form is not None:  # bind the column's type: MySQL would turn '12abc' into 12
        key = query.key_form(key)
        if key is None:
            return [], None
    # pymysql reads these before each socket read and write (pinned version: lambda/requirements.txt)
    _conn._read_timeout = _conn._write_timeout = _wait_at_most(READ_TIMEOUT_S)
    if after is None:
        _cursor.execute(query.first, (key,))
    else:
        _cursor.execute(query.after, (key, *_decode_cursor(after, query)))
    rows = _cursor.fetchall()
    more = len(rows) > query.max_rows
    if more:
        rows = rows[:query.max_rows]
    names = query.names
    items = [dict(zip(names, row)) for row in rows]
    for item in items:
        for name, convert in query.converters:
            if item[name] is not None:
                item[name] = convert(item[name])
    if query.measure:  # only tables whose rows could add up to Lambda's response limit
        items, rows, more = _trimmed_to_budget(items, rows, more)
    if not more:
        return items, None
    return items, _encode_cursor(rows, query, after)


def _trimmed_to_budget(items, rows, more):
    """(items, rows, more) cut to what fits in one response; cutting means there are more."""
    kept = _within_budget(items)
    if kept < len(items):
        return items[:kept], rows[:kept], True
    return items, rows, more


def _within_budget(items):
    """How many items fit in one response; a single item too large for any response is an error."""
    size = 0
    for i, item in enumerate(items):
        size += len(_json(item)) + 2  # ensure_ascii: characters = bytes, at least as many as UTF-8
        if size > RESPONSE_BUDGET:
            if i == 0:
                raise Internal("database unavailable", "one row exceeds Lambda's 6 MB response limit")
            return i
    return len(items)


def _encode_cursor(rows, query, after):
    """The last row's ordering key (or, for a table without one, the offset reached), opaque to callers."""
    if query.order_at is None:
        values = [(_decode_cursor(after, query)[0] if after else 0) + len(rows)]
    else:
        values = [{"b": base64.b64encode(v).decode()} if isinstance(v, bytes) else v
                  for v in (rows[-1][i] for i in query.order_at)]
    text = _json(values).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def _decode_cursor(after, query):
    """The values a cursor holds, checked against this table's ordering key; anything else is a 400.

    Only the cursor's own shape is parsed: a list of values, each of its column's kind, nested no
    deeper than CURSOR_DEPTH (a thousand nested '[' would otherwise exhaust the decoder's recursion).
    """
    try:
        text = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode("utf-8")
        values = json.loads(text) if _nesting(text) <= CURSOR_DEPTH else None
    except ValueError:
        values = None
    kinds = (int,) if query.order_at is None else query.order_kinds
    if isinstance(values, list) and len(values) == len(kinds):
        decoded = [_cursor_value(v) for v in values]
        if all(type(v) is kind for v, kind in zip(decoded, kinds)) and (
                query.order_at is not None or 0 <= decoded[0] < 2 ** 63):
            return decoded
    raise BadRequest("query parameter 'after' is not a cursor this API gave")


def _nesting(text):
    """How deeply JSON text nests its arrays and objects (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (c == "\\", c != '"')
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def _cursor_value(value):
    if isinstance(value, dict) and set(value) == {"b"} and isinstance(value["b"], str):
        try:
            return base64.b64decode(value["b"], validate=True)
        except ValueError:
            return None
    if type(value) is float and not abs(value) < float("inf"):
        return None  # NaN or infinite: no key has that value
    if type(value) in (int, float, str):
        return value
    return None


def _connect():
    """Open the container's connection if needed, and plan the SELECT on it."""
    global _conn, _cursor, _query
    if _conn is None:
        settings = _settings()  # validated before any connection is attempted
        password = (_iam_token(settings) if settings["auth"] == "iam"
                    else os.environ.get("DB_PASSWORD", ""))
        conn = _Connection(
            host=settings["host"], port=settings["port"], user=settings["user"],
            password=password, database=settings["database"],
            charset="utf8mb4", autocommit=True,  # autocommit: each query sees fresh data
            # A dead database fails in seconds; near Lambda's deadline, sooner (_wait_at_most).
            connect_timeout=_wait_at_most(CONNECT_TIMEOUT_S), read_timeout=_wait_at_most(READ_TIMEOUT_S),
            write_timeout=_wait_at_most(READ_TIMEOUT_S),
            conv=DECODERS, init_command="SET time_zone = '+00:00'",  # TIMESTAMPs in UTC
            **settings["tls"])
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
        max_rows = int(env.get("DB_MAX_ROWS") or DEFAULT_MAX_ROWS)
    except ValueError:
        raise ConfigError("DB_PORT or DB_MAX_ROWS is not a number") from None
    if not 1 <= max_rows <= MAX_ROWS_LIMIT:
        raise ConfigError(f"DB_MAX_ROWS must be between 1 and {MAX_ROWS_LIMIT}")
    auth = env.get("DB_AUTH") or "password"
    if auth not in AUTH_MODES:
        raise ConfigError(f"DB_AUTH must be one of {', '.join(AUTH_MODES)}")
    return {"host": env["DB_HOST"], "port": port, "user": env["DB_USER"], "auth": auth,
            "database": env["DB_NAME"], "table": env["DB_TABLE"], "key": env["DB_KEY_COLUMN"],
            "columns": columns, "max_rows": max_rows, "tls": _tls(env, auth)}


def _tls(env, auth):
    """The driver's TLS arguments for DB_TLS; unset means "verify", the safe choice."""
    mode = env.get("DB_TLS") or "verify"
    if mode not in TLS_MODES:
        raise ConfigError(f"DB_TLS must be one of {', '.join(TLS_MODES)}")
    if mode == "off":
        if auth == "iam":
            raise ConfigError("DB_TLS=off with DB_AUTH=iam would send the token in clear text")
        return {"ssl_disabled": True}
    if mode == "required":
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return {"ssl": context}
    ca_file = env.get("DB_CA_FILE")
    if not ca_file:
        raise ConfigError("DB_TLS=verify needs DB_CA_FILE")
    ca_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), ca_file)  # as is if absolute
    if not os.path.isfile(ca_file):
        raise ConfigError(f"DB_CA_FILE {ca_file} is not a file")
    return {"ssl_ca": ca_file, "ssl_verify_cert": True, "ssl_verify_identity": True}


def _iam_token(settings):
    """A 15-minute RDS authentication token for this connection, signed locally (no network call).

    botocore is imported here, on the first connection in iam mode only. The
    function's credentials are Lambda's, from its environment; elsewhere
    (scripts/invoke-handler) botocore's usual chain finds them.
    """
    from botocore.credentials import Credentials
    from botocore.hooks import HierarchicalEmitter
    from botocore.model import ServiceId
    from botocore.signers import RequestSigner, generate_db_auth_token

    env = os.environ
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError("DB_AUTH=iam needs AWS_REGION (Lambda sets it)")
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        credentials = Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
                                  env.get("AWS_SESSION_TOKEN"))
    else:
        import botocore.session
        credentials = botocore.session.get_session().get_credentials()
        if credentials is None:
            raise ConfigError("DB_AUTH=iam found no AWS credentials")
    emitter = HierarchicalEmitter()  # the signer holds it weakly: keep it alive through the call
    signer = RequestSigner(ServiceId("rds"), region, "rds-db", "v4", credentials, emitter)
    return generate_db_auth_token(_SignerHost(region, signer), settings["host"], settings["port"],
                                  settings["user"])


def _plan(conn, settings):
    """Read the table's columns and keys once: validates the config, finds each column's converter,
    the order that makes paging stable, and whether rows can be large enough to need measuring."""
    table = settings["table"]
    described, types, unique = _describe(conn, table)
    names, key = _chosen_columns(settings, types)
    order = _stable_order(unique, described)
    max_rows = settings["max_rows"]
    first, after, order_at = _selects(table, key, names, order, max_rows)
    bound = sum(_json_bound(name, types[name], octets) for name, _, _, octets in described if name in names)
    return Query(first=first, after=after, names=names,
                 converters=[(n, CONVERTERS[types[n]]) for n in names if types[n] in CONVERTERS],
                 key_form=KEY_FORMS.get(types[key]), order_at=order_at,
                 order_kinds=None if order is None else [_value_kind(types[c]) for c in order],
                 max_rows=max_rows, measure=bound * max_rows > RESPONSE_BUDGET)


def _describe(conn, table):
    """The table's columns as information_schema lists them, each column's DATA_TYPE, and its unique keys
    (the primary key first) as {index: [columns]}."""
    with conn.cursor() as cur:
        cur.execute("SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, CHARACTER_OCTET_LENGTH"
                    " FROM information_schema.COLUMNS"
                    " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s"
                    " ORDER BY ORDINAL_POSITION", (table,))
        described = cur.fetchall()
        types = {name: data_type.lower() for name, data_type, _, _ in described}
        if not types:
            raise ConfigError(f"table {table!r} not found or not readable")
        if "MariaDB" in conn.get_server_info():
            _mark_mariadb_json(cur, table, types)
        cur.execute("SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS"
                    " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND NON_UNIQUE = 0"
                    " ORDER BY INDEX_NAME <> 'PRIMARY', INDEX_NAME, SEQ_IN_INDEX", (table,))
        unique = {}
        for index, column in cur.fetchall():
            unique.setdefault(index, []).append(column)
    return described, types, unique


def _mark_mariadb_json(cur, table, types):
    """MySQL reports JSON columns as DATA_TYPE 'json'; MariaDB stores JSON as LONGTEXT
    with a CHECK (json_valid(`col`)) constraint, so look for that there."""
    cur.execute("SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
                " WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,))
    checks = {clause for (clause,) in cur.fetchall()}
    for name in types:
        if f"json_valid(`{name}`)" in checks:
            types[name] = "json"


def _chosen_columns(settings, types):
    """(the columns returned, in the table's spelling, the key column's spelling); unknown names are config errors."""
    by_lower = {name.lower(): name for name in types}  # MySQL column names ignore case
    wanted = [settings["key"], *settings["columns"]]
    unknown = [c for c in wanted if c.lower() not in by_lower]
    if unknown:
        raise ConfigError(f"no column {', '.join(unknown)} in table {settings['table']!r}")
    names = list(dict.fromkeys(by_lower[c.lower()] for c in settings["columns"])) or list(types)
    return names, by_lower[settings["key"].lower()]


def _stable_order(unique, described):
    """The primary key, else a unique key InnoDB could use as one (no NULLs): a total, stable order; or None."""
    nullable = {name for name, _, is_nullable, _ in described if is_nullable == "YES"}
    return next((cols for cols in unique.values() if not nullable & set(cols)), None)


def _selects(table, key, names, order, max_rows):
    """(first page's SELECT, next pages' SELECT, where the ordering key sits in a row or None)."""
    if order is None:  # no unique key: order by everything returned, page by offset
        base = (f"SELECT {', '.join(map(_quote, names))} FROM `{table}` WHERE `{key}` = %s"
                f" ORDER BY {', '.join(map(_quote, names))}")
        return f"{base} LIMIT {max_rows + 1}", f"{base} LIMIT {max_rows + 1} OFFSET %s", None
    hidden = [c for c in order if c not in names]  # selected after the returned columns
    columns = names + hidden
    select = f"SELECT {', '.join(map(_quote, columns))}"
    by = ", ".join(map(_quote, order))
    past = (f"{_quote(order[0])} > %s" if len(order) == 1
            else f"({by}) > ({', '.join(['%s'] * len(order))})")
    first = f"{select} FROM `{table}` WHERE `{key}` = %s ORDER BY {by} LIMIT {max_rows + 1}"
    after = f"{select} FROM `{table}` WHERE `{key}` = %s AND {past} ORDER BY {by} LIMIT {max_rows + 1}"
    return first, after, [columns.index(c) for c in order]


def _value_kind(data_type):
    """The Python type the driver gives for a column (DECODERS): what its cursor value must be."""
    if data_type in INTEGER_TYPES or data_type == "year":
        return int
    if data_type in FLOAT_TYPES:
        return float
    if CONVERTERS.get(data_type) is _base64 or data_type == "bit":
        return bytes
    return str


def _integer_key(key):
    return int(key) if INTEGER.fullmatch(key) else None


def _year_key(key):
    return int(key) if YEAR.fullmatch(key) else None


def _decimal_key(key):
    """A Decimal, bound as an exact number (a string would be compared as a DOUBLE)."""
    return decimal.Decimal(key) if DECIMAL.fullmatch(key) else None


def _float_key(key):
    value = float(key) if FLOAT.fullmatch(key) else None
    return value if value is not None and abs(value) < float("inf") else None


def _date_key(key):
    found = DATE.fullmatch(key)
    try:
        return key if found and datetime.date(*map(int, found.groups())) else None
    except ValueError:  # 2024-02-30
        return None


def _datetime_key(key):
    """The form the API returns (2024-02-29T13:14:15) or MySQL's own (a space for the T)."""
    found = DATETIME.fullmatch(key)
    return f"{found.group(1)} {found.group(2)}" if found and _date_key(found.group(1)) else None


def _time_key(key):
    return key if TIME.fullmatch(key) else None


# Per DATA_TYPE, the one form a key may take and the value bound for it (None: no row has that key).
KEY_FORMS = {
    **dict.fromkeys(INTEGER_TYPES, _integer_key), "year": _year_key, "decimal": _decimal_key,
    **dict.fromkeys(FLOAT_TYPES, _float_key), "date": _date_key, "datetime": _datetime_key,
    "timestamp": _datetime_key, "time": _time_key,
}


def _json_bound(name, data_type, octets):
    """The most bytes one column can take in the JSON response (ensure_ascii: 6 per byte at worst)."""
    overhead = 6 * len(name.encode()) + 8  # "name": , and the separator
    if CONVERTERS.get(data_type) is _base64:
        return overhead + (octets or RESPONSE_BUDGET) * 4 // 3 + 4
    if octets is not None:
        return overhead + 6 * octets + 2
    if data_type in ("json", "geometry"):
        return overhead + RESPONSE_BUDGET  # unbounded
    return overhead + 80  # numbers, dates, times, bits, enums' codes: short


def _quote(name):
    """Back-quote a column name; names read from the table may hold anything, even a backquote."""
    return "`" + name.replace("`", "``") + "`"


def _scrub(text):
    """Error text for the log, minus the password should a driver ever echo it (an IAM token is never
    kept, and the driver never echoes what it sent)."""
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
