"""What the stack costs a month at the traffic ``[cost]`` states: one line per priced resource the config makes.

Reads the config only, never a step module: what each step makes is restated
here from the config (``made``), and tests/test_cost.py deploys each shape and
counts what AWS holds (web ACL rules, log groups, alarms) against it.

Each line has its fixed price a month, its price per million more requests at
the configured traffic (what one more million adds, tiers and free tier
included), and its cost at that traffic. Counted beyond a line's own prices:
CloudFront's always-free tier (10,000,000 requests and 1 TB out a month,
every account: CloudFront pricing page); nothing else of any free tier.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .. import capacity
from ..config import Config
from ..context import EDGE_REGION
from ..steps import alarms as health_alarms
from .prices import Book, Tier, edge_location, tiered, wanted

HOURS_PER_MONTH = 730            # AWS's pricing pages' month
DAYS_PER_MONTH = 365 / 12
MILLION = 1_000_000
GB = 1024 * 1024                 # kB in a GB, as AWS bills bytes (2^30)
MEASURED_HANDLER = "an upper bound of bench/handler.py's p99 over verified TLS on a loopback MariaDB"
CLOUDFRONT_FREE_REQUESTS = 10_000_000
CLOUDFRONT_FREE_GB = 1024
PROXY_MIN_VCPUS = 2              # RDS Proxy bills a provisioned instance's vCPUs, at least 2 (RDS Proxy pricing)


@dataclass(frozen=True)
class Log:
    """A log the stack writes: kB per request (a logged request's usual size), where, and how it is billed:
    vended (CloudFront's and WAF's delivery, and Lambda's since May 2025: tiered from US$0.50 a GB) or not."""
    name: str
    region: str
    kb_per_request: float
    vended: bool


@dataclass(frozen=True)
class Made:
    """What the config makes that has a price."""
    waf_rules: int
    logs: tuple[Log, ...]
    alarms: int
    proxy: bool


def made(config: Config) -> Made:
    region = config.stack.region
    logs = [Log("function log", region, 0.5, True), Log("WAF log", EDGE_REGION, 1.5, True)]
    if config.logs.api_access:  # with the stage's execution log, ERROR only: nothing while requests succeed
        logs += [Log("API access log", region, 0.5, False), Log("API execution log, errors only", region, 0.0, False)]
    if config.logs.cloudfront:
        logs.append(Log("CloudFront log", EDGE_REGION, 0.8, True))
    # two WAF rules: the Allow rule and the per-caller limit (steps/waf.py)
    return Made(waf_rules=2, logs=tuple(logs),
                alarms=len(health_alarms.KINDS) if health_alarms.enabled(config) else 0,
                proxy=config.database.proxy)


@dataclass(frozen=True)
class Line:
    name: str
    fixed: float          # US$ a month whatever the traffic
    per_million: float    # US$ one more million requests adds, at the configured traffic
    at_traffic: float     # US$ a month the traffic costs
    detail: str = ""


@dataclass(frozen=True)
class Estimate:
    lines: tuple[Line, ...]
    requests: int
    response_kb: float
    handler_ms: float
    handler_source: str

    @property
    def fixed(self) -> float:
        return sum(line.fixed for line in self.lines)

    @property
    def at_traffic(self) -> float:
        return sum(line.at_traffic for line in self.lines)

    @property
    def total(self) -> float:
        return self.fixed + self.at_traffic


@dataclass(frozen=True)
class Proxy:
    """The database's instance class and its vCPUs, with where each came from."""
    instance_class: str | None
    vcpus: int
    source: str


def estimate(config: Config, book: Book, what: Made, proxy: Proxy | None = None) -> Estimate:
    cost, region = config.cost, config.stack.region
    items = wanted(region)

    def price(name: str) -> tuple[Tier, ...]:
        return book.tiers(items[name])

    handler_ms = cost.handler_ms or capacity.HANDLER_MS
    billed_s = max(1, math.ceil(handler_ms)) / 1000
    memory_gb, arch = config.function.memory_mb / 1024, config.function.architecture
    retention = config.function.log_retention_days
    lines = [
        _line(f"WAF web ACL, {what.waf_rules} rule{'s' * (what.waf_rules > 1)}",
              tiered(price("waf_acl"), 1) + tiered(price("waf_rule"), what.waf_rules),
              lambda r: tiered(price("waf_request"), r), cost.requests_per_month, "us-east-1"),
        _line(f"CloudFront, HTTPS at its {edge_location(region)} edges", 0,
              lambda r: tiered(price("cloudfront_request"), max(0, r - CLOUDFRONT_FREE_REQUESTS))
              + tiered(price("cloudfront_out"), max(0.0, r * cost.response_kb / GB - CLOUDFRONT_FREE_GB)),
              cost.requests_per_month, "beyond the always-free 10M requests and 1 TB a month"),
        _line("API Gateway REST API", 0, lambda r: tiered(price("api_request"), r), cost.requests_per_month),
        _line(f"Lambda, {arch}, {config.function.memory_mb} MB, {billed_s * 1000:.0f} ms", 0,
              lambda r: tiered(price(f"lambda_request_{arch}"), r)
              + tiered(price(f"lambda_gbs_{arch}"), r * billed_s * memory_gb), cost.requests_per_month),
    ]
    for log in what.logs:
        lines.append(_line(f"{log.name}, kept {retention} days", 0, _log_cost(log, retention, price),
                           cost.requests_per_month, f"{log.kb_per_request:g} kB a request, {log.region}"))
    if what.alarms:
        lines.append(Line(f"CloudWatch alarms ({what.alarms})", tiered(price("alarm"), what.alarms), 0, 0))
    if what.proxy:
        proxy = proxy or Proxy(None, PROXY_MIN_VCPUS, "the minimum RDS Proxy bills")
        vcpus = max(PROXY_MIN_VCPUS, proxy.vcpus)
        lines.append(Line(f"RDS Proxy, {proxy.instance_class or 'instance class unknown'}, {vcpus} vCPUs",
                          tiered(price("proxy_vcpu_hour"), vcpus * HOURS_PER_MONTH), 0, 0,
                          f"vCPUs from {proxy.source}"))
    return Estimate(lines=tuple(lines), requests=cost.requests_per_month, response_kb=cost.response_kb,
                    handler_ms=handler_ms,
                    handler_source="[cost] handler_ms" if cost.handler_ms else MEASURED_HANDLER)


def _log_cost(log: Log, retention: int, price: Callable[[str], tuple[Tier, ...]]) -> Callable[[float], float]:
    """Ingestion of a month's records, and their storage once the group holds ``retention`` days of them."""
    def cost(requests: float) -> float:
        gb = requests * log.kb_per_request / GB
        return (tiered(price(f"{'log_vended' if log.vended else 'log_ingest'}@{log.region}"), gb)
                + tiered(price(f"log_storage@{log.region}"), gb * retention / DAYS_PER_MONTH))
    return cost


def _line(name: str, fixed: float, traffic: Callable[[float], float], requests: int, detail: str = "") -> Line:
    at = traffic(requests)
    return Line(name, fixed, traffic(requests + MILLION) - at, at, detail)
