"""Benchmark lambda/handler.py against a bare pymysql loop on a local throwaway MariaDB.

    .venv/bin/python bench/handler.py [--rounds 100] [--per-round 100]

One process, one 100,000-row table with an indexed key column, the same random
existing keys for both sides, warm-up first, then alternating blocks (ABBA) so
neither side always runs on a warmer server. Also measures the cold import of
handler.py in fresh interpreters.
"""
import argparse
import contextlib
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# lambda/ first: this script is itself called handler.py.
sys.path[:0] = [str(ROOT / "lambda")]

import pymysql  # noqa: E402

import handler  # noqa: E402
from provision.local.mariadb import MariaDB  # noqa: E402

assert Path(handler.__file__).parent.name == "lambda", handler.__file__

ROWS = 100_000
SQL = ("SELECT `id`, `sku`, `name`, `price`, `stock`, `updated` FROM `products`"
       " WHERE `sku` = %s")


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
        call({"key": key, "sourceIp": "127.0.0.1"}, None)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100, help="alternating blocks per side")
    parser.add_argument("--per-round", type=int, default=100, help="invocations per block")
    args = parser.parse_args()

    password = secrets.token_urlsafe(18)
    with MariaDB() as server:
        started = time.monotonic()
        load(server, password)
        print(f"MariaDB {server.port}: loaded {ROWS:,} rows in {time.monotonic() - started:.1f}s")
        env = {**server.env("bench", "bench", password), "DB_TABLE": "products",
               "DB_KEY_COLUMN": "sku", "DB_COLUMNS": ""}
        os.environ.update(env)
        bare = pymysql.connect(host=server.host, port=server.port, user="bench",
                               password=password, database="bench", charset="utf8mb4",
                               autocommit=True)
        cur = bare.cursor()
        rng = random.Random(42)
        n = args.rounds * args.per_round
        keys = [f"SKU-{rng.randint(1, ROWS):06d}" for _ in range(n)]
        lat = {"handler": [], "bare": []}
        wall = {"handler": 0.0, "bare": 0.0}
        # The handler's log line is still built and written, to a null stream.
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            run_handler(keys[:1000], [])  # warm-up: connection, plan, buffer pool, caches
            run_bare(cur, keys[:1000], [])
            assert handler._query[0] == SQL, handler._query[0]
            for r in range(args.rounds):
                block = keys[r * args.per_round:(r + 1) * args.per_round]
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

    rate = {side: len(lat[side]) / wall[side] for side in lat}
    imp = cold_import_ms()
    print(f"{n:,} invocations per side, random existing keys, {args.rounds} alternating blocks;"
          " handler log lines written to /dev/null")
    print(f"{'':<26}{'handler':>12}{'bare pymysql':>14}")
    print(f"{'invocations/s':<26}{rate['handler']:>12,.0f}{rate['bare']:>14,.0f}")
    print(f"{'p50 latency (ms)':<26}{pct(lat['handler'], 50):>12.3f}{pct(lat['bare'], 50):>14.3f}")
    print(f"{'p99 latency (ms)':<26}{pct(lat['handler'], 99):>12.3f}{pct(lat['bare'], 99):>14.3f}")
    print(f"{'ratio handler/bare':<26}{rate['handler'] / rate['bare']:>12.2f}   (target >= 0.90)")
    print(f"{'cold import handler.py':<26}{imp[0]:>9.1f} ms   (median of 7; {imp[1]:.1f}-{imp[2]:.1f})")
    print("bare = cursor.execute + fetchall on one reused connection, pymysql's default"
          " converters (tuples, Decimal, datetime); handler = validation, dict items,"
          " JSON-safe values, the log line")


if __name__ == "__main__":
    main()
