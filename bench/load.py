"""Load through the locally served path until each wall answers: the per-caller limit, then the usage plan.

The example stack is deployed into the embedded emulator and served on loopback
(as ``deploy --local --serve``: the local edge standing for CloudFront + WAF, the
API stand-in, the real handler on a throwaway MariaDB). Requests go out open-loop
at increasing rates, each rate for a bounded time; for each step it prints the
rate asked and reached, latency percentiles and the status counts, telling the
two 429s apart by their bodies (WAF's per-caller limit, API Gateway's usage plan).

Two runs: ``one caller`` (every request from one address) meets WAF's per-caller
limit; ``many callers`` (each request from its own address, all allowed) never
does, and meets the usage plan's throttle instead. The limits are set low
(``--rate-limit`` per 60 s, ``--throttle``) so each wall answers within seconds.

    .venv/bin/python bench/load.py [--rates 2,5,10,20] [--seconds 5] [--rate-limit 60] [--throttle 5]

Loopback only, bounded in count (``--max-requests``) and time; no test depends on its figures.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from provision import config as config_module, runner  # noqa: E402
from provision.context import make_context  # noqa: E402
from provision.local import emulator  # noqa: E402
from provision.local.serve import LocalPath  # noqa: E402
from provision.output import Output  # noqa: E402
from provision.steps import STEPS  # noqa: E402

AUTHORIZATION = "Bearer load-bench-throwaway-value-0001"
WORKERS = 64
TIMEOUT = 10


@dataclasses.dataclass
class Step:
    rate: float
    sent: int
    seconds: float
    latencies_ms: list[float]
    statuses: Counter


def _status(code: int, body: bytes) -> str:
    if code != 429:
        return str(code)
    return "429 per-caller (WAF)" if b"from this address" in body else "429 usage plan"


def _call(url: str, source: str) -> tuple[str, float]:
    request = urllib.request.Request(url, headers={"Authorization": AUTHORIZATION, "X-Forwarded-For": source})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            code, body = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        code, body = exc.code, exc.read()
    except OSError:
        code, body = 599, b""
    return _status(code, body), (time.perf_counter() - started) * 1000


def one_step(url: str, rate: float, seconds: float, source, budget: list[int]) -> Step:
    """Requests at ``rate`` per second for ``seconds`` (open loop: sent on schedule, answered when they are)."""
    count = min(int(rate * seconds), budget[0])
    budget[0] -= count
    results: list[tuple[str, float]] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        result = _call(url, source(i))
        with lock:
            results.append(result)

    started = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        for i in range(count):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, i)
    elapsed = time.perf_counter() - started
    return Step(rate, count, elapsed, [ms for _, ms in results], Counter(status for status, _ in results))


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def show(title: str, steps: list[Step]) -> None:
    print(f"\n{title}")
    print(f"  {'rate asked':>10} {'reached':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7}  statuses")
    for step in steps:
        reached = step.sent / step.seconds if step.seconds else 0
        counts = ", ".join(f"{status}: {n}" for status, n in sorted(step.statuses.items()))
        print(f"  {step.rate:>10g} {reached:>8.1f} {statistics.median(step.latencies_ms or [0]):>7.1f} "
              f"{_percentile(step.latencies_ms, 0.9):>7.1f} {_percentile(step.latencies_ms, 0.99):>7.1f}  {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="2,5,10,20", help="requests per second, one step each")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long each step lasts")
    parser.add_argument("--rate-limit", type=int, default=60, help="[access] rate_limit, per 60 s")
    parser.add_argument("--throttle", type=int, default=5, help="[api] throttle_rate (burst twice that)")
    parser.add_argument("--max-requests", type=int, default=5000, help="at most this many requests in all")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    os.environ.update(RDS_EDGE_AUTHORIZATION=AUTHORIZATION, RDS_EDGE_DB_PASSWORD="load-bench-throwaway-db")
    config = config_module.load(ROOT / "stack.example.toml")
    config = dataclasses.replace(
        config, access=dataclasses.replace(config.access, rate_limit=args.rate_limit, rate_window_s=60),
        api=dataclasses.replace(config.api, throttle_rate=float(args.throttle), throttle_burst=2 * args.throttle))
    out = Output(Console(file=io.StringIO(), width=200))
    budget = [args.max_requests]
    with ExitStack() as stack:
        config, session = emulator.start(stack, config, out)
        runner.deploy(make_context(config, session=session, out=out), STEPS)
        path = stack.enter_context(LocalPath(config, session, port=0))
        url = f"{path.edge_url}?key=7"
        print(f"served on {path.edge_url}: per-caller limit {args.rate_limit} per 60 s, usage plan "
              f"{args.throttle}/s burst {2 * args.throttle}, {len(rates)} steps of {args.seconds:g} s")
        _call(url, "203.0.113.250")  # the handler's first call (import, connection) before the clock
        one = [one_step(url, rate, args.seconds, lambda i: "203.0.113.9", budget) for rate in rates]
        show("one caller (203.0.113.9)", one)
        many = [one_step(url, rate, args.seconds, lambda i, step=step: f"2001:db8::{step:x}:{i:x}", budget)
                for step, rate in enumerate(rates, 1)]  # each request from its own allowed address
        show("many callers (one address per request)", many)
    print(json.dumps({"requests": args.max_requests - budget[0]}))


if __name__ == "__main__":
    main()
