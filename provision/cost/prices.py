"""Prices from AWS's Price List API (``pricing:GetProducts``), kept a day; the project's table when it cannot answer.

The Price List API has its own endpoints in three regions only (botocore's
endpoint data: us-east-1, eu-central-1, ap-south-1); each answers for every
region, so the one nearest the stack is asked. ``GetProducts`` answers
``PriceList``, a list of JSON *strings*, one per product: ``product`` (its
``attributes``: ``usagetype``, ``regionCode``, ``location``, ...), ``terms``
-> ``OnDemand`` -> offer -> ``priceDimensions`` -> rate, each with
``beginRange``, ``endRange`` ("Inf") and ``pricePerUnit`` -> ``USD``, and the
document's ``publicationDate`` (AWS's example in botocore's
``pricing/2017-10-15/examples-1.json``). A usage type carries the region's
prefix (``EU-Lambda-GB-Second-ARM``; none in us-east-1 for some services), so
each price is asked by region (``regionCode``, or ``location`` for
CloudFront's edges) and ``usagetype`` CONTAINS its name, then picked by the
name after the prefix. The usage types are those AWS bills under (and that
infracost's price filters name, internal/resources/aws/).

Where each price is kept: ``<state dir>/prices-<region>.json``, beside the RDS
CA bundle the toolkit already keeps there (provision/account/ca_bundle.py): one place
for what the toolkit fetched, shared by every stack config of that directory,
removed with it, and apart for each test (its own state directory); a user
cache directory would be a second place to find and clean. A copy younger
than a day is used as it is; delete it to ask again.

When the API cannot be reached (no credentials, no network, access denied,
the emulator, which has none), the table kept in the project
(``kept_prices.json``, dated: us-east-1's list prices) stands in, and the
estimate says so. So does it for one price the list does not answer, answers
twice with different figures, or answers ten times away from the table's (a
unit misread, never a real change of price).
"""
from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ..context import EDGE_REGION, Context
from ..errors import DeployError, describe
from ..files import read_regular, write_replacing

KEPT = Path(__file__).with_name("kept_prices.json")
PRICING_REGIONS = ("us-east-1", "eu-central-1", "ap-south-1")
KEPT_FOR = timedelta(days=1)
MAX_PAGES = 5          # each price is one product, or a few (one per engine): a page is enough
MAX_CACHE_BYTES = 1 << 20
PLAUSIBLE = 10         # an answer this many times away from the kept price is taken for another unit
# CloudFront prices each request and byte by the edge that served it; callers are taken to be near the stack.
EDGE_LOCATIONS = (("us-", "United States"), ("ca-", "United States"), ("eu-", "Europe"),
                  ("ap-northeast-1", "Japan"), ("ap-northeast-3", "Japan"), ("ap-south-", "India"),
                  ("ap-southeast-2", "Australia"), ("ap-southeast-4", "Australia"), ("ap-", "Asia Pacific"),
                  ("sa-", "South America"), ("af-", "South Africa"), ("me-", "Middle East"), ("il-", "Middle East"))

Tier = tuple[float, float | None, float]  # from, to (None: no end), US$ per unit


@dataclass(frozen=True)
class Wanted:
    """One price: a service's usage type in one region (or CloudFront edge location)."""
    service: str
    usage: str                 # the usage type after its region prefix
    where: str                 # a region code, or CloudFront's edge location
    filters: tuple[tuple[str, str], ...] = ()  # more attributes that narrow it (the database engine)
    attribute: str = "regionCode"  # what ``where`` is: CloudFront's requests name a "location", its
    #                                transfer a "fromLocation" (as infracost's CloudFront filters read them)

    @property
    def key(self) -> str:
        return f"{self.service} {self.usage}@{self.where}"

    @property
    def kept_key(self) -> str:
        return f"{self.service} {self.usage}"


def edge_location(region: str) -> str:
    return next((where for prefix, where in EDGE_LOCATIONS if region.startswith(prefix)), "United States")


def pricing_region(region: str) -> str:
    """The Price List API endpoint nearest the stack."""
    america, europe, asia = PRICING_REGIONS
    if region.startswith(("eu-", "me-", "af-", "il-")):
        return europe
    return asia if region.startswith("ap-") else america


def wanted(region: str) -> dict[str, Wanted]:
    """Every price an estimate of a stack in ``region`` may use, by name (estimate.py's)."""
    edge = edge_location(region)
    items = {
        "waf_acl": Wanted("awswaf", "WebACLV2", EDGE_REGION),
        "waf_rule": Wanted("awswaf", "RuleV2", EDGE_REGION),
        "waf_request": Wanted("awswaf", "RequestV2-Tier1", EDGE_REGION),
        "cloudfront_request": Wanted("AmazonCloudFront", "Requests-Tier2-HTTPS", edge, attribute="location"),
        "cloudfront_out": Wanted("AmazonCloudFront", "DataTransfer-Out-Bytes", edge, attribute="fromLocation"),
        "api_request": Wanted("AmazonApiGateway", "ApiGatewayRequest", region),
        "lambda_request_arm64": Wanted("AWSLambda", "Request-ARM", region),
        "lambda_request_x86_64": Wanted("AWSLambda", "Request", region),
        "lambda_gbs_arm64": Wanted("AWSLambda", "Lambda-GB-Second-ARM", region),
        "lambda_gbs_x86_64": Wanted("AWSLambda", "Lambda-GB-Second", region),
        "alarm": Wanted("AmazonCloudWatch", "CW:AlarmMonitorUsage", region),
        "proxy_vcpu_hour": Wanted("AmazonRDS", "RDS:ProxyUsage", region, (("databaseEngine", "MySQL"),)),
    }
    for at in dict.fromkeys((region, EDGE_REGION)):
        items[f"log_ingest@{at}"] = Wanted("AmazonCloudWatch", "DataProcessing-Bytes", at)
        items[f"log_vended@{at}"] = Wanted("AmazonCloudWatch", "VendedLog-Bytes", at)
        items[f"log_storage@{at}"] = Wanted("AmazonCloudWatch", "TimedStorage-ByteHrs", at)
    return items


@dataclass
class Book:
    """The prices an estimate uses, and where each came from."""
    prices: dict[str, tuple[Tier, ...]]        # Wanted.key -> tiers
    kept_as_of: str                            # the project table's date
    published: str | None = None               # the price list's publication date (the latest of its documents)
    fetched_at: datetime | None = None
    cache: Path | None = None
    unreachable: str | None = None             # why no price came from the API
    from_kept: dict[str, str] = field(default_factory=dict)  # Wanted.key -> why the table's price stands in
    vcpus: dict[str, int] = field(default_factory=dict)      # instance class -> vCPUs, from the price list
    used: set[str] = field(default_factory=set)              # the keys an estimate read

    def tiers(self, item: Wanted) -> tuple[Tier, ...]:
        self.used.add(item.key)
        return self.prices[item.key]


def kept_table() -> dict:
    return json.loads(KEPT.read_text(encoding="utf-8"))


def _kept_tiers(table: dict, item: Wanted) -> tuple[Tier, ...]:
    return tuple((float(a), None if b is None else float(b), float(p)) for a, b, p in table["prices"][item.kept_key])


def load(ctx: Context, *, offline: str | None = None, now: datetime | None = None) -> Book:
    """The prices for the stack's region: kept ones under a day old, else the Price List API's, else the table's.
    ``offline``: why not to ask at all (--local: the emulator has no price list)."""
    now = now or datetime.now(timezone.utc)
    table, items = kept_table(), wanted(ctx.config.stack.region)
    book = Book(prices={}, kept_as_of=table["as_of"])
    if offline:
        book.unreachable = offline
    else:
        _from_cache_or_api(ctx, book, items, table, now)
    for item in items.values():
        if item.key not in book.prices:
            book.prices[item.key] = _kept_tiers(table, item)
            if not book.unreachable:
                book.from_kept.setdefault(item.key, "not in the price list's answer")
    return book


def cache_path(ctx: Context) -> Path:
    return Path(ctx.config.state_dir) / f"prices-{ctx.config.stack.region}.json"


def _from_cache_or_api(ctx: Context, book: Book, items: dict[str, Wanted], table: dict, now: datetime) -> None:
    path = cache_path(ctx)
    cached = _read_cache(path, now)
    asked = [item for item in items.values() if item.key not in cached.get("answers", {})]
    if asked:
        kept = _ask_and_keep(ctx, book, path, cached, asked, now)
        if kept is None:
            return
        cached = kept
    book.fetched_at, book.cache = datetime.fromisoformat(cached["fetched_at"]), path
    answers = cached.get("answers", {})
    for item in items.values():
        answer = answers.get(item.key)
        if answer is not None:
            _take(book, item, answer, table)
    book.vcpus = dict(cached.get("vcpus", {}))


def _ask_and_keep(ctx: Context, book: Book, path: Path, cached: dict, asked: list[Wanted],
                  now: datetime) -> dict | None:
    """Ask the price list for the prices the cache lacks and keep its answers; the cache as kept, or None
    when nothing is known (no cached answer, and every question failed: book.unreachable says why)."""
    answers = dict(cached.get("answers", {}))
    client = ctx.client("pricing", pricing_region(ctx.config.stack.region))
    with ThreadPoolExecutor(min(8, len(asked)), thread_name_prefix="price") as pool:
        results = list(pool.map(lambda item: _ask(client, item), asked))
    failures = [why for _, why in results if isinstance(why, Exception)]
    if len(failures) == len(asked) and not answers:
        book.unreachable = f"the price list could not be reached ({_why(failures[0])})"
        return None
    answers.update({item.key: answer for item, (answer, why) in zip(asked, results)
                    if not isinstance(why, Exception)})
    for item, (_, why) in zip(asked, results):
        if isinstance(why, Exception):
            book.from_kept[item.key] = f"the price list did not answer ({_why(why)})"
    cached = {**cached, "fetched_at": cached.get("fetched_at") or now.isoformat(), "answers": answers}
    _write_cache(path, cached)
    return cached


def _take(book: Book, item: Wanted, answer: dict, table: dict) -> None:
    """One price from the list's answer into the book, unless the answer gives none or a figure too far from
    the table's (then the reason is noted and the table's price stands)."""
    if answer.get("why"):
        book.from_kept[item.key] = answer["why"]
        return
    tiers = tuple((a, b, p) for a, b, p in answer["tiers"])
    kept = _kept_tiers(table, item)[0][2]
    if kept and not kept / PLAUSIBLE <= tiers[0][2] <= kept * PLAUSIBLE:
        book.from_kept[item.key] = (f"the price list's {tiers[0][2]:g} per unit is more than {PLAUSIBLE} times "
                                    f"the table's {kept:g}")
        return
    book.prices[item.key] = tiers
    dates = [date for date in (book.published, answer.get("published")) if date]
    book.published = max(dates) if dates else None


def _why(exc: Exception) -> str:
    return "no AWS credentials found" if isinstance(exc, NoCredentialsError) else describe(exc)


def _ask(client, item: Wanted) -> tuple[dict | None, Exception | None]:
    """(answer, None): {"tiers": [...], "published": date} or {"why": ...}; (None, error) when the call failed."""
    filters = [{"Type": "TERM_MATCH", "Field": item.attribute, "Value": item.where},
               {"Type": "CONTAINS", "Field": "usagetype", "Value": item.usage},
               *({"Type": "TERM_MATCH", "Field": name, "Value": value} for name, value in item.filters)]
    try:
        documents = _documents(client, item.service, filters)
    except (ClientError, BotoCoreError) as exc:
        return None, exc
    return choose(documents, item.usage), None


def _documents(client, service: str, filters: list[dict]) -> list[dict]:
    documents: list[dict] = []
    pages = client.get_paginator("get_products").paginate(ServiceCode=service, Filters=filters,
                                                           FormatVersion="aws_v1", MaxResults=100)
    for number, page in enumerate(pages):
        documents += [json.loads(text) for text in page.get("PriceList", [])]
        if number + 1 >= MAX_PAGES:
            break
    return documents


def choose(documents: list[dict], usage: str) -> dict:
    """The on-demand tiers of the one price the documents hold for ``usage`` (whatever its region prefix)."""
    exact = re.compile(rf"(?:[A-Z0-9]+-)?{re.escape(usage)}")
    found = {}
    for document in documents:
        if not exact.fullmatch(document.get("product", {}).get("attributes", {}).get("usagetype", "")):
            continue
        tiers = _tiers(document)
        if tiers:
            found[tiers] = document.get("publicationDate", "")[:10]
    if len(found) != 1:
        return {"why": "not in the price list's answer" if not found
                else f"the price list answers {len(found)} different prices"}
    [(tiers, published)] = found.items()
    return {"tiers": [list(tier) for tier in tiers], "published": published or None}


def _tiers(document: dict) -> tuple[Tier, ...]:
    tiers = []
    for term in document.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            usd = dimension.get("pricePerUnit", {}).get("USD")
            if usd is None:
                continue
            end = dimension.get("endRange", "Inf")
            tiers.append((float(dimension.get("beginRange", 0)), None if end == "Inf" else float(end), float(usd)))
    return tuple(sorted(tiers))


def vcpus(ctx: Context, book: Book, instance_class: str) -> tuple[int, str]:
    """(vCPUs of a DB instance class, where that figure comes from): the price list's ``vcpu`` attribute of the
    class in the stack's region, else the sizes' rule (2 up to large, 4 per xlarge)."""
    if instance_class in book.vcpus:
        return book.vcpus[instance_class], "the price list"
    if book.cache is not None:
        filters = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": ctx.config.stack.region},
                   {"Type": "TERM_MATCH", "Field": "instanceType", "Value": instance_class}]
        try:
            documents = _documents(ctx.client("pricing", pricing_region(ctx.config.stack.region)), "AmazonRDS",
                                   filters)
        except (ClientError, BotoCoreError):
            documents = []
        found = {d["product"]["attributes"]["vcpu"] for d in documents
                 if str(d.get("product", {}).get("attributes", {}).get("vcpu", "")).isdigit()}
        if len(found) == 1:
            book.vcpus[instance_class] = int(found.pop())
            cached = _read_cache(book.cache, datetime.now(timezone.utc))
            if cached:
                _write_cache(book.cache, {**cached, "vcpus": book.vcpus})
            return book.vcpus[instance_class], "the price list"
    return size_vcpus(instance_class), "its size (2 up to large, 4 per xlarge)"


def size_vcpus(instance_class: str) -> int:
    """vCPUs by the size name of a general-purpose, burstable or memory-optimized class: micro to large 2,
    xlarge 4, Nxlarge 4N (db.m6g.2xlarge: 8)."""
    size = instance_class.rsplit(".", 1)[-1]
    if size.endswith("xlarge"):
        count = size.removesuffix("xlarge")
        return 4 * (int(count) if count.isdigit() else 1)
    return 2


def _read_cache(path: Path, now: datetime) -> dict:
    """The kept answers if they are under a day old and readable; {} otherwise (then asked again)."""
    if not os.path.lexists(path):
        return {}
    try:
        cached = json.loads(read_regular(path, "the kept prices", limit=MAX_CACHE_BYTES))
        fetched = datetime.fromisoformat(cached["fetched_at"])
        if not isinstance(cached.get("answers"), dict) or not timedelta(0) <= now - fetched < KEPT_FOR:
            return {}
        return cached
    except (DeployError, ValueError, KeyError, TypeError):
        return {}


def _write_cache(path: Path, data: dict) -> None:
    write_replacing(path, json.dumps(data, indent=1).encode())


def tiered(tiers: tuple[Tier, ...], quantity: float) -> float:
    """US$ for ``quantity`` units through the tiers (each unit at the price of the tier it falls in)."""
    total = 0.0
    for begin, end, price in tiers:
        upper = quantity if end is None else min(quantity, end)
        if upper > begin:
            total += (upper - begin) * price
    return total
