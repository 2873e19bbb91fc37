"""Benchmark lambda/handler.py against a bare pymysql loop on a local throwaway MariaDB.

    .venv/bin/python bench/handler.py [--rounds 100] [--per-round 100]

One process, one 100,000-row table with an indexed key column, the same random
existing keys for both sides, warm-up first, then alternating blocks (ABBA) so
neither side always runs on a warmer server. Run twice: over verified TLS (the
server's certificate from a throwaway CA, both sides checking chain and name)
and without TLS, both sides always with the same settings. Also measures the
cold import of handler.py, and the first invocation (connect, TLS, plan, query)
with a password and with an IAM token, in fresh interpreters.
"""
import argparse
import contextlib
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# lambda/ first: this script is itself called handler.py.
sys.path[:0] = [str(ROOT / "lambda")]

import handler  # noqa: E402
import pymysql  # noqa: E402

from provision.local import certs  # noqa: E402
from provision.local.mariadb import MariaDB  # noqa: E402

assert Path(handler.__file__).parent.name == "lambda", handler.__file__

ROWS = 100_000
# The handler's first-page query (max_rows 1000: one more row is asked for, to know if there are more).
SQL = ("SELECT `id`, `sku`, `name`, `price`, `stock`, `updated` FROM `products`"
       " WHERE `sku` = %s ORDER BY `id` LIMIT 1001")
# A fresh interpreter's first invocation; argv: lambda dir, "password" or "iam", the account's password.
# In iam mode the token is really signed (botocore imported and run, as in Lambda) but the fixed
# password is sent instead: MariaDB cannot check an RDS token, and the cost measured is the same.
FIRST_CALL = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
import handler
if sys.argv[2] == "iam":
    sign = handler._iam_token
    handler._iam_token = lambda settings: (sign(settings), sys.argv[3])[1]
    os.environ["DB_AUTH"] = "iam"
t = time.perf_counter()
handler.handler({"key": "SKU-000042"}, None)
print((time.perf_counter() - t) * 1000, file=sys.stderr)
"""


def load(server, password):
    server.create_database("bench", "bench", password)
    with server.admin("bench") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE products (id INT PRIMARY KEY, sku VARCHAR(32) NOT NULL,"
                    " name VARCHAR(100), price DECIMAL(10,2), stock INT, updated DATETIME,"
                    " KEY (sku)) CHARACTER SET utf8mb4")
        cur.execute("INSERT INTO products SELECT seq, CONCAT('SKU-', LPAD(seq, 6, '0')),"
                    " CONCAT('Product ', seq), (seq MOD 100000) / 100, seq MOD 97,"
                    f" '2024-01-01' + INTERVAL seq MINUTE FROM seq_1_to_{ROWS}")
        cur.execute("ANALYZE TABLE products")
        cur.fetchall()
        cur.execute("SELECT COUNT(*) FROM products")
        assert cur.fetchone()[0] == ROWS


def run_handler(keys, latencies):
    call = handler.handler
    for key in keys:
        t = time.perf_counter_ns()
        call({"key": key, "forwardedFor": "203.0.113.7", "sourceIp": "130.176.1.2"}, None)  # as through CloudFront
        latencies.append(time.perf_counter_ns() - t)


def run_bare(cur, keys, latencies):
    for key in keys:
        t = time.perf_counter_ns()
        cur.execute(SQL, (key,))
        cur.fetchall()
        latencies.append(time.perf_counter_ns() - t)


def cold_import_ms(runs=7):
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); t = time.perf_counter();"
            " import handler; print((time.perf_counter() - t) * 1000)")
    times = [float(subprocess.run([sys.executable, "-c", code, str(ROOT / "lambda")],
                                  check=True, capture_output=True, text=True).stdout)
             for _ in range(runs)]
    return statistics.median(times), min(times), max(times)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] / 1e6


def bare_connection(server, password, tls_files):
    tls = ({"ssl_ca": str(tls_files.ca), "ssl_verify_cert": True, "ssl_verify_identity": True}
           if tls_files else {"ssl_disabled": True})
    return pymysql.connect(host=server.host, port=server.port, user="bench", password=password,
                           database="bench", charset="utf8mb4", autocommit=True, **tls)


def compare(server, password, tls_files, rounds, per_round):
    """Invocations of the handler and of bare pymysql, same keys, same TLS settings; returns figures."""
    os.environ.update({**server.env("bench", "bench", password), "DB_TABLE": "products",
                       "DB_KEY_COLUMN": "sku", "DB_COLUMNS": ""})
    if not tls_files:  # the same server, reached without TLS
        os.environ["DB_TLS"] = "off"
        os.environ.pop("DB_CA_FILE", None)
    handler._reset()
    bare = bare_connection(server, password, tls_files)
    cur = bare.cursor()
    rng = random.Random(42)
    n = rounds * per_round
    keys = [f"SKU-{rng.randint(1, ROWS):06d}" for _ in range(n)]
    lat = {"handler": [], "bare": []}
    wall = {"handler": 0.0, "bare": 0.0}
    # The handler's log line is still built and written, to a null stream.
    run_handler(keys[:1], [])  # the first call's log line shows, should it fail
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        run_handler(keys[:1000], [])  # warm-up: connection, plan, buffer pool, caches
        run_bare(cur, keys[:1000], [])
        assert handler._query.first == SQL, handler._query.first
        assert bool(tls_files) == bool(handler._conn._secure) == bool(bare._secure)
        for r in range(rounds):
            block = keys[r * per_round:(r + 1) * per_round]
            order = ("handler", "bare") if r % 2 == 0 else ("bare", "handler")
            for side in order:
                t = time.perf_counter()
                if side == "handler":
                    run_handler(block, lat[side])
                else:
                    run_bare(cur, block, lat[side])
                wall[side] += time.perf_counter() - t
    bare.close()
    handler._reset()
    return n, {side: len(lat[side]) / wall[side] for side in lat}, lat


def first_call_ms(server, password, tls_files, mode, runs=5):
    env = {**os.environ, **server.env("bench", "bench", password), "DB_TABLE": "products", "DB_KEY_COLUMN": "sku",
           "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "bench-only",
           "AWS_SESSION_TOKEN": "bench-only"}
    times = [float(subprocess.run([sys.executable, "-c", FIRST_CALL, str(ROOT / "lambda"), mode, password],
                                  env=env, check=True, capture_output=True, text=True).stderr.splitlines()[-1])
             for _ in range(runs)]
    return statistics.median(times), min(times), max(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100, help="alternating blocks per side")
    parser.add_argument("--per-round", type=int, default=100, help="invocations per block")
    args = parser.parse_args()

    password = secrets.token_urlsafe(18)
    results = {}
    with tempfile.TemporaryDirectory(prefix="rds-edge-bench-") as tls_dir:
        tls_files = certs.server_files(Path(tls_dir), certs.make_ca("bench CA"), "127.0.0.1")
        with MariaDB(tls=tls_files) as server:
            started = time.monotonic()
            load(server, password)
            print(f"MariaDB {server.port}: loaded {ROWS:,} rows in {time.monotonic() - started:.1f}s")
            for label, files in (("verified TLS", tls_files), ("no TLS", None)):
                results[label] = compare(server, password, files, args.rounds, args.per_round)
            first = {mode: first_call_ms(server, password, tls_files, mode) for mode in ("password", "iam")}

    imp = cold_import_ms()
    n = args.rounds * args.per_round
    print(f"{n:,} invocations per side and mode, random existing keys, {args.rounds} alternating blocks;"
          " handler log lines written to /dev/null")
    for label, (_, rate, lat) in results.items():
        print(f"\n{label}: both sides {'ssl_ca + ssl_verify_identity' if label != 'no TLS' else 'ssl_disabled'}")
        print(f"{'':<26}{'handler':>12}{'bare pymysql':>14}")
        print(f"{'invocations/s':<26}{rate['handler']:>12,.0f}{rate['bare']:>14,.0f}")
        print(f"{'p50 latency (ms)':<26}{pct(lat['handler'], 50):>12.3f}{pct(lat['bare'], 50):>14.3f}")
        print(f"{'p99 latency (ms)':<26}{pct(lat['handler'], 99):>12.3f}{pct(lat['bare'], 99):>14.3f}")
        print(f"{'ratio handler/bare':<26}{rate['handler'] / rate['bare']:>12.2f}   (target >= 0.95)")
    print()
    print(f"{'cold import handler.py':<26}{imp[0]:>9.1f} ms   (median of 7; {imp[1]:.1f}-{imp[2]:.1f})")
    for mode, (median, low, high) in first.items():
        print(f"{'first call, ' + mode:<26}{median:>9.1f} ms   (median of 5; {low:.1f}-{high:.1f}; verified TLS,"
              f" connect + plan + query{', botocore import + token' if mode == 'iam' else ''})")
    print("bare = cursor.execute + fetchall on one reused connection, pymysql's default"
          " converters (tuples, Decimal, datetime); handler = validation, dict items,"
          " JSON-safe values, paging, the log line")


if __name__ == "__main__":
    main()
